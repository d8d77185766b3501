"""Demo-like probe history for the status page, metrics and browser tests.

Rounds are real ProbeResults (the shape the probe function records), either recorded into a store
with shared.history.record.record_round, the way the probe function does, or wrapped straight into
HistoryView objects when a test wants exact figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared.history.record import record_round
from shared.history.view import HistoryView, Hours, Point, Series, TargetHistory, rfc3339
from shared.state.store import Store
from shared.verdict.codes import Code
from shared.verdict.diagnose import diagnose
from shared.verdict.result import AddressResult, ProbeResult
from shared.verdict.status import Status

ZONE_A, ZONE_B = "127.0.0.2", "127.0.0.3"
PL_URL = "http://ep-demo01.dashscope.ap-southeast-1.privatelink.aliyuncs.com/compatible-mode/v1/models"
CUSTOM_URL = "https://vpc-ap-southeast-1.dashscope.aliyuncs.com/compatible-mode/v1/models"
EAS_URL = "http://1234567890.vpc.ap-southeast-1.pai-eas.aliyuncs.com/api/predict/llm_demo/v1/chat/completions"
CERT_NOT_AFTER = "2027-03-01T00:00:00Z"


@dataclass(frozen=True)
class DemoTarget:
    name: str
    kind: str
    url: str


DEMO_TARGETS = (
    DemoTarget("qwen-privatelink", "dashscope", PL_URL),
    DemoTarget("llm-eas-vpc", "eas", EAS_URL),  # second in config order, but EAS: grouped after DashScope
    DemoTarget("qwen-custom-domain", "dashscope", CUSTOM_URL),
)


def address(ip: str, status: Status, total_ms: float | None, code: Code | None = None) -> AddressResult:
    a = AddressResult(ip, 38443, True, status, attempts=1)
    a.phases_ms = {"dns": 0.2, "connect": 1.5, "tls": None, "ttfb": None if total_ms is None else total_ms - 3,
                   "total": total_ms}
    a.blackbox_phases_ms = {"resolve": 0.2, "connect": 1.5, "tls": None,
                            "processing": None if total_ms is None else total_ms - 4, "transfer": 0.5}
    if code is not None:
        a.diagnosis = diagnose(code, f"{ip}:38443: {code.value}")
        a.http_status = None
    else:
        a.http_status = 200
    return a


def result(target: DemoTarget, zone_b_down: bool, total_ms: float, at: float, eas_down: bool = False) -> ProbeResult:
    """One round of `target`: both zones up, or zone B refusing (the target degraded, as in the demo); an EAS
    target with `eas_down` answers 503 no healthy upstream (down)."""
    if target.kind == "eas" and eas_down:
        a = address(ZONE_A, Status.DOWN, 9.0, Code.NO_READY_INSTANCE)
        a.http_status = 503
        r = ProbeResult(target.name, target.kind, target.url, Status.DOWN, http_status=503, addresses=[a],
                        checked_at=rfc3339(at), mode="chat", diagnosis=diagnose(Code.NO_READY_INSTANCE, "HTTP 503"))
        r.phases_ms, r.blackbox_phases_ms = dict(a.phases_ms), dict(a.blackbox_phases_ms)
        return r
    addresses = [address(ZONE_A, Status.UP, total_ms)]
    if target.kind == "dashscope":
        addresses.append(address(ZONE_B, Status.DOWN, 0.9, Code.CONNECT_REFUSED) if zone_b_down
                         else address(ZONE_B, Status.UP, total_ms + 1))
    status = Status.DEGRADED if zone_b_down and target.kind == "dashscope" else Status.UP
    r = ProbeResult(target.name, target.kind, target.url, status, http_status=200, addresses=addresses,
                    checked_at=rfc3339(at), mode="models")
    lead = addresses[0]
    r.phases_ms, r.blackbox_phases_ms = dict(lead.phases_ms), dict(lead.blackbox_phases_ms)
    if status is Status.DEGRADED:
        r.diagnosis = diagnose(Code.ZONES_DOWN, f"1 of 2 down ({ZONE_B}: connect_refused)")
    if target.url.startswith("https://"):
        r.tls_days_left, r.tls_not_after = 88, CERT_NOT_AFTER
        r.blackbox_phases_ms["tls"] = r.phases_ms["tls"] = 2.5
    return r


def demo_rounds(now: float, rounds: int = 24, every_s: float = 5.0, zone_b_down: Sequence[int] = (10, 11, 12, 13),
                eas_down: Sequence[int] = ()) -> list[tuple[float, list[ProbeResult]]]:
    """`rounds` rounds ending at `now`, zone B down in rounds `zone_b_down` (0-based) and the EAS service
    without instances in rounds `eas_down`, latency moving."""
    out = []
    for i in range(rounds):
        at = now - (rounds - 1 - i) * every_s
        total = 20.0 + (i * 7) % 30
        out.append((at, [result(t, i in zone_b_down, total, at, i in eas_down) for t in DEMO_TARGETS]))
    return out


def record_demo(store: Store, now: float, **kwargs) -> list[tuple[float, list[ProbeResult]]]:
    """Record demo rounds into `store` as the probe function does (this test holds no other writer)."""
    rounds = demo_rounds(now, **kwargs)
    for at, results in rounds:
        record_round(store, results, now=at)
    return rounds


def history(target: str, kind: str = "dashscope", *, latest: ProbeResult | None = None,
            points: Sequence[Point] = (), since: str | None = None, uptime: dict | None = None,
            tls_days_left: int | None = None, url: str = PL_URL) -> TargetHistory:
    return TargetHistory(
        target=target, kind=kind, url=url, latest=None if latest is None else latest.to_dict(), since=since,
        points=Series.of(points), hours=Hours(), uptime=uptime or {"24h": None, "7d": None, "30d": None},
        tls_days_left=tls_days_left,
    )


def view(targets: Sequence[TargetHistory], now: float) -> HistoryView:
    return HistoryView(generated_at=rfc3339(now), round_at=rfc3339(now - 5), targets=tuple(targets))


KEY_STATUS = "gwk-canary-status-4d1c9a7e05"  # sees every target
KEY_EAS = "gwk-canary-easonly-8f3b2e61c9"  # may use llm-eas-vpc only
STATUS_ENV = {"ST_KEY_ALL": KEY_STATUS, "ST_KEY_EAS": KEY_EAS, "ST_UPSTREAM": "sk-canarystatusupstream77aa"}
PL_HOST, CUSTOM_HOST = PL_URL.split("/")[2], CUSTOM_URL.split("/")[2]
EAS_HOST = EAS_URL.split("/")[2]


def status_config(state_dir: str, *, public: bool = False) -> dict:
    """A vpcprobe.yaml with the demo's three targets (pinned to loopback: nothing is resolved), a file
    store and a gateway with a key for all targets and one for the EAS target only."""
    return {
        "region": "ap-southeast-1",
        "resolve": {PL_HOST: [f"{ZONE_A}:38443", f"{ZONE_B}:38443"], CUSTOM_HOST: [f"{ZONE_A}:38444"],
                    EAS_HOST: [f"{ZONE_A}:38443"]},
        "state": {"backend": "file", "path": state_dir},
        "alerts": {"channels": [{"name": "console", "type": "console"}]},
        "targets": [
            {"name": "qwen-privatelink", "kind": "dashscope", "endpoint": PL_URL.split("/compatible-mode")[0],
             "credential": "env:ST_UPSTREAM"},
            {"name": "llm-eas-vpc", "kind": "eas", "endpoint": EAS_URL.split("/v1/")[0],
             "credential": "env:ST_UPSTREAM", "probe": {"mode": "chat", "model": "m"}},
            {"name": "qwen-custom-domain", "kind": "dashscope", "endpoint": CUSTOM_URL.split("/compatible-mode")[0],
             "credential": "env:ST_UPSTREAM"},
        ],
        "gateway": {
            "keys": [{"name": "status-all", "key": "env:ST_KEY_ALL"},
                     {"name": "eas-only", "key": "env:ST_KEY_EAS", "targets": ["llm-eas-vpc"]}],
            "status": {"public": public},
        },
    }


def start_status_gateway(state_dir: str, *, public: bool = False):
    """The real gateway app, served by uvicorn on 127.0.0.1 (any free port), over the file store `state_dir`."""
    from shared.config.load import parse_config
    from shared.credentials.provider import TokenProvider
    from shared.credentials.settings import CloudSettings
    from shared.gateway.app import create_app
    from shared.gateway.server import start_in_thread

    config = parse_config(status_config(state_dir, public=public), path="status-test.yaml")
    tokens = TokenProvider(dict(STATUS_ENV), CloudSettings(region="ap-southeast-1"))
    app = create_app(config, tokens=tokens)
    return app, start_in_thread(app, "127.0.0.1", 0)
