"""Each round's per-target figures to CloudMonitor as custom metrics (PutCustomMetric), within a deadline.

Why: a CloudMonitor alarm rule on `<prefix>availability` pages through CloudMonitor's own contacts,
the backstop when DingTalk and email are down together. The export never fails the round: whatever
goes wrong becomes the summary's `cloudmonitor` field and one log line, and a deadline bounds how long
a slow or throttling CloudMonitor can hold the function. The SDK (alibabacloud-cms20190101, ~0.3 s to
import) loads with the first export only.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from shared import logs
from shared.credentials.access_key import AccessKey, resolve_access_key
from shared.credentials.errors import CloudError
from shared.credentials.sdk_errors import classify
from shared.export.settings import CloudMonitorSettings
from shared.verdict.result import ProbeResult, epoch_of
from shared.verdict.status import Status

BATCH_SIZE = 21  # MetricList.N is 1-21 in the API reference (the user guide says 100): the safe one
RETRIED = ("throttled", "network", "server")  # kinds of CloudError worth another try within the deadline
FIRST_BACKOFF_S = 0.2
MAX_BACKOFF_S = 2.0
RAW = "0"  # Type: raw values, which CloudMonitor aggregates per period itself
_AVAILABLE = (Status.UP, Status.DEGRADED)


class CloudMonitorError(CloudError):
    """PutCustomMetric answered, but not with success (its `Code` is not 200)."""


def metric_entries(results: Sequence[ProbeResult], settings: CloudMonitorSettings) -> list[dict[str, str]]:
    """The round as MetricList items (wire field names), per target: availability 0/1, and for an available
    target total_ms, ttfb_ms and zones_up. An `unknown` target (the prober could not keep up) is left out:
    no news must not look like an outage to an alarm rule, nor like a recovery."""
    out: list[dict[str, str]] = []
    for r in results:
        if r.status not in (*_AVAILABLE, Status.DOWN):
            continue
        dims = json.dumps({"target": r.target, "kind": r.kind}, separators=(",", ":"))
        at = str(_epoch_ms(r.checked_at))
        figures: dict[str, float | None] = {"availability": 1 if r.status in _AVAILABLE else 0}
        if r.status in _AVAILABLE:  # a down target's times are how long failing took, not latency
            figures["total_ms"] = r.phases_ms.get("total")
            figures["ttfb_ms"] = r.phases_ms.get("ttfb")
            figures["zones_up"] = sum(1 for a in r.addresses if a.status in _AVAILABLE)
        for name, value in figures.items():
            if value is None:
                continue
            out.append({
                "GroupId": str(settings.group_id),
                "MetricName": settings.prefix + name,
                "Dimensions": dims,
                "Time": at,
                "Type": RAW,
                "Values": json.dumps({"value": round(float(value), 3)}),
            })
    return out


def export(
    settings: CloudMonitorSettings,
    results: Sequence[ProbeResult],
    *,
    context: Any = None,
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Send the round; the summary's `cloudmonitor` part. Never raises: a failure is `error` in the answer."""
    log = logs.get_logger("vpcprobe.cloudmonitor")
    started = clock()
    entries = metric_entries(results, settings)
    batches = [entries[i : i + BATCH_SIZE] for i in range(0, len(entries), BATCH_SIZE)]
    sender = _Sender(settings, context, environ, clock, sleep, started + settings.deadline_s)
    sent = 0
    error: str | None = None
    try:
        for batch in batches:
            sender.send(batch)
            sent += len(batch)
    except Exception as exc:  # never the round's failure: one field and one log line
        error = logs.redact_text(str(exc) if isinstance(exc, CloudError) else f"{type(exc).__name__}: {exc}")
    summary: dict[str, Any] = {
        "entries": len(entries),
        "sent": sent,
        "calls": sender.calls,
        "retries": sender.retries,
        "ms": round((clock() - started) * 1000, 1),
    }
    if error is not None:
        summary["error"] = error
        log.error("cloudmonitor_export_failed", host=sender.host, request_id=request_id, **summary)
    else:
        log.info("cloudmonitor_export", host=sender.host, request_id=request_id, **summary)
    return summary


class _Sender:
    """PutCustomMetric calls of one round: retried with jittered backoff while the deadline allows."""

    def __init__(
        self,
        settings: CloudMonitorSettings,
        context: Any,
        environ: Mapping[str, str] | None,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        deadline: float,
    ) -> None:
        self.settings = settings
        self.context = context
        self.environ = environ
        self.clock = clock
        self.sleep = sleep
        self.deadline = deadline
        self.host = settings.host(environ)
        self.calls = 0
        self.retries = 0

    def send(self, batch: list[dict[str, str]]) -> None:
        what = f"CloudMonitor PutCustomMetric({len(batch)} entries)"
        backoff = FIRST_BACKOFF_S
        while True:
            left = self.deadline - self.clock()
            if left <= 0:
                raise CloudError(f"{what}: the {self.settings.deadline_s:g}s export deadline passed; the rest of the "
                                 "round's figures were not sent (raise metrics.cloudmonitor.deadline)")
            client = _client(self.host, self.settings.region, resolve_access_key(self.environ, self.context))
            self.calls += 1
            try:
                _put(client, batch, min(self.settings.timeout_s, left))
                return
            except CloudError as exc:
                failure = exc
            except Exception as exc:
                failure = classify(exc, what, "cms", self.settings.region, attempts=self.retries + 1)
            pause = backoff * (0.5 + random.random() / 2)  # jitter: instances do not retry in step
            if failure.kind not in RETRIED or self.clock() + pause >= self.deadline:
                raise failure
            self.retries += 1
            self.sleep(pause)
            backoff = min(backoff * 2, MAX_BACKOFF_S)


def _put(client: Any, batch: list[dict[str, str]], timeout_s: float) -> None:
    """One PutCustomMetric call; an answer whose Code is not 200 is a CloudMonitorError."""
    from alibabacloud_cms20190101 import models
    from darabonba.runtime import RuntimeOptions

    items = [
        models.PutCustomMetricRequestMetricList(
            group_id=e["GroupId"], metric_name=e["MetricName"], dimensions=e["Dimensions"],
            time=e["Time"], type=e["Type"], values=e["Values"],
        )
        for e in batch
    ]
    ms = max(1, int(timeout_s * 1000))
    runtime = RuntimeOptions(autoretry=False, connect_timeout=ms, read_timeout=ms)
    response = client.put_custom_metric_with_options(models.PutCustomMetricRequest(metric_list=items), runtime)
    body = response.body.to_map() if response.body is not None else {}
    code = str(body.get("Code", "200"))
    if code != "200":
        raise CloudMonitorError(
            f"CloudMonitor PutCustomMetric answered {code}: {logs.redact_text(str(body.get('Message') or ''))[:300]}"
        )


_clients: dict[tuple[str, str, str | None], Any] = {}
_clients_lock = threading.Lock()


def _client(host: str, region: str, key: AccessKey) -> Any:
    """One SDK client per host and credentials in a warm instance (FC rotates the role's keys: then a new one)."""
    cache_key = (host, key.access_key_id, key.security_token)
    with _clients_lock:
        client = _clients.get(cache_key)
    if client is None:
        from alibabacloud_cms20190101.client import Client
        from alibabacloud_tea_openapi.models import Config

        scheme, _, rest = host.rpartition("://")
        client = Client(Config(
            access_key_id=key.access_key_id,
            access_key_secret=key.access_key_secret,
            security_token=key.security_token,
            endpoint=rest.rstrip("/"),  # the SDK's own default is a public host: always say which
            protocol=scheme.lower() or "https",
            region_id=region,
        ))
        with _clients_lock:
            if len(_clients) > 8:
                _clients.clear()
            _clients[cache_key] = client
    return client


def _epoch_ms(checked_at: str | None) -> int:
    """Milliseconds since the epoch of a result's RFC 3339 time (now when it has none)."""
    epoch = epoch_of(checked_at)
    return int((time.time() if epoch is None else epoch) * 1000)
