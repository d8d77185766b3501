"""Alibaba Cloud control plane: the function's own credentials, and KMS / EAS calls made with them.

The cloud SDKs cost hundreds of milliseconds to import, so nothing here imports them at module
level: a probe round that uses only `env:` references never loads them, and the FC cold start
stays as fast as it was. The SDK calls are synchronous (they use `requests`); callers on an event
loop run them in a thread.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from shared import logs
from shared.errors import VpcprobeError

T = TypeVar("T")

ENV_AK_ID = "ALIBABA_CLOUD_ACCESS_KEY_ID"
ENV_AK_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
ENV_STS_TOKEN = "ALIBABA_CLOUD_SECURITY_TOKEN"

# Host templates; {region} and {account_id} are filled in. "vpc" is used inside FC (the function
# sits in a VPC and may have no internet access), "public" elsewhere.
DEFAULT_ENDPOINTS = {
    "kms": {"vpc": "kms-vpc.{region}.aliyuncs.com", "public": "kms.{region}.aliyuncs.com"},
    "eas": {"vpc": "pai-eas-manage-vpc.{region}.aliyuncs.com", "public": "pai-eas.{region}.aliyuncs.com"},
    # FC has one documented API host; override with cloud.fc_endpoint (e.g. an internal one) if needed.
    "fc": {"vpc": "{account_id}.{region}.fc.aliyuncs.com", "public": "{account_id}.{region}.fc.aliyuncs.com"},
}
# What each call needs in the function role's policy (named in errors and in the README).
PERMISSIONS = {"kms": "kms:GetSecretValue", "eas": "eas:DescribeService", "fc": "fc:InvokeFunction"}
PRODUCT_NAMES = {"kms": "KMS", "eas": "PAI-EAS", "fc": "Function Compute"}
# EAS statuses in which running instances still serve requests (a scale-out or rolling update
# keeps the old instances answering); any other status, or 0 running instances, is "not running".
EAS_SERVING = ("Running", "Scaling", "Updating")


class CloudError(VpcprobeError):
    """A control-plane call failed; the message says what, why and what to change, never a secret."""

    def __init__(self, message: str, *, kind: str = "error", code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.kind = kind  # credentials | auth | forbidden | not_found | throttled | network | server | error
        self.code = code
        self.status = status


@dataclass(frozen=True)
class CloudSettings:
    """The `cloud:` config section, plus the config's region (where `kms:` secrets live)."""

    region: str | None = None
    network: str | None = None  # vpc | public; None = vpc inside FC, public elsewhere
    kms_endpoint: str | None = None
    eas_endpoint: str | None = None
    fc_endpoint: str | None = None
    account_id: str | None = None
    cache_ttl_s: float = 300.0
    timeout_s: float = 5.0
    retries: int = 2  # extra attempts after a throttled / 5xx / unreachable answer
    retry_delay_s: float = 0.5

    def network_for(self, environ: Mapping[str, str]) -> str:
        return self.network or ("vpc" if in_fc(environ) else "public")

    def endpoint(self, product: str, region: str, environ: Mapping[str, str], account_id: str | None = None) -> str:
        """The API host (or URL) for a product: the override if given, else the VPC/public default."""
        template = {"kms": self.kms_endpoint, "eas": self.eas_endpoint, "fc": self.fc_endpoint}[product]
        template = template or DEFAULT_ENDPOINTS[product][self.network_for(environ)]
        return template.format(region=region, account_id=account_id or "")

    def fetch_budget_s(self) -> float:
        """Longest a fetch may take with its retries: the caller's deadline for one control-plane call."""
        backoff = sum(min(self.retry_delay_s * 2**n, 5.0) for n in range(self.retries))
        return self.timeout_s * 2 * (self.retries + 1) + backoff + 1.0


@dataclass(frozen=True)
class AccessKey:
    """Alibaba Cloud credentials; repr hides the secret parts."""

    access_key_id: str
    access_key_secret: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)
    source: str = ""


def in_fc(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process runs inside Function Compute (FC sets these for every function)."""
    env = os.environ if environ is None else environ
    return bool(env.get("FC_FUNCTION_NAME") or env.get("FC_INSTANCE_ID"))


def resolve_access_key(environ: Mapping[str, str] | None = None, context: Any = None) -> AccessKey:
    """The credentials control-plane calls use, in order: FC's `context.credentials` (python3.10),
    ALIBABA_CLOUD_ACCESS_KEY_ID / _SECRET / _SECURITY_TOKEN (FC sets them on every runtime from the
    function's role), and on a laptop the aliyun CLI profile or ~/.alibabacloud/credentials.ini.

    Every secret part is registered for log redaction. Missing credentials raise one CloudError
    that names the variables or the FC role setting to fix.
    """
    env = os.environ if environ is None else environ
    creds = getattr(context, "credentials", None) if context is not None else None
    if creds is not None:
        ak_id = getattr(creds, "access_key_id", None) or getattr(creds, "accessKeyId", None)
        secret = getattr(creds, "access_key_secret", None) or getattr(creds, "accessKeySecret", None)
        token = getattr(creds, "security_token", None) or getattr(creds, "securityToken", None)
        if ak_id and secret:
            return _registered(AccessKey(ak_id, secret, token or None, "fc-context"))
    ak_id, secret, token = env.get(ENV_AK_ID), env.get(ENV_AK_SECRET), env.get(ENV_STS_TOKEN)
    if ak_id or secret:
        missing = [name for name, value in ((ENV_AK_ID, ak_id), (ENV_AK_SECRET, secret)) if not value]
        if missing:
            present = ENV_AK_SECRET if ak_id is None else ENV_AK_ID
            raise CloudError(f"{missing[0]} is not set ({present} is): set both", kind="credentials")
        if ak_id.startswith("STS.") and not token:
            raise CloudError(
                f"{ENV_AK_ID} is a temporary (STS.) key but {ENV_STS_TOKEN} is not set: set it too",
                kind="credentials",
            )
        return _registered(AccessKey(ak_id, secret, token or None, "environment"))
    if in_fc(env):
        raise CloudError(
            f"no Alibaba Cloud credentials in the function: FC passes the function role's temporary credentials "
            f"as {ENV_AK_ID} / {ENV_AK_SECRET} / {ENV_STS_TOKEN} only when the function has a role; set `role:` "
            "in s.yaml (VPCPROBE_ROLE_NAME) to a RAM role trusted by fc.aliyuncs.com and deploy again",
            kind="credentials",
        )
    return _registered(_profile_chain(env))


def _registered(key: AccessKey) -> AccessKey:
    logs.register_secret(key.access_key_secret)
    logs.register_secret(key.security_token)
    return key


_chains: dict[tuple, list[Any]] = {}
_chains_lock = threading.Lock()


def _profile_chain(env: Mapping[str, str]) -> AccessKey:
    """The laptop part of the standard chain, through alibabacloud-credentials (what the SDKs use).

    The ECS metadata service is asked only when ALIBABA_CLOUD_ECS_METADATA names the role: probing
    it from a laptop costs seconds of timeouts and prints tracebacks before failing anyway.
    """
    home = env.get("HOME") or os.path.expanduser("~")
    cli_file = os.path.join(home, ".aliyun", "config.json")
    ini_file = env.get("ALIBABA_CLOUD_CREDENTIALS_FILE") or os.path.join(home, ".alibabacloud", "credentials.ini")
    profile = env.get("ALIBABA_CLOUD_PROFILE") or None
    ecs_role = env.get("ALIBABA_CLOUD_ECS_METADATA") or None
    tried = [f"{ENV_AK_ID} / {ENV_AK_SECRET}", f"aliyun CLI profile {cli_file}", f"credentials file {ini_file}"]
    if ecs_role:
        tried.append(f"ECS RAM role {ecs_role}")
    key = (cli_file, ini_file, profile, ecs_role)
    with _chains_lock:
        if key not in _chains:
            _chains[key] = _build_chain(cli_file, ini_file, profile, ecs_role)
        chain = _chains[key]
    problems = []
    for name, provider in chain:
        try:
            c = provider.get_credentials()
        except Exception as exc:  # the library raises its own exception types, and OSErrors
            problems.append(f"{name}: {logs.redact_text(str(exc))[:200]}")
            continue
        if c is not None and c.get_access_key_id() and c.get_access_key_secret():
            return AccessKey(c.get_access_key_id(), c.get_access_key_secret(), c.get_security_token() or None, name)
    detail = f" ({'; '.join(problems)})" if problems else ""
    raise CloudError(
        f"no Alibaba Cloud credentials found; tried {', '.join(tried)}{detail}. Set {ENV_AK_ID} and "
        f"{ENV_AK_SECRET} (plus {ENV_STS_TOKEN} for an STS key) or run `aliyun configure`",
        kind="credentials",
    )


def _build_chain(cli_file: str, ini_file: str, profile: str | None, ecs_role: str | None) -> list[Any]:
    chain: list[Any] = []
    if os.path.isfile(cli_file):
        from alibabacloud_credentials.provider import CLIProfileCredentialsProvider

        chain.append(("aliyun CLI profile", CLIProfileCredentialsProvider(profile_file=cli_file, profile_name=profile)))
    if os.path.isfile(ini_file):
        from alibabacloud_credentials.provider import ProfileCredentialsProvider

        chain.append(("credentials file", ProfileCredentialsProvider(profile_file=ini_file, profile_name=profile)))
    if ecs_role:
        from alibabacloud_credentials.provider import EcsRamRoleCredentialsProvider

        chain.append(("ECS RAM role", EcsRamRoleCredentialsProvider(role_name=ecs_role)))
    return chain


# --- results ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KmsSecret:
    name: str
    value: str = field(repr=False)
    version_id: str | None = None


@dataclass(frozen=True)
class EasService:
    """What DescribeService says about a service (the token aside)."""

    region: str
    name: str
    status: str
    running: int
    total: int
    intranet_endpoint: str | None = None
    internet_endpoint: str | None = None
    message: str | None = None
    reason: str | None = None

    @property
    def serving(self) -> bool:
        return self.status in EAS_SERVING and self.running > 0

    def summary(self) -> dict[str, Any]:
        return {"status": self.status, "running": self.running, "total": self.total}


# --- the control plane -------------------------------------------------------------------------------


class ControlPlane:
    """KMS and EAS calls with the function's credentials: bounded retry, clear errors, SDKs loaded lazily."""

    def __init__(
        self,
        settings: CloudSettings | None = None,
        environ: Mapping[str, str] | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings or CloudSettings()
        self.environ = os.environ if environ is None else environ
        self.sleep = sleep
        self.context: Any = None  # the FC invocation context, for context.credentials (python3.10)
        self._clients: dict[tuple, Any] = {}
        self._lock = threading.Lock()

    def access_key(self) -> AccessKey:
        return resolve_access_key(self.environ, self.context)

    # KMS -------------------------------------------------------------------------------------------

    def get_secret_value(self, name: str, stage: str | None = None) -> KmsSecret:
        """KMS GetSecretValue in the config's region; binary secrets are decoded as UTF-8 text."""
        region = self.settings.region
        what = f"KMS GetSecretValue({name}{'@' + stage if stage else ''})"
        if not region:
            raise CloudError(f"{what}: no region; set `region:` in vpcprobe.yaml (FC sets FC_REGION)", kind="error")

        def call() -> Any:
            from alibabacloud_kms20160120 import models

            client = self._client("kms", region)
            return client.get_secret_value(models.GetSecretValueRequest(secret_name=name, version_stage=stage))

        body = _to_map(self.call(what, "kms", region, call).body)
        value = body.get("SecretData")
        if not isinstance(value, str):
            raise CloudError(f"{what}: the answer holds no SecretData", kind="error")
        if str(body.get("SecretDataType", "text")).lower() == "binary":
            import base64
            import binascii

            try:
                value = base64.b64decode(value).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise CloudError(f"{what}: a binary secret that is not UTF-8 text cannot be a token") from None
        logs.register_secret(value)
        return KmsSecret(name, value.strip(), body.get("VersionId"))

    # EAS -------------------------------------------------------------------------------------------

    def describe_service(self, region: str, name: str) -> tuple[EasService, str]:
        """EAS DescribeService: the service's state and endpoints, and its access token."""
        what = f"EAS DescribeService({region}/{name})"

        def call() -> Any:
            return self._client("eas", region).describe_service(region, name)

        body = _to_map(self.call(what, "eas", region, call).body)
        token = body.get("AccessToken") or ""
        logs.register_secret(token)
        service = EasService(
            region=region,
            name=name,
            status=str(body.get("Status") or "Unknown"),
            running=_int(body.get("RunningInstance")),
            total=_int(body.get("TotalInstance")),
            intranet_endpoint=body.get("IntranetEndpoint") or None,
            internet_endpoint=body.get("InternetEndpoint") or None,
            message=logs.redact_text(str(body["Message"]))[:300] if body.get("Message") else None,
            reason=logs.redact_text(str(body["Reason"]))[:300] if body.get("Reason") else None,
        )
        return service, token

    # plumbing --------------------------------------------------------------------------------------

    def sdk_config(self, product: str, region: str, *, read_timeout_s: float | None = None) -> Any:
        """A tea-openapi Config for a product's endpoint with the current credentials."""
        from alibabacloud_tea_openapi.models import Config

        key = self.access_key()
        scheme, host = _split_endpoint(self.endpoint(product, region))
        timeout_ms = int(self.settings.timeout_s * 1000)
        return Config(
            access_key_id=key.access_key_id,
            access_key_secret=key.access_key_secret,
            security_token=key.security_token,
            endpoint=host,
            protocol=scheme,
            region_id=region,
            connect_timeout=timeout_ms,
            read_timeout=int(read_timeout_s * 1000) if read_timeout_s else timeout_ms,
        )

    def endpoint(self, product: str, region: str) -> str:
        account = None
        if product == "fc" and "{account_id}" in (self.settings.fc_endpoint or "{account_id}"):
            account = self.account_id()
        return self.settings.endpoint(product, region, self.environ, account)

    def account_id(self) -> str:
        account = self.settings.account_id or self.environ.get("FC_ACCOUNT_ID") or self.environ.get(
            "ALIBABA_CLOUD_ACCOUNT_ID"
        )
        if not account:
            raise CloudError(
                "the Function Compute API host needs your account id: pass --account-id, set "
                "ALIBABA_CLOUD_ACCOUNT_ID, or set cloud.account_id in vpcprobe.yaml (FC sets FC_ACCOUNT_ID)",
                kind="error",
            )
        return account

    def _client(self, product: str, region: str) -> Any:
        """SDK clients are reused while the credentials are the same (FC rotates them; then a new one)."""
        key = self.access_key()
        cache_key = (product, self.endpoint(product, region), key.access_key_id, key.security_token)
        with self._lock:
            client = self._clients.get(cache_key)
        if client is None:
            if product == "kms":
                from alibabacloud_kms20160120.client import Client
            else:
                from alibabacloud_eas20210701.client import Client
            client = Client(self.sdk_config(product, region))
            with self._lock:
                if len(self._clients) > 32:
                    self._clients.clear()
                self._clients[cache_key] = client
        return client

    def call(self, what: str, product: str, region: str, fn: Callable[[], T], *, retry_server_errors: bool = True) -> T:
        """Run one SDK call; throttled, 5xx and unreachable answers are retried a bounded number of times."""
        attempts = self.settings.retries + 1
        last: CloudError | None = None
        for attempt in range(attempts):
            if attempt:
                import random

                delay = min(self.settings.retry_delay_s * 2 ** (attempt - 1), 5.0)
                self.sleep(delay * (0.5 + random.random() / 2))  # jitter: instances do not retry in step
            try:
                return fn()
            except CloudError:
                raise
            except Exception as exc:
                last = classify(exc, what, product, region, self, attempts=attempt + 1)
            if last.kind not in ("throttled", "network") and not (retry_server_errors and last.kind == "server"):
                raise last
        assert last is not None
        raise last


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
            f"inside FC the VPC endpoint must resolve from the function's VPC (or set cloud.{product}_endpoint)",
            kind="network",
        )
    if status == 429 or "throttl" in lowered or lowered in ("resourcethrottled", "toomanyrequests"):
        return CloudError(
            f"{what}: throttled by the {name} API ({seen}): {text}; the account's API rate limit is reached - "
            "raise cloud.cache_ttl or probe less often",
            kind="throttled", code=code, status=status,
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
            kind="auth", code=code, status=status,
        )
    if status == 403 or (lowered.startswith(("forbidden", "accessdenied", "nopermission")) and status != 404):
        return CloudError(
            f"{what}: access denied ({seen}): {text}; the RAM role or user lacks {PERMISSIONS[product]} on this "
            "resource - grant it (README: RAM permissions)",
            kind="forbidden", code=code, status=status,
        )
    if status == 404:
        return CloudError(f"{what}: not found ({seen}): {text}", kind="not_found", code=code, status=status)
    if status is not None and status >= 500:
        return CloudError(f"{what}: {name} server error ({seen}): {text}", kind="server", code=code, status=status)
    return CloudError(f"{what}: failed ({seen}): {text}", kind="error", code=code, status=status)


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


def _split_endpoint(endpoint: str) -> tuple[str, str]:
    """'host', 'https://host' or 'http://host:port' -> (protocol, host[:port])."""
    if "://" in endpoint:
        scheme, _, host = endpoint.partition("://")
        return scheme.lower(), host.rstrip("/")
    return "https", endpoint


def _to_map(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    if isinstance(body, dict):
        return body
    return body.to_map() or {}


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
