"""The probe function: event -> config -> probe round -> one log line per target -> summary.

Kept free of anything but the probe path, so the FC handler's cold start imports only this.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from shared import logs
from shared.config.load import Config, ConfigError, load_config
from shared.credentials.provider import shared_provider
from shared.errors import VpcprobeError, clip
from shared.fc.events import BadEvent, parse_probe_event
from shared.probe import loop
from shared.probe.engine import Prober
from shared.verdict.result import ProbeResult
from shared.verdict.status import Status

NO_SHARED_STORE = (
    "no state: section: history needs the store both functions share (state.path on the NAS mount, or "
    "state.backend: oss)"
)

# Warm-instance cache: the parsed config (reloaded when the file changes) and its prober.
_cache: dict[str, Any] = {}


def _prober(config_path: str | None) -> Prober:
    from shared.config.load import find_config

    path = find_config(config_path)
    mtime = os.stat(path).st_mtime if os.path.exists(path) else None
    key = (path, mtime)
    if _cache.get("key") != key:
        config: Config = load_config(path)
        # One provider for the warm instance: cached kms:/eas: values outlive config reloads.
        tokens = shared_provider()
        tokens.configure(config.cloud)
        _cache.update(key=key, prober=Prober(config, tokens))
    return _cache["prober"]


def _alert_config(config: Config) -> Any:
    """The config's alert settings, None without an alerts: section; warns once per config load when
    alert state would go with the FC instance."""
    alerts = config.alerts
    if alerts is None:
        return None
    if _cache.get("alerts_for") is not config:
        _cache["alerts_for"] = config
        store = alerts.store
        if os.environ.get("FC_FUNCTION_NAME") and store.backend == "file" and store.path is None:
            # Once per config load: FC recycles instances, and /tmp goes with them.
            logs.get_logger("vpcprobe.alerts").warning(
                "state_not_durable",
                message="alert state is in /tmp and is lost when FC recycles the instance: set "
                "state.path to a NAS mount, or state.backend: oss",
            )
    return alerts


def _alert_step(
    prober: Prober, alerts: Any, results: list[ProbeResult], request_id: str | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Decide, send and save after the round, then record its history under the same lease; a store or
    channel failure never loses the round's results. Returns the summary's `alerts` and `history` parts."""
    from shared.alerts.step import run_alerts

    known = [t.name for t in prober.config.targets]
    history: dict[str, Any] = {"skipped": "the alert step did not hold the store lease"}

    def record(store: Any) -> None:  # runs after the alert state is saved: it cannot undo a sent alert
        history.clear()
        history.update(_record_history(prober, results, request_id, store=store))

    try:
        step = run_alerts(
            alerts, results, tokens=prober.tokens, known_targets=known, request_id=request_id, while_held=record
        )
        return asyncio.run(step), history
    except Exception as exc:
        logs.get_logger("vpcprobe.alerts").error("alerts_failed", error=exc, request_id=request_id)
        return {"error": logs.redact_text(f"{type(exc).__name__}: {exc}")}, history


def _record_history(
    prober: Prober, results: list[ProbeResult], request_id: str | None, *, store: Any = None
) -> dict[str, Any]:
    """The round's history: under the alert step's lease when it passes its `store`, else under a lease of
    its own on the configured store (StoreSettings' default without a state: section, except in FC, where
    that default is the instance's own /tmp: nobody could read it, so nothing is written). Returns the
    summary's `history` part; a failure is logged and reported there, never raised: history never fails a round."""
    if store is None and prober.config.alerts is None and os.environ.get("FC_FUNCTION_NAME"):
        return {"skipped": NO_SHARED_STORE}
    from shared.history.record import record_round, record_with_lease
    from shared.state.settings import StoreSettings, open_store

    log = logs.get_logger("vpcprobe.history")
    try:
        if store is not None:
            report = record_round(store, results)
        else:
            settings = prober.config.alerts.store if prober.config.alerts is not None else StoreSettings()
            report = record_with_lease(open_store(settings), results, settings.lease_ttl_s)
            if report is None:
                reason = "another round holds the store lease and records its own history"
                log.info("history_skipped", reason=reason, request_id=request_id)
                return {"skipped": reason}
    except Exception as exc:
        error = logs.redact_text(f"{type(exc).__name__}: {exc}")
        log.error("history_failed", error=error, request_id=request_id)
        return {"error": error}
    return report.to_dict()


def _cloudmonitor(config: Config, results: list[ProbeResult], context: Any, request_id: str | None) -> dict[str, Any]:
    """The round's figures to CloudMonitor; the SDK and exporter load only for a config that exports."""
    from shared.export.cloudmonitor import export

    assert config.cloudmonitor is not None
    return export(config.cloudmonitor, results, context=context, request_id=request_id)


def summarize(results: list[ProbeResult]) -> dict[str, Any]:
    """The function's reply: counts per status (`unknown`: the prober could not keep up, not a failure)."""
    counts = {s: sum(1 for r in results if r.status == s) for s in Status}
    return {
        "ok": counts[Status.DEGRADED] == 0 and counts[Status.DOWN] == 0,
        "targets": len(results),
        **counts,
        "results": [
            {
                "target": r.target,
                "status": r.status,
                "code": r.diagnosis.code if r.diagnosis else None,
                "total_ms": r.to_dict()["phases_ms"]["total"],
            }
            for r in results
        ],
    }


def run_probe_event(
    event: Any, context: Any = None, *, config_path: str | None = None
) -> tuple[dict[str, Any], list[ProbeResult]]:
    """One round for a timer or invoke event: the summary FC returns, and the full results."""
    log = logs.get_logger("vpcprobe.probe")
    request_id = getattr(context, "request_id", None)
    try:
        request = parse_probe_event(event)
        prober = _prober(config_path)
        prober.tokens.set_context(context)  # python3.10: context.credentials, fresh per invocation
        prober.config.select(request.targets)
        alerts = _alert_config(prober.config)
        results = loop.run(prober.run_round(request.targets))  # uvloop when installed (probe/loop.py)
    except VpcprobeError as exc:  # refused, not crashed: FC gets a summary that says why
        return _refused(exc, log, request_id), []
    for result in results:
        log.info("probe", source=request.source, request_id=request_id, **result.to_dict())
    summary = summarize(results)
    if prober.last_lag is not None:  # the prober's own event-loop lag this round: is the prober the problem?
        summary["loop_lag_ms"] = prober.last_lag.to_dict()
    if request.alert and alerts is not None:
        summary["alerts"], summary["history"] = _alert_step(prober, alerts, results, request_id)
    else:
        summary["history"] = _record_history(prober, results, request_id)
    if prober.config.cloudmonitor is not None:  # optional export (metrics.cloudmonitor): never fails the round
        summary["cloudmonitor"] = _cloudmonitor(prober.config, results, context, request_id)
    log.info(
        "round",
        source=request.source,
        trigger_time=request.trigger_time,
        request_id=request_id,
        **{k: v for k, v in summary.items() if k != "results"},
    )
    return summary, results


def _refused(exc: VpcprobeError, log: Any, request_id: str | None) -> dict[str, Any]:
    """The summary of a round that did not run: a bad event, a config error, or another refusal."""
    if isinstance(exc, BadEvent):
        log.error("bad_event", error=str(exc), request_id=request_id)
        return {"ok": False, "error": f"bad event: {exc}"}
    if isinstance(exc, ConfigError):
        log.error("config_error", problems=exc.problems, request_id=request_id)
        return {"ok": False, "error": "config error", "problems": exc.problems}
    log.error("round_refused", error=str(exc), request_id=request_id)
    return {"ok": False, "error": str(exc)}


def handle(event: Any, context: Any = None, *, config_path: str | None = None) -> str:
    """The FC handler's body: returns the round summary as JSON text (FC's return type), never raises.

    A handler that raises fails every call of a timer with a traceback as the answer; whatever escapes
    the round is answered as an error reply instead, and logged."""
    try:
        summary, _results = run_probe_event(event, context, config_path=config_path)
        return json.dumps(summary)
    except Exception as exc:
        return json.dumps(_crashed(exc, getattr(context, "request_id", None)))


def _crashed(exc: Exception, request_id: str | None) -> dict[str, Any]:
    """The reply to a round that raised something vpcprobe did not expect (a bug): the exception's type and
    redacted, clipped message, where it was raised, never the traceback; the log line says the same."""
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    where = f"{os.path.basename(frame.tb_frame.f_code.co_filename)}:{frame.tb_lineno}" if frame else None
    error = clip(logs.redact_text(f"{type(exc).__name__}: {exc}"))
    logs.get_logger("vpcprobe.probe").error("handler_crashed", error=error, where=where, request_id=request_id)
    return {"ok": False, "error": f"internal error: {error}", "where": where}


def initialize(context: Any = None, *, config_path: str | None = None) -> dict[str, Any]:
    """FC's Initializer hook: load the config and warm the probe path once per instance, before its first
    timer event (probe/warmup.py), so the first round costs what a warm one does.

    Never raises: FC fails every invocation of an instance whose initializer failed, so a bad config is
    left for the handler to report, and a warm-up that fails only costs the first round its speed."""
    log = logs.get_logger("vpcprobe.probe")
    request_id = getattr(context, "request_id", None)
    try:
        prober = _prober(config_path)
        from shared.probe.warmup import warm_up

        report = warm_up(prober.config)
    except Exception as exc:
        error = clip(logs.redact_text(f"{type(exc).__name__}: {exc}"))
        log.warning("initialize_skipped", error=error, request_id=request_id, effect="the first round warms up")
        return {"ok": False, "error": error}
    log.info("initialized", request_id=request_id, **report)
    return {"ok": True, **report}
