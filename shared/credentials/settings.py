"""Where the control plane is reached and how patiently: the `cloud:` config section and its defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

# Host templates; {region} and {account_id} are filled in. "vpc" is used inside FC (the function
# sits in a VPC and may have no internet access), "public" elsewhere.
DEFAULT_ENDPOINTS = {
    "kms": {"vpc": "kms-vpc.{region}.aliyuncs.com", "public": "kms.{region}.aliyuncs.com"},
    "eas": {"vpc": "pai-eas-manage-vpc.{region}.aliyuncs.com", "public": "pai-eas.{region}.aliyuncs.com"},
    # FC has one documented API host; override with cloud.fc_endpoint (e.g. an internal one) if needed.
    "fc": {"vpc": "{account_id}.{region}.fc.aliyuncs.com", "public": "{account_id}.{region}.fc.aliyuncs.com"},
}


def in_fc(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process runs inside Function Compute (FC sets these for every function)."""
    env = os.environ if environ is None else environ
    return bool(env.get("FC_FUNCTION_NAME") or env.get("FC_INSTANCE_ID"))


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

    def endpoint(self, product: str, region: str, environ: Mapping[str, str], account_id: str | None = None) -> str:
        """The API host (or URL) for a product: the override if given, else the VPC/public default."""
        template = {"kms": self.kms_endpoint, "eas": self.eas_endpoint, "fc": self.fc_endpoint}[product]
        network = self.network or ("vpc" if in_fc(environ) else "public")
        template = template or DEFAULT_ENDPOINTS[product][network]
        return template.format(region=region, account_id=account_id or "")

    def fetch_budget_s(self) -> float:
        """Longest a fetch may take with its retries: the caller's deadline for one control-plane call."""
        backoff = sum(min(self.retry_delay_s * 2**n, 5.0) for n in range(self.retries))
        return self.timeout_s * 2 * (self.retries + 1) + backoff + 1.0
