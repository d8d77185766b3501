"""Alibaba Cloud control-plane calls with the function's own access key: KMS GetSecretValue, EAS
DescribeService, and the client plumbing FC InvokeFunction shares (endpoints, SDK config, retries).

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
from dataclasses import dataclass
from typing import Any, TypeVar

from shared import logs
from shared.credentials.access_key import AccessKey, resolve_access_key
from shared.credentials.errors import CloudError
from shared.credentials.sdk_errors import classify
from shared.credentials.settings import CloudSettings

T = TypeVar("T")

# EAS statuses in which running instances still serve requests (a scale-out or rolling update
# keeps the old instances answering); any other status, or 0 running instances, is "not running".
EAS_SERVING = ("Running", "Scaling", "Updating")


@dataclass(frozen=True)
class EasService:
    """What DescribeService says about a service (the token aside)."""

    region: str
    name: str
    status: str
    running: int
    total: int
    intranet_endpoint: str | None = None
    message: str | None = None
    reason: str | None = None

    @property
    def serving(self) -> bool:
        return self.status in EAS_SERVING and self.running > 0

    def summary(self) -> dict[str, Any]:
        return {"status": self.status, "running": self.running, "total": self.total}


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

    def get_secret_value(self, name: str, stage: str | None = None) -> str:
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
        return value  # the provider strips it, or refuses it naming the reference

    # EAS -------------------------------------------------------------------------------------------

    def describe_service(self, region: str, name: str) -> tuple[EasService, str]:
        """EAS DescribeService: the service's state and endpoint, and its access token."""
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
            account = self._account_id()
        return self.settings.endpoint(product, region, self.environ, account)

    def _account_id(self) -> str:
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
