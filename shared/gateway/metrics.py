"""GET /metrics: the latest round of every target in Prometheus' text format, by prometheus_client.

Where blackbox_exporter has a metric for the same fact, it has blackbox's name, type, unit and
meaning (probe_success, probe_duration_seconds, probe_http_duration_seconds{phase}, ...), labelled
by `target`, so its Grafana dashboards work after one relabel (README "Status page and metrics").
Those are per target, from the result's leading address, as the result object reports them; the
per-address figures and what blackbox has no name for are vpcprobe_*. Everything is a gauge: each
value is what the latest round measured, not a count. A fresh registry per scrape holds one
collector over the cached history view, so nothing is kept between scrapes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from shared.alerts.policy import AlertState
from shared.verdict.result import BLACKBOX_PHASES, epoch_of
from shared.verdict.status import Status

if TYPE_CHECKING:
    from shared.gateway.history_cache import HistorySnapshot

# blackbox counts an answer as a success; here up and degraded (it answered, maybe slowly or from one zone)
ANSWERED = frozenset({Status.UP.value, Status.DEGRADED.value})
UPTIME_WINDOWS = ("24h", "7d", "30d")


def render(snapshot: HistorySnapshot, allowed: Callable[[str], bool]) -> bytes:
    """The text exposition of `snapshot`'s targets that `allowed` lets the caller see."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot, allowed))
    return generate_latest(registry)


class _SnapshotCollector:
    """A prometheus_client custom collector: yields metric families built from one snapshot."""

    def __init__(self, snapshot: HistorySnapshot, allowed: Callable[[str], bool]) -> None:
        self._snapshot = snapshot
        self._allowed = allowed

    def collect(self) -> Iterator[Metric]:
        f = _Families()
        view = self._snapshot.view
        alert_states = self._snapshot.alert_states
        for th in view.targets:
            if not self._allowed(th.target):
                continue
            _target_metrics(f, th.target, th.latest)
            for window in UPTIME_WINDOWS:
                ratio = th.uptime.get(window)
                if ratio is not None:
                    f.uptime.add_metric([th.target, window], ratio / 100.0)
            if alert_states is not None and th.target in alert_states:
                current = alert_states[th.target]
                for state in AlertState:
                    f.alert_state.add_metric([th.target, state.value], 1.0 if state.value == current else 0.0)
        round_at = epoch_of(view.round_at)
        if round_at is not None:
            f.last_round.add_metric([], round_at)
        yield from f.all()


class _Families:
    """The metric families of one scrape, with blackbox_exporter's help texts where the name is blackbox's."""

    def __init__(self) -> None:
        t, ta = ["target"], ["target", "address"]
        g = GaugeMetricFamily
        self.success = g("probe_success", "Displays whether or not the probe was a success", labels=t)
        self.duration = g("probe_duration_seconds", "Returns how long the probe took to complete in seconds",
                          labels=t)
        self.http_duration = g("probe_http_duration_seconds",
                               "Duration of http request by phase, summed over all redirects",
                               labels=["target", "phase"])
        self.http_status = g("probe_http_status_code", "Response HTTP status code", labels=t)
        self.http_ssl = g("probe_http_ssl", "Indicates if SSL was used for the final redirect", labels=t)
        self.cert_expiry = g("probe_ssl_earliest_cert_expiry", "Returns last SSL chain expiry in unixtime",
                             labels=t)
        self.dns = g("probe_dns_lookup_time_seconds", "Returns the time taken for probe dns lookup in seconds",
                     labels=t)
        self.status = g("vpcprobe_target_status",
                        "The target's verdict in the latest round, one-hot: 1 for its status label, 0 for the others",
                        labels=["target", "status"])
        self.diagnosis = g("vpcprobe_diagnosis", "The diagnosis code of the latest round (1); absent when up",
                           labels=["target", "code"])
        self.zones_up = g("vpcprobe_zones_up", "Addresses (one per zone) that answered (up or degraded)", labels=t)
        self.zones_total = g("vpcprobe_zones_total", "Addresses (one per zone) the target's name resolved to",
                             labels=t)
        self.address_success = g("vpcprobe_address_success", "Whether this address answered (up or degraded)",
                                 labels=ta)
        self.address_duration = g("vpcprobe_address_duration_seconds",
                                  "How long the probe of this address took, dns included, in seconds", labels=ta)
        self.uptime = g("vpcprobe_uptime_ratio",
                        "Share of rounds available (up or degraded; unknown rounds left out) over the window",
                        labels=["target", "window"])
        self.alert_state = g("vpcprobe_alert_state",
                             "The target's alert state, one-hot: 1 for its state label (ok, pending, firing)",
                             labels=["target", "state"])
        self.last_round = g("vpcprobe_last_round_timestamp_seconds",
                            "When the latest recorded probe round ran, in unixtime (alert when it gets old)")

    def all(self) -> Iterator[Metric]:
        return iter(vars(self).values())


def _target_metrics(f: _Families, target: str, latest: dict[str, Any] | None) -> None:
    """The families' samples of one target's latest result (a ProbeResult.to_dict())."""
    if not latest:
        return
    status = latest.get("status")
    for s in Status:
        f.status.add_metric([target, s.value], 1.0 if s.value == status else 0.0)
    diagnosis = latest.get("diagnosis") or {}
    if diagnosis.get("code"):
        f.diagnosis.add_metric([target, str(diagnosis["code"])], 1.0)
    addresses = [a for a in latest.get("addresses") or [] if isinstance(a, dict)]
    f.zones_total.add_metric([target], float(len(addresses)))
    f.zones_up.add_metric([target], float(sum(a.get("status") in ANSWERED for a in addresses)))
    for a in addresses:
        address = f"{a.get('ip')}:{a.get('port')}"
        f.address_success.add_metric([target, address], 1.0 if a.get("status") in ANSWERED else 0.0)
        total = (a.get("phases_ms") or {}).get("total")
        if total is not None:
            f.address_duration.add_metric([target, address], total / 1000.0)
    if status == Status.UNKNOWN.value:
        return  # the prober could not keep up: no news, so no probe_* figures (a gap, not a failure)
    phases = latest.get("phases_ms") or {}
    blackbox = latest.get("blackbox_phases_ms") or {}
    f.success.add_metric([target], 1.0 if status in ANSWERED else 0.0)
    if phases.get("total") is not None:
        f.duration.add_metric([target], phases["total"] / 1000.0)
    for phase in BLACKBOX_PHASES:
        # as blackbox does: every phase, 0 for one not reached (tls on plain http, transfer after a refusal)
        f.http_duration.add_metric([target, phase], (blackbox.get(phase) or 0.0) / 1000.0)
    f.http_status.add_metric([target], float(latest.get("http_status") or 0))
    f.http_ssl.add_metric([target], 1.0 if str(latest.get("url", "")).startswith("https://") else 0.0)
    f.dns.add_metric([target], (blackbox.get("resolve") or phases.get("dns") or 0.0) / 1000.0)
    expiry = epoch_of(latest.get("tls_not_after"))
    if expiry is not None:
        f.cert_expiry.add_metric([target], expiry)

