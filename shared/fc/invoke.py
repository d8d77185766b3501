"""Remote invocation of a deployed function: `NAME` through the FC 3.0 API, `SERVICE/NAME` through FC 2.0.

Used by `vpcprobe invoke`, sync or async. The SDKs load on first use only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared import logs
from shared.credentials.control_plane import ControlPlane
from shared.credentials.errors import CloudError
from shared.credentials.settings import CloudSettings
from shared.errors import VpcprobeError

# FC 3.0 function names (FC 2.0 functions appear in FC 3.0 as service$function); FC 2.0 service names.
_RE_FUNCTION = re.compile(r"^[A-Za-z_][A-Za-z0-9_$-]{0,127}\Z")
_RE_SERVICE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}\Z")
# A synchronous invocation waits for the function: longer than the probe function's 120 s timeout.
SYNC_READ_TIMEOUT_S = 150.0


class InvokeUsageError(VpcprobeError, ValueError):
    """The function name or options cannot work (a usage error, exit 2)."""


@dataclass(frozen=True)
class Invocation:
    """What an invocation returned: the function's response (sync) or the request id (async)."""

    function: str
    api: str  # fc3 | fc2
    is_async: bool
    status: int
    request_id: str | None
    body: bytes = b""
    error_type: str | None = None  # set when the function itself failed (x-fc-error-type)


def parse_function(function: str) -> tuple[str | None, str]:
    """'NAME' -> (None, NAME) for FC 3.0; 'SERVICE/NAME' -> (SERVICE, NAME) for an FC 2.0 service."""
    service, sep, name = function.rpartition("/")
    if "/" in service:
        service, name = "", ""  # a/b/c: neither form
    elif sep and not _RE_SERVICE.match(service):
        raise InvokeUsageError(f"'{service}' is not an FC 2.0 service name (letters, digits, '_' and '-')")
    if not _RE_FUNCTION.match(name):
        raise InvokeUsageError(
            f"'{function}' is not a function name: give NAME (FC 3.0) or SERVICE/NAME (a function in an FC 2.0 service)"
        )
    return (service if sep else None), name


def invoke(
    function: str,
    payload: bytes = b"",
    *,
    is_async: bool = False,
    qualifier: str | None = None,
    settings: CloudSettings | None = None,
    environ: Mapping[str, str] | None = None,
    context: Any = None,
    plane: ControlPlane | None = None,
) -> Invocation:
    """Invoke a function once. Raises InvokeUsageError (bad name, no region) or CloudError (the call failed);
    a function that ran and failed returns an Invocation with `error_type` set."""
    service, name = parse_function(function)
    plane = plane or ControlPlane(settings, environ)
    if context is not None:
        plane.context = context
    region = plane.settings.region or plane.environ.get("FC_REGION") or plane.environ.get("VPCPROBE_REGION")
    if not region:
        raise InvokeUsageError("no region: pass --region, set `region:` in the config, or set VPCPROBE_REGION")
    try:
        plane.endpoint("fc", region)
    except CloudError as exc:  # no account id for the API host
        raise InvokeUsageError(str(exc)) from None
    logs.guard_stdlib_logging()  # fc2 logs request headers (the STS token among them) on errors
    if service is None:
        return _invoke_fc3(plane, region, function, name, payload, is_async, qualifier)
    return _invoke_fc2(plane, region, function, service, name, payload, is_async, qualifier)


def _invoke_fc3(
    plane: ControlPlane,
    region: str,
    function: str,
    name: str,
    payload: bytes,
    is_async: bool,
    qualifier: str | None,
) -> Invocation:
    what = f"FC 3.0 InvokeFunction({function}{':' + qualifier if qualifier else ''}, {'Async' if is_async else 'Sync'})"

    def call() -> Any:
        from alibabacloud_fc20230330 import models
        from alibabacloud_fc20230330.client import Client

        client = Client(plane.sdk_config("fc", region, read_timeout_s=None if is_async else SYNC_READ_TIMEOUT_S))
        request = models.InvokeFunctionRequest(body=payload, qualifier=qualifier)
        headers = models.InvokeFunctionHeaders(x_fc_invocation_type="Async" if is_async else "Sync")
        return client.invoke_function_with_options(name, request, headers, _runtime_options())

    # A throttled invocation did not run, so retrying it is safe; a 5xx one may have run: not retried.
    response = plane.call(what, "fc", region, call, retry_server_errors=False)
    headers = {str(k).lower(): str(v) for k, v in (response.headers or {}).items()}
    body = response.body
    data = body.read() if hasattr(body, "read") else (body or b"")
    if isinstance(data, str):
        data = data.encode()
    return Invocation(
        function,
        "fc3",
        is_async,
        int(response.status_code or 0),
        headers.get("x-fc-request-id"),
        data,
        headers.get("x-fc-error-type"),
    )


def _invoke_fc2(
    plane: ControlPlane,
    region: str,
    function: str,
    service: str,
    name: str,
    payload: bytes,
    is_async: bool,
    qualifier: str | None,
) -> Invocation:
    what = f"FC 2.0 InvokeFunction({function}{':' + qualifier if qualifier else ''}, {'Async' if is_async else 'Sync'})"

    def call() -> Any:
        fc2 = _fc2_without_retries()
        key = plane.access_key()
        endpoint = plane.endpoint("fc", region)
        read_timeout = plane.settings.timeout_s if is_async else SYNC_READ_TIMEOUT_S
        client = fc2.Client(
            endpoint=endpoint if "://" in endpoint else f"https://{endpoint}",
            accessKeyID=key.access_key_id,
            accessKeySecret=key.access_key_secret,
            securityToken=key.security_token or "",
            Timeout=(plane.settings.timeout_s, read_timeout),  # requests' (connect, read)
        )
        headers = {"x-fc-invocation-type": "Async" if is_async else "Sync"}
        try:
            return client.invoke_function(service, name, payload=payload, headers=headers, qualifier=qualifier)
        except Exception as exc:
            if getattr(exc, "err_code", None) is not None and (getattr(exc, "status_code", 500) or 500) < 400:
                return exc  # the function ran and failed (x-fc-error-type): a result, not a failed call
            raise

    # As on FC 3.0: throttled and unreachable calls are retried a bounded number of times, a 5xx never
    # (the function may have run).
    response = plane.call(what, "fc", region, call, retry_server_errors=False)
    if isinstance(response, Exception):
        return _fc2_function_error(function, is_async, response)
    headers = {str(k).lower(): str(v) for k, v in (response.headers or {}).items()}
    data = response.data
    if isinstance(data, str):
        data = data.encode()
    elif not isinstance(data, bytes):
        data = json.dumps(data).encode()
    status = 202 if is_async else 200
    return Invocation(function, "fc2", is_async, status, headers.get("x-fc-request-id"), data or b"", None)


def _fc2_function_error(function: str, is_async: bool, exc: Any) -> Invocation:
    """fc2 raises on x-fc-error-type; its message is the function's error body plus the request id."""
    try:
        body = json.loads(exc.message)
    except (TypeError, ValueError):
        body = {"errorMessage": str(exc.message)}
    request_id = body.pop("RequestId", None) if isinstance(body, dict) else None
    error_type = (body.get("errorType") if isinstance(body, dict) else None) or "FunctionError"
    data = json.dumps(body).encode()
    return Invocation(function, "fc2", is_async, int(exc.status_code), request_id, data, error_type)


def _fc2_without_retries() -> Any:
    """The fc2 module, with its own retries turned off: it retries every connection failure and 500/502/504
    five times with exponential backoff (1 + 2 + 4 + 8 + 16 s) inside each of our attempts, so an API
    host that does not resolve took 92 s to report. Its retry settings are module globals read per call."""
    import fc2
    import fc2.client

    fc2.client.retries = 0
    fc2.client.status_forcelist = ()
    return fc2


def _runtime_options() -> Any:
    """RuntimeOptions moved from alibabacloud_tea_util (tea-openapi < 0.4) to darabonba."""
    try:
        from darabonba.runtime import RuntimeOptions
    except ImportError:  # pragma: no cover - older SDK generation
        from alibabacloud_tea_util.models import RuntimeOptions
    return RuntimeOptions()
