"""What a failed control-plane call means: SDK exceptions (tea-openapi, Tea, fc2, requests) read
into one CloudError whose `kind` decides retries and whose message names the remedy."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared import logs
from shared.credentials.access_key import ENV_AK_ID, ENV_AK_SECRET, ENV_STS_TOKEN
from shared.credentials.errors import CloudError

if TYPE_CHECKING:
    from shared.credentials.control_plane import ControlPlane

# What each call needs in the function role's policy (named in errors and in the README).
PERMISSIONS = {"kms": "kms:GetSecretValue", "eas": "eas:DescribeService", "fc": "fc:InvokeFunction",
               "cms": "cms:PutCustomMetric"}
PRODUCT_NAMES = {"kms": "KMS", "eas": "PAI-EAS", "fc": "Function Compute", "cms": "CloudMonitor"}
# The setting that names a product's API host (default: cloud.<product>_endpoint).
ENDPOINT_SETTINGS = {"cms": "metrics.cloudmonitor.endpoint"}


def classify(
    exc: Exception, what: str, product: str, region: str, plane: ControlPlane | None = None, *, attempts: int = 1
) -> CloudError:
    """Turn an SDK exception (tea-openapi, Tea, fc2, requests) into a CloudError with a remedy."""
    inner = getattr(exc, "inner_exception", None)  # Tea/darabonba UnretryableException wraps the real error
    if isinstance(inner, Exception):
        exc = inner
    status, code, message, request_id = _error_fields(exc)
    name = PRODUCT_NAMES[product]
    rid = f", request id {request_id}" if request_id else ""
    seen = f"{code or 'error'}, HTTP {status}{rid}" if status else f"{code or type(exc).__name__}{rid}"
    if attempts > 1:
        seen += f"; {attempts} attempts"
    text = logs.redact_text((message or "").strip().splitlines()[0] if (message or "").strip() else "")[:300]
    lowered = (code or "").lower()
    if status is None and _is_network(exc):
        host = ""
        if plane is not None:
            try:
                host = plane.endpoint(product, region)
            except CloudError:
                host = ""
        tries = f" ({attempts} attempts)" if attempts > 1 else ""
        return CloudError(
            f"{what}: cannot reach the {name} API{(' at ' + host) if host else ''}{tries}: "
            f"{text or type(exc).__name__}; "
            f"inside FC the VPC endpoint must resolve from the function's VPC (or set "
            f"{ENDPOINT_SETTINGS.get(product, f'cloud.{product}_endpoint')})",
            kind="network",
        )
    if status == 429 or "throttl" in lowered or lowered in ("resourcethrottled", "toomanyrequests"):
        return CloudError(
            f"{what}: throttled by the {name} API ({seen}): {text}; the account's API rate limit is reached - "
            "raise cloud.cache_ttl or probe less often",
            kind="throttled",
        )
    if lowered.startswith(("invalidaccesskeyid", "signaturedoesnotmatch", "invalidsecuritytoken",
                           "missingsecuritytoken", "incompletesignature", "invalidauthorization")):
        source = ""
        if plane is not None:
            try:
                source = f" (from {plane.access_key().source})"
            except CloudError:
                source = ""
        return CloudError(
            f"{what}: the Alibaba Cloud credentials{source} were rejected ({seen}): {text}; check {ENV_AK_ID} / "
            f"{ENV_AK_SECRET} / {ENV_STS_TOKEN} (inside FC they come from the function's role)",
            kind="auth",
        )
    if status == 403 or (lowered.startswith(("forbidden", "accessdenied", "nopermission")) and status != 404):
        return CloudError(
            f"{what}: access denied ({seen}): {text}; the RAM role or user lacks {PERMISSIONS[product]} on this "
            "resource - grant it (README: RAM permissions)",
            kind="forbidden",
        )
    if status == 404:
        return CloudError(f"{what}: not found ({seen}): {text}", kind="not_found")
    if status is not None and status >= 500:
        return CloudError(f"{what}: {name} server error ({seen}): {text}", kind="server")
    return CloudError(f"{what}: failed ({seen}): {text}", kind="error")


def _error_fields(exc: Exception) -> tuple[int | None, str | None, str | None, str | None]:
    """(status, code, message, request id) from tea-openapi / Tea / fc2 exceptions."""
    data = getattr(exc, "data", None)
    data = data if isinstance(data, dict) else {}
    status = getattr(exc, "status_code", None) or getattr(exc, "statusCode", None) or data.get("statusCode")
    code = getattr(exc, "code", None) or getattr(exc, "err_code", None) or data.get("Code")
    message = data.get("Message") or data.get("message")
    request_id = data.get("RequestId") or getattr(exc, "request_id", None)
    if hasattr(exc, "err_code"):  # fc2: the message is the JSON error body
        import json

        try:
            body = json.loads(getattr(exc, "message", "") or "{}")
        except ValueError:
            body = {}
        if isinstance(body, dict):
            code = code or body.get("ErrorCode")
            message = body.get("ErrorMessage") or body.get("errorMessage") or message
    if message is None:
        message = getattr(exc, "message", None) or str(exc)
    try:
        status = int(status) if status is not None else None
    except (TypeError, ValueError):
        status = None
    if isinstance(request_id, str) and request_id in ("None", "unknown", ""):
        request_id = None
    return status, (str(code) if code not in (None, "", "None") else None), message, request_id


def _is_network(exc: BaseException) -> bool:
    """Connection failures: darabonba/Tea wrap them in RetryError; requests raises its own."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"RetryError", "ConnectionError", "Timeout", "OSError"}) or isinstance(exc, OSError)
