"""A small stateful fake of the Alibaba Cloud control plane (KMS, PAI-EAS, FC 3.0, FC 2.0, CloudMonitor's
PutCustomMetric) on `responses`.

The real SDK clients call it. That works because their synchronous calls go through `requests`:
tea-openapi 0.4 / darabonba-core (`DaraCore.do_action` -> `requests.Session.send` on an `HTTPAdapter`),
the older Tea core the same way, and fc2 (`requests.Session.request`). `responses` patches
`HTTPAdapter.send`, so it sees the exact wire requests; httpx / aiohttp (the simulator, the probes)
are untouched. Anything not registered here fails as a connection error, as an unreachable host would.

What it checks, as the real APIs do: the host (product and region), path and method; a signature
(ACS3-HMAC-SHA256 in `Authorization`, or the RPC `Signature` query parameter, or fc2's `FC ak:sig`),
verified against the key's secret; the STS token for an `STS.` key (`x-acs-security-token` header,
`SecurityToken` RPC parameter, `x-fc-security-token` for fc2); the key's permissions. Answers use the
wire shapes: PascalCase JSON, POP errors as `Code` / `Message` / `RequestId`, fc2 errors as `ErrorCode` /
`ErrorMessage`, with their HTTP statuses. Exact error codes are modelled on the public docs and SDK
error dumps; vpcprobe classifies by HTTP status and code family, so a code guessed wrong here does
not make a test pass that the real cloud would fail.

    with FakeCloud() as cloud:
        cloud.add_kms_secret("dashscope-key", "sk-...")
        cloud.add_eas_service("llm", token="t", status="Stopped", running=0)
        monkeypatch.setattr(os, "environ", {**os.environ, **cloud.env()})
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import responses

ALL_ACTIONS = frozenset({"kms:GetSecretValue", "eas:DescribeService", "fc:InvokeFunction", "cms:PutCustomMetric"})

_SIGNATURE_MISMATCH = "Specified signature is not matched with our calculation."
_RE_KMS = re.compile(r"^https?://kms(?:-vpc)?\.([a-z0-9-]+)\.aliyuncs\.com(?::\d+)?/")
_RE_EAS = re.compile(r"^https?://pai-eas(?:-manage-vpc)?\.([a-z0-9-]+)\.aliyuncs\.com(?::\d+)?/")
_RE_FC = re.compile(r"^https?://(\d+)\.([a-z0-9-]+?)(?:-internal)?\.fc\.aliyuncs\.com(?::\d+)?/")
# CloudMonitor's regional API hosts: cms-vpc.<region> (VPC) and metrics.<region> (public). The SDK's own
# default, cms.aliyuncs.com, is not served: a client that forgets to set its endpoint fails here too.
_RE_CMS = re.compile(r"^https?://(?:cms-vpc|metrics)\.([a-z0-9-]+)\.aliyuncs\.com(?::\d+)?/")
CMS_BATCH_LIMIT = 21  # MetricList.N in the API reference
_RE_METRIC_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_RE_DIMENSION = re.compile(r"^[A-Za-z0-9._/\\-]{1,64}$")


@dataclass
class Key:
    access_key_id: str
    secret: str
    token: str | None
    allow: frozenset[str] = ALL_ACTIONS
    expired: bool = False


@dataclass
class Call:
    api: str  # kms | eas | fc3 | fc2
    action: str
    region: str
    status: int
    access_key_id: str | None = None
    host: str = ""


@dataclass
class _Secret:
    value: str
    data_type: str = "text"
    versions: dict[str, str] = field(default_factory=dict)  # version id -> value
    stages: dict[str, str] = field(default_factory=dict)  # stage -> version id


@dataclass
class _Function:
    result: bytes | Callable[[bytes], bytes]
    error: str | None = None  # the function raises: errorMessage
    qualifiers: frozenset[str] = frozenset({"LATEST"})


class _Reply(Exception):
    """Raised inside a handler to answer with an error."""

    def __init__(self, status: int, body: dict, headers: dict | None = None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


class FakeCloud:
    """KMS secrets, EAS services, FC functions and credentials, served to the real SDKs through `responses`."""

    def __init__(self, account_id: str = "1234567890123456") -> None:
        self.account_id = account_id
        self.keys: dict[str, Key] = {}
        self.eas: dict[tuple[str, str], dict[str, Any]] = {}
        self.kms: dict[tuple[str, str], _Secret] = {}
        self.functions: dict[tuple[str, str | None, str], _Function] = {}
        self.calls: list[Call] = []
        self.invocations: list[dict[str, Any]] = []
        self.metric_batches: list[list[dict[str, Any]]] = []  # accepted PutCustomMetric MetricLists, in order
        self._throttles: list[list[Any]] = []  # [remaining, api or None]
        self._lock = threading.Lock()
        self._mock: responses.RequestsMock | None = None
        self._versions = itertools.count(2)
        self.latency_s = 0.0  # added to every answer (benchmarks only: a VPC endpoint's round trip)
        self.before_request: Callable[[Any], None] | None = None  # called with each request (e.g. to move a clock)
        self.default_key = self.add_key()

    # --- credentials -----------------------------------------------------------------------------

    def add_key(
        self, *, sts: bool = True, allow: frozenset[str] | set[str] = ALL_ACTIONS, token: str | None = None
    ) -> Key:
        """A key the cloud knows; STS keys (`STS.` ids) need their security token on every call."""
        prefix = "STS." if sts else "LTAI"
        key = Key(
            access_key_id=prefix + secrets.token_hex(10),
            secret="fake-secret-" + secrets.token_hex(12),
            token=(token or "CAIS" + secrets.token_hex(24)) if sts else None,
            allow=frozenset(allow),
        )
        self.keys[key.access_key_id] = key
        return key

    def env(self, key: Key | None = None) -> dict[str, str]:
        """The ALIBABA_CLOUD_* variables FC would set for a function whose role has this key."""
        key = key or self.default_key
        env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": key.access_key_id, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": key.secret}
        if key.token:
            env["ALIBABA_CLOUD_SECURITY_TOKEN"] = key.token
        return env

    # --- state -----------------------------------------------------------------------------------

    def add_eas_service(
        self,
        name: str,
        *,
        region: str = "ap-southeast-1",
        token: str = "eas-token",
        status: str = "Running",
        running: int = 1,
        total: int | None = None,
        intranet_endpoint: str | None = None,
        internet_endpoint: str | None = None,
        message: str | None = None,
        reason: str | None = None,
    ) -> None:
        uid = self.account_id
        self.eas[(region, name)] = {
            "ServiceName": name,
            "ServiceId": "eas-m-" + secrets.token_hex(6),
            "Region": region,
            "Status": status,
            "Reason": reason or "",
            "Message": message or "",
            "RunningInstance": running,
            "PendingInstance": 0,
            "TotalInstance": running if total is None else total,
            "AccessToken": token,
            "InternetEndpoint": internet_endpoint or f"http://{uid}.{region}.pai-eas.aliyuncs.com/api/predict/{name}",
            "IntranetEndpoint": intranet_endpoint
            if intranet_endpoint is not None
            else f"http://{uid}.vpc.{region}.pai-eas.aliyuncs.com/api/predict/{name}",
            "CallerUid": uid,
            "CreateTime": "2026-11-01T08:00:00Z",
            "UpdateTime": "2026-11-01T08:00:00Z",
        }

    def set_eas_service(self, name: str, region: str = "ap-southeast-1", **changes: Any) -> None:
        """Change a service: token=..., status=..., running=..., total=... (PascalCase fields follow)."""
        names = {"token": "AccessToken", "status": "Status", "running": "RunningInstance", "total": "TotalInstance",
                 "intranet_endpoint": "IntranetEndpoint", "reason": "Reason", "message": "Message"}
        with self._lock:
            svc = self.eas[(region, name)]
            for k, v in changes.items():
                svc[names[k]] = v

    def add_kms_secret(
        self, name: str, value: str, *, region: str = "ap-southeast-1", version_id: str = "v1", binary: bool = False
    ) -> None:
        data = base64.b64encode(value.encode()).decode() if binary else value
        self.kms[(region, name)] = _Secret(
            data, "binary" if binary else "text", {version_id: data}, {"ACSCurrent": version_id}
        )

    def rotate_kms_secret(self, name: str, value: str, *, region: str = "ap-southeast-1") -> str:
        """PutSecretValue + stage move: the new version becomes ACSCurrent, the old one ACSPrevious."""
        with self._lock:
            secret = self.kms[(region, name)]
            version = f"v{next(self._versions)}"
            secret.versions[version] = value
            secret.stages["ACSPrevious"] = secret.stages["ACSCurrent"]
            secret.stages["ACSCurrent"] = version
            return version

    def add_fc_function(
        self,
        name: str,
        *,
        result: bytes | str | Callable[[bytes], bytes] = b"",
        service: str | None = None,
        region: str = "ap-southeast-1",
        error: str | None = None,
        qualifiers: tuple[str, ...] = ("LATEST",),
    ) -> None:
        """An FC 3.0 function (service None) or a function in an FC 2.0 service."""
        if isinstance(result, str):
            result = result.encode()
        self.functions[(region, service, name)] = _Function(result, error, frozenset(qualifiers))

    def throttle(self, n: int, api: str | None = None) -> None:
        """The next n calls (to one api: kms, eas, fc3, fc2, cms; or any) are throttled."""
        with self._lock:
            self._throttles.append([n, api])

    def count(self, api: str | None = None, status: int | None = None) -> int:
        return sum(1 for c in self.calls if (api is None or c.api == api) and (status is None or c.status == status))

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> FakeCloud:
        mock = responses.RequestsMock(assert_all_requests_are_fired=False)
        mock.start()
        for method in ("GET", "POST", "PUT", "DELETE"):
            mock.add_callback(method, _RE_KMS, callback=self._wrap("kms", self._kms))
            mock.add_callback(method, _RE_EAS, callback=self._wrap("eas", self._eas))
            mock.add_callback(method, _RE_FC, callback=self._wrap("fc", self._fc))
            mock.add_callback(method, _RE_CMS, callback=self._wrap("cms", self._cms))
        self._mock = mock
        return self

    def stop(self) -> None:
        if self._mock is not None:
            self._mock.stop()
            self._mock.reset()
            self._mock = None

    def __enter__(self) -> FakeCloud:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- dispatch --------------------------------------------------------------------------------

    def _wrap(self, product: str, handler: Callable[..., tuple[int, dict, bytes]]) -> Callable:
        def callback(request: Any) -> tuple[int, dict, bytes]:
            if self.latency_s:
                time.sleep(self.latency_s)
            if self.before_request is not None:
                self.before_request(request)
            url = request.url
            pattern = {"kms": _RE_KMS, "eas": _RE_EAS, "cms": _RE_CMS, "fc": _RE_FC}[product]
            region = pattern.match(url).group(2 if product == "fc" else 1)
            request_id = str(uuid.uuid4()).upper()
            ctx: dict[str, Any] = {"api": product, "action": "?", "region": region, "ak": None}
            try:
                status, headers, body = handler(request, region, request_id, ctx)
            except _Reply as reply:
                status, headers = reply.status, reply.headers
                if ctx["api"] == "fc2":
                    headers = {"X-Fc-Request-Id": request_id, **headers}
                    body = json.dumps(reply.body).encode()
                else:
                    host = urlsplit(url).hostname
                    payload = {"RequestId": request_id, "HostId": host, **reply.body}
                    headers = {"x-acs-request-id": request_id, "x-fc-request-id": request_id, **headers}
                    body = json.dumps(payload).encode()
                headers["Content-Type"] = "application/json"
            with self._lock:
                host = urlsplit(url).hostname or ""
                self.calls.append(Call(ctx["api"], ctx["action"], region, status, ctx["ak"], host))
            return status, headers, body

        return callback

    def _throttled(self, api: str) -> bool:
        with self._lock:
            for t in self._throttles:
                if t[0] > 0 and (t[1] is None or t[1] == api):
                    t[0] -= 1
                    return True
        return False

    def _authorize(self, request: Any, ctx: dict[str, Any], permission: str) -> Key:
        """POP (KMS, EAS, FC 3.0): an ACS3 or RPC signature, the key, its STS token, throttling, RAM."""
        split = urlsplit(request.url)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        auth = request.headers.get("Authorization", "")
        if auth.startswith("ACS3-HMAC-SHA256 "):
            fields = dict(part.split("=", 1) for part in auth[len("ACS3-HMAC-SHA256 "):].split(","))
            key = self._key(fields.get("Credential", ""), ctx)
            if not _acs3_valid(request, split.path, query, fields, key.secret):
                raise _Reply(400, _pop("SignatureDoesNotMatch", _SIGNATURE_MISMATCH))
            token = request.headers.get("x-acs-security-token")
            if token is not None and "x-acs-security-token" not in fields.get("SignedHeaders", "").split(";"):
                raise _Reply(400, _pop("IncompleteSignature", "x-acs-security-token must be signed."))
        elif "Signature" in query:
            params = dict(query)
            if request.body:
                body = request.body.decode() if isinstance(request.body, bytes) else request.body
                params.update(parse_qsl(body, keep_blank_values=True))
            key = self._key(params.get("AccessKeyId", ""), ctx)
            if not _rpc_valid(request.method, params, key.secret):
                raise _Reply(400, _pop("SignatureDoesNotMatch", _SIGNATURE_MISMATCH))
            token = params.get("SecurityToken")
        else:
            raise _Reply(400, _pop("IncompleteSignature", "The request signature does not conform to Aliyun standards"))
        self._check_token(key, token)
        if self._throttled(ctx["api"]):
            if ctx["api"] == "fc3":
                raise _Reply(429, _pop("ResourceThrottled", "Request was throttled, please retry later."))
            raise _Reply(400, _pop("Throttling.User", "Request was denied due to user flow control."))
        if permission not in key.allow:
            if ctx["api"] == "fc3":
                raise _Reply(403, _pop("AccessDenied", f"the caller is not authorized to perform '{permission}'"))
            raise _Reply(
                403,
                _pop("Forbidden.RAM", "User not authorized to operate on the specified resource, or this API doesn't "
                                      "support RAM."),
            )
        return key

    def _key(self, access_key_id: str, ctx: dict[str, Any]) -> Key:
        ctx["ak"] = access_key_id or None
        key = self.keys.get(access_key_id)
        if key is None:
            if ctx["api"] == "fc2":
                raise _Reply(403, {"ErrorCode": "InvalidAccessKeyID", "ErrorMessage": "invalid access key ID"})
            raise _Reply(404, _pop("InvalidAccessKeyId.NotFound", "Specified access key is not found."))
        return key

    def _check_token(self, key: Key, token: str | None) -> None:
        if key.token is None:
            return
        if not token:
            raise _Reply(400, _pop("MissingSecurityToken", "SecurityToken is mandatory for a temporary access key."))
        if not hmac.compare_digest(token, key.token):
            raise _Reply(400, _pop("InvalidSecurityToken.MismatchWithAccessKey",
                                   "The security token you provided does not match the access key."))
        if key.expired:
            raise _Reply(400, _pop("InvalidSecurityToken.Expired", "Specified SecurityToken is expired."))

    # --- KMS (RPC) ---------------------------------------------------------------------------------

    def _kms(self, request: Any, region: str, request_id: str, ctx: dict) -> tuple[int, dict, bytes]:
        split = urlsplit(request.url)
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        if request.body and request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            body = request.body.decode() if isinstance(request.body, bytes) else request.body
            params.update(parse_qsl(body, keep_blank_values=True))
        action = request.headers.get("x-acs-action") or params.get("Action", "")
        ctx["action"] = action
        if split.path not in ("", "/") or request.method not in ("GET", "POST"):
            raise _Reply(404, _pop("InvalidAction.NotFound", "Specified api is not found, please check your url and "
                                                            "method."))
        if action != "GetSecretValue":
            raise _Reply(404, _pop("InvalidAction.NotFound", f"Specified api {action} is not found."))
        self._authorize(request, ctx, "kms:GetSecretValue")
        name = params.get("SecretName")
        if not name:
            raise _Reply(400, _pop("MissingParameter", "The parameter SecretName is required."))
        stage = params.get("VersionStage") or "ACSCurrent"
        with self._lock:
            secret = self.kms.get((region, name))
            version = secret.stages.get(stage) if secret else None
            version = params.get("VersionId") or version
            if secret is None or version not in secret.versions:
                raise _Reply(404, _pop("Forbidden.ResourceNotFound", f"The resource {name} is not found."))
            value = secret.versions[version]
            stages = [s for s, v in secret.stages.items() if v == version]
            data_type = secret.data_type
        body = {
            "RequestId": request_id,
            "SecretName": name,
            "SecretType": "Generic",
            "SecretData": value,
            "SecretDataType": data_type,
            "VersionId": version,
            "VersionStages": {"VersionStage": stages},
            "CreateTime": "2026-11-01T08:00:00Z",
        }
        return 200, {"x-acs-request-id": request_id, "Content-Type": "application/json"}, json.dumps(body).encode()

    # --- EAS (ROA) ---------------------------------------------------------------------------------

    def _eas(self, request: Any, region: str, request_id: str, ctx: dict) -> tuple[int, dict, bytes]:
        path = urlsplit(request.url).path
        m = re.match(r"^/api/v2/services/([^/]+)/([^/]+)$", path)
        if not m or request.method != "GET":
            raise _Reply(404, _pop("InvalidAction.NotFound", f"Specified api is not found: {request.method} {path}"))
        ctx["action"] = "DescribeService"
        self._authorize(request, ctx, "eas:DescribeService")
        cluster, name = unquote(m.group(1)), unquote(m.group(2))
        if cluster != region:
            raise _Reply(400, _pop("InvalidParameter", f"ClusterId {cluster} does not match the endpoint's region"))
        with self._lock:
            service = dict(self.eas.get((region, name)) or {})
        if not service:
            raise _Reply(404, _pop("InvalidService.NotFound", f"service {name} not found in {region}"))
        body = {"RequestId": request_id, **service}
        return 200, {"x-acs-request-id": request_id, "Content-Type": "application/json"}, json.dumps(body).encode()

    # --- CloudMonitor (RPC) -------------------------------------------------------------------------

    def _cms(self, request: Any, region: str, request_id: str, ctx: dict) -> tuple[int, dict, bytes]:
        """PutCustomMetric: the MetricList.N.* parameters, checked as the API documents them, recorded as one batch."""
        split = urlsplit(request.url)
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        if request.body and request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            body = request.body.decode() if isinstance(request.body, bytes) else request.body
            params.update(parse_qsl(body, keep_blank_values=True))
        action = request.headers.get("x-acs-action") or params.get("Action", "")
        ctx["action"] = action
        if split.path not in ("", "/") or request.method not in ("GET", "POST") or action != "PutCustomMetric":
            raise _Reply(404, _pop("InvalidAction.NotFound", f"Specified api {action} is not found."))
        if (request.headers.get("x-acs-version") or params.get("Version")) != "2019-01-01":
            raise _Reply(400, _pop("InvalidVersion", "Specified parameter Version is not valid."))
        self._authorize(request, ctx, "cms:PutCustomMetric")
        batch = _metric_list(params)
        with self._lock:
            self.metric_batches.append(batch)
        body = {"RequestId": request_id, "Code": "200", "Message": "success"}
        return 200, {"x-acs-request-id": request_id, "Content-Type": "application/json"}, json.dumps(body).encode()

    # --- FC (3.0 ROA, 2.0 fc2) -------------------------------------------------------------------

    def _fc(self, request: Any, region: str, request_id: str, ctx: dict) -> tuple[int, dict, bytes]:
        split = urlsplit(request.url)
        account = _RE_FC.match(request.url).group(1)
        m3 = re.match(r"^/2023-03-30/functions/([^/]+)/invocations$", split.path)
        m2 = re.match(r"^/2016-08-15/services/([^/]+)/functions/([^/]+)/invocations$", split.path)
        if m2:
            ctx["api"] = "fc2"
        elif m3:
            ctx["api"] = "fc3"
        else:
            raise _Reply(404, _pop("PathNotSupported", f"{request.method} {split.path} is not supported"))
        ctx["action"] = "InvokeFunction"
        if request.method != "POST":
            raise _Reply(405, _pop("MethodNotAllowed", f"{request.method} is not allowed"))
        if m3:
            self._authorize(request, ctx, "fc:InvokeFunction")
            name, service = unquote(m3.group(1)), None
            qualifier = dict(parse_qsl(split.query)).get("qualifier") or "LATEST"
        else:
            self._authorize_fc2(request, split.path, ctx)
            service, _, qualifier = unquote(m2.group(1)).partition(".")
            name, qualifier = unquote(m2.group(2)), qualifier or "LATEST"
        if account != self.account_id:
            raise self._fc_error(ctx, 403, "AccessDenied", f"account {account} is not the caller's account")
        with self._lock:
            fn = self.functions.get((region, service, name))
            if service is not None and not any(k[:2] == (region, service) for k in self.functions):
                raise self._fc_error(ctx, 404, "ServiceNotFound", f"service '{service}' does not exist")
        if fn is None:
            raise self._fc_error(ctx, 404, "FunctionNotFound", f"function '{name}' does not exist")
        if qualifier not in fn.qualifiers:
            raise self._fc_error(ctx, 404, "AliasNotFound", f"alias '{qualifier}' does not exist")
        payload = request.body or b""
        payload = payload.encode() if isinstance(payload, str) else payload
        kind = request.headers.get("x-fc-invocation-type", "Sync")
        headers = {"x-fc-request-id": request_id}
        with self._lock:
            self.invocations.append({"api": ctx["api"], "function": name, "service": service, "qualifier": qualifier,
                                     "type": kind, "payload": payload, "request_id": request_id})
        if kind == "Async":
            return 202, headers, b""
        if fn.error is not None:
            err = {"errorMessage": fn.error, "errorType": "Exception", "stackTrace": ["  File \"index.py\", line 7"]}
            return 200, {**headers, "x-fc-error-type": "UnhandledInvocationError",
                         "Content-Type": "application/json"}, json.dumps(err).encode()
        result = fn.result(payload) if callable(fn.result) else fn.result
        return 200, headers, result

    def _authorize_fc2(self, request: Any, path: str, ctx: dict) -> None:
        """fc2: `authorization: FC <ak>:<base64 HMAC-SHA256>` over method, md5, type, date, x-fc-* headers, path."""
        auth = request.headers.get("authorization", "")
        if not auth.startswith("FC ") or ":" not in auth or not request.headers.get("date"):
            raise _Reply(403, {"ErrorCode": "MissingRequiredHeader", "ErrorMessage": "authorization and date needed"})
        ak_id, _, signature = auth[3:].partition(":")
        key = self._key(ak_id, ctx)
        fc_headers = sorted((k.lower(), v) for k, v in request.headers.items() if k.lower().startswith("x-fc-"))
        canonical = "".join(f"{k}:{v}\n" for k, v in fc_headers)
        string_to_sign = "\n".join([
            request.method.upper(),
            request.headers.get("content-md5", ""),
            request.headers.get("content-type", ""),
            request.headers.get("date", ""),
            canonical + unquote(path),
        ])
        expected = base64.b64encode(hmac.new(key.secret.encode(), string_to_sign.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(expected.decode(), signature):
            raise _Reply(403, {"ErrorCode": "SignatureNotMatch", "ErrorMessage": "signature does not match"})
        token = request.headers.get("x-fc-security-token")
        if key.token is not None and not token:
            raise _Reply(403, {"ErrorCode": "InvalidSecurityToken", "ErrorMessage": "the security token is missing"})
        if key.token is not None and (token != key.token or key.expired):
            raise _Reply(403, {"ErrorCode": "InvalidSecurityToken", "ErrorMessage": "invalid or expired token"})
        if self._throttled("fc2"):
            raise _Reply(429, {"ErrorCode": "ResourceThrottled", "ErrorMessage": "Reserve resource exhausted"})
        if "fc:InvokeFunction" not in key.allow:
            raise _Reply(403, {"ErrorCode": "AccessDenied", "ErrorMessage": "not authorized: fc:InvokeFunction"})

    @staticmethod
    def _fc_error(ctx: dict, status: int, code: str, message: str) -> _Reply:
        if ctx["api"] == "fc2":
            return _Reply(status, {"ErrorCode": code, "ErrorMessage": message})
        return _Reply(status, _pop(code, message))


def _metric_list(params: dict[str, str]) -> list[dict[str, Any]]:
    """MetricList.N.{GroupId,MetricName,Dimensions,Time,Type,Values[,Period]} -> entries, or the API's 400."""
    entries: dict[int, dict[str, str]] = {}
    for name, value in params.items():
        m = re.match(r"^MetricList\.(\d+)\.(\w+)$", name)
        if m:
            entries.setdefault(int(m.group(1)), {})[m.group(2)] = value
    if not entries:
        raise _Reply(400, _pop("MissingParameter", "The parameter MetricList is required."))
    if sorted(entries) != list(range(1, len(entries) + 1)) or len(entries) > CMS_BATCH_LIMIT:
        sent = f"MetricList.N must be 1 to {CMS_BATCH_LIMIT} ({len(entries)} sent)"
        raise _Reply(400, _pop("InvalidParameter", sent))
    out = []
    for n in sorted(entries):
        e = entries[n]
        for field_name in ("GroupId", "MetricName", "Dimensions", "Type", "Values"):
            if not e.get(field_name):
                raise _Reply(400, _pop("MissingParameter", f"The parameter MetricList.{n}.{field_name} is required."))
        if not _RE_METRIC_NAME.match(e["MetricName"]) or e["Type"] not in ("0", "1") or not e["GroupId"].isdigit():
            raise _Reply(400, _pop("InvalidParameter", f"MetricList.{n}: bad MetricName, Type or GroupId"))
        try:
            dims, values = json.loads(e["Dimensions"]), json.loads(e["Values"])
        except ValueError:
            raise _Reply(400, _pop("InvalidParameter", f"MetricList.{n}: Dimensions and Values are JSON")) from None
        if not isinstance(dims, dict) or not all(isinstance(v, str) and _RE_DIMENSION.match(v) for v in dims.values()):
            raise _Reply(400, _pop("InvalidParameter", f"MetricList.{n}.Dimensions: a map of 1-64 character values"))
        if not isinstance(values, dict) or not all(isinstance(v, (int, float)) for v in values.values()):
            raise _Reply(400, _pop("InvalidParameter", f"MetricList.{n}.Values: a map of numbers"))
        if e["Type"] == "1" and e.get("Period") not in ("60", "300"):
            raise _Reply(400, _pop("InvalidParameter", f"MetricList.{n}.Period: 60 or 300 for aggregated values"))
        time_ = e.get("Time", "")
        if time_ and not time_.isdigit():
            raise _Reply(400, _pop("InvalidParameter", f"MetricList.{n}.Time: a timestamp in milliseconds"))
        out.append({"group_id": int(e["GroupId"]), "metric": e["MetricName"], "dimensions": dims, "values": values,
                    "time_ms": int(time_) if time_ else None, "type": int(e["Type"])})
    return out


def _pop(code: str, message: str) -> dict[str, str]:
    return {"Code": code, "Message": message}


def _acs3_valid(request: Any, path: str, query: dict[str, str], fields: dict[str, str], secret: str) -> bool:
    """ACS3-HMAC-SHA256 (signature V3): recompute it from the wire request with the key's secret."""
    signed = fields.get("SignedHeaders", "")
    names = [n for n in signed.split(";") if n]
    if not names or "host" not in names or "x-acs-date" not in names:
        return False
    body = request.body or b""
    body = body.encode() if isinstance(body, str) else body
    payload_hash = request.headers.get("x-acs-content-sha256", "")
    if payload_hash != hashlib.sha256(body).hexdigest():
        return False
    canonical_query = "&".join(f"{k}={quote(query[k], safe='~')}" for k in sorted(query))
    headers = "".join(f"{n}:{request.headers.get(n, '').strip()}\n" for n in names)
    canonical = "\n".join([request.method, path or "/", canonical_query, headers, signed, payload_hash])
    to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    expected = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields.get("Signature", ""))


def _rpc_valid(method: str, params: dict[str, str], secret: str) -> bool:
    """RPC signature V2 (HMAC-SHA1 over the sorted, percent-encoded parameters)."""
    def enc(s: str) -> str:
        return quote(s, safe="~")

    items = sorted((k, v) for k, v in params.items() if k != "Signature")
    canonical = "&".join(f"{enc(k)}={enc(v)}" for k, v in items)
    to_sign = f"{method.upper()}&{enc('/')}&{enc(canonical)}"
    expected = base64.b64encode(hmac.new((secret + "&").encode(), to_sign.encode(), hashlib.sha1).digest()).decode()
    return hmac.compare_digest(expected, params.get("Signature", ""))
