"""The `metrics:` section of vpcprobe.yaml: the optional CloudMonitor export of every round's figures.

Read by config/load.py only when the file has a `metrics:` section, so a config without one costs
the probe's cold start nothing; a wrong field is a config error naming it, never a failed export
discovered one round later.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.config.reader import Reader
from shared.credentials.settings import CloudSettings, in_fc

# CloudMonitor's API hosts: the VPC one inside FC (the function sits in a VPC), the public one elsewhere.
DEFAULT_ENDPOINTS = {"vpc": "cms-vpc.{region}.aliyuncs.com", "public": "metrics.{region}.aliyuncs.com"}
MAX_DEADLINE_S = 60.0  # the probe function's timeout is 120 s: the export never takes half of it
_RE_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}\Z")  # metric names: [A-Za-z0-9_], a letter first, <= 64
_RE_ENDPOINT = re.compile(r"^(https?://)?[A-Za-z0-9.{}_-]+(:\d+)?\Z")


@dataclass(frozen=True)
class CloudMonitorSettings:
    """Where and how patiently a round's figures go to CloudMonitor (PutCustomMetric)."""

    region: str
    group_id: int = 0  # the application group; 0 = none
    prefix: str = "vpcprobe_"  # metric names are <prefix>availability, <prefix>total_ms, ...
    endpoint: str | None = None  # host or URL template ({region}); None = cms-vpc in FC, metrics.<region> outside
    network: str | None = None  # cloud.network: vpc | public | None (vpc inside FC)
    timeout_s: float = 5.0  # one call
    deadline_s: float = 10.0  # every call of a round, retries and backoff included

    def host(self, environ: Mapping[str, str] | None = None) -> str:
        """The API host (or URL) to send to: the override, else the VPC or public default."""
        network = self.network or ("vpc" if in_fc(environ) else "public")
        return (self.endpoint or DEFAULT_ENDPOINTS[network]).format(region=self.region)


def read_metrics(
    data: dict[str, Any], region: str | None, cloud: CloudSettings, problems: list[str], path: str
) -> CloudMonitorSettings | None:
    """The `metrics:` section into `problems`; None when CloudMonitor export is absent or disabled."""
    r = Reader(data.get("metrics"), "metrics", problems, path)
    raw = r.get("cloudmonitor")
    r.finish()
    if raw is None:
        return None
    cm = Reader(raw, "metrics.cloudmonitor", problems, path)
    enabled = cm.bool("enabled", True)
    base = CloudMonitorSettings(region="")
    group_id = cm.int("group_id", base.group_id)
    prefix = cm.str("prefix", base.prefix)
    if prefix is not None and not _RE_PREFIX.match(prefix):
        cm.error(f"must be 1-40 letters, digits or '_', starting with a letter (got {prefix[:60]!r})", "prefix")
    endpoint = cm.str("endpoint")
    placeholders = set(re.findall(r"{([^}]*)}", endpoint or ""))
    if endpoint is not None and (not _RE_ENDPOINT.match(endpoint) or placeholders - {"region"}):
        cm.error(
            f"must be a host name or http(s)://host[:port], optionally with {{region}} (got {endpoint[:100]!r}), "
            "e.g. cms-vpc.{region}.aliyuncs.com",
            "endpoint",
        )
    timeout = cm.seconds("timeout", base.timeout_s) or base.timeout_s
    deadline = cm.seconds("deadline", base.deadline_s) or base.deadline_s
    if deadline > MAX_DEADLINE_S:
        cm.error(f"must be at most {MAX_DEADLINE_S:.0f}s: the probe function's timeout is 120 s", "deadline")
    cm.finish()
    if not enabled:
        return None
    if not region:
        cm.error("needs the region to send to: set `region:` at the top of the file (FC sets FC_REGION)")
        return None
    return CloudMonitorSettings(
        region=region,
        group_id=group_id,
        prefix=prefix or base.prefix,
        endpoint=endpoint,
        network=cloud.network,
        timeout_s=min(timeout, deadline),
        deadline_s=deadline,
    )
