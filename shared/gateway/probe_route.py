"""POST /probe[?target=NAME...][&alert=true][&async=true]: a probe round on demand, from the gateway.

Sync: the round runs now on the gateway's own event loop, with its config and TokenProvider (the
prober is asyncio like the proxy; a thread or a second loop would only add a copy of the credential
cache), and is answered with the objects `vpcprobe check --json` prints, inside one JSON document
with the counts the probe function replies with: an HTTP client parses one body and reads `ok`
without scanning, and `alerts` has a place beside the results. 200 even when targets are down: the
request succeeded, the body says what is down.

`alert=true` runs the probe function's alert step on the results, under the same store lease as the
timer's rounds, so on-demand and timer rounds never both send (the store and its lease are blocking
I/O: the step runs in a thread). `async=true` hands the round to the probe function (InvokeFunction,
async) and answers 202 with FC's request id.

Rounds are refused with 429 while `gateway.probe.concurrent_rounds` of them run on this instance (1 by
default): a flood of POST /probe gets quick refusals instead of a queue of rounds competing with the
proxy for the instance's one event loop.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from shared import logs
from shared.gateway.errors import ErrorType, GatewayError
from shared.probe.engine import Prober
from shared.verdict.result import ProbeResult
from shared.verdict.status import Status

if TYPE_CHECKING:
    from shared.config.load import Config
    from shared.credentials.control_plane import ControlPlane
    from shared.credentials.provider import TokenProvider
    from shared.gateway.settings import GatewayKey, GatewaySettings

PARAMETERS = ("target", "alert", "async")
USAGE = "POST /probe takes target=NAME (repeatable), alert=true|false and async=true|false"
BUSY_RETRY_AFTER_S = 1


@dataclass(frozen=True)
class ProbeQuery:
    """What a POST /probe asks for."""

    targets: tuple[str, ...]  # as named, duplicates dropped; empty = every target the key may use
    alert: bool = False
    is_async: bool = False


def parse_query(query: str) -> ProbeQuery:
    """The query string of POST /probe; GatewayError 400 naming a parameter that is unknown, repeated or not
    true/false."""
    targets: list[str] = []
    flags: dict[str, bool] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in PARAMETERS:
            raise _bad_query(f"unknown query parameter '{name[:60]}'; {USAGE}")
        if name == "target":
            if not value:
                raise _bad_query(f"target= needs a target name; {USAGE}")
            if value not in targets:
                targets.append(value)
            continue
        if name in flags:
            raise _bad_query(f"'{name}' is given twice; {USAGE}")
        if value not in ("true", "false"):
            raise _bad_query(f"{name}='{value[:60]}' is not true or false; {USAGE}")
        flags[name] = value == "true"
    return ProbeQuery(tuple(targets), flags.get("alert", False), flags.get("async", False))


class OnDemandProbe:
    """The POST /probe route of one gateway instance: its prober, its round limit, its invoke client."""

    def __init__(
        self, config: Config, settings: GatewaySettings, tokens: TokenProvider, *, plane: ControlPlane | None = None
    ) -> None:
        self.config = config
        self.settings = settings
        self.tokens = tokens
        self.prober = Prober(config, tokens)
        self._plane = plane
        self._running = 0
        self._log = logs.get_logger("vpcprobe.gateway")

    async def answer(self, key: GatewayKey, query: str, probed: list[str]) -> tuple[int, bytes]:
        """(HTTP status, JSON body) for a POST /probe by `key`; `probed` gets the targets (for the log line).
        Refusals raise GatewayError."""
        ask = parse_query(query)
        names = self._targets(key, ask.targets)
        if ask.alert and self.config.alerts is None:
            raise _bad_query(f"alert=true needs an alerts: section in {self.config.path}; none is configured")
        if self._running >= self.settings.probe_rounds:
            raise GatewayError(
                429, ErrorType.RATE_LIMIT, "probe_busy",
                f"{self._running} on-demand round(s) already running on this gateway instance (the limit is "
                f"gateway.probe.concurrent_rounds: {self.settings.probe_rounds}); retry shortly",
                headers={"Retry-After": str(BUSY_RETRY_AFTER_S)},
            )
        probed.extend(names)
        every = not ask.targets and key.targets is None  # nothing narrowed the round: the probe's own "all"
        self._running += 1
        try:
            if ask.is_async:
                return 202, _json(await self._hand_over(None if every else names, ask.alert))
            return 200, _json(await self._round(names, ask.alert))
        finally:
            self._running -= 1

    def _targets(self, key: GatewayKey, asked: tuple[str, ...]) -> list[str]:
        """The targets to probe: those asked for (each known and allowed to the key), else all the key may use."""
        configured = {t.name for t in self.config.targets}
        mine = [t.name for t in self.config.targets if key.allows_target(t.name)]
        for name in asked:
            if name not in configured:
                raise GatewayError(404, ErrorType.NOT_FOUND, "unknown_target",
                                   f"no target '{name[:100]}'; targets key '{key.name}' may probe: "
                                   f"{', '.join(mine) or 'none'}")
            if not key.allows_target(name):
                raise GatewayError(403, ErrorType.PERMISSION, "target_not_allowed",
                                   f"key '{key.name}' may not probe target '{name}'")
        if not asked and not mine:
            raise GatewayError(403, ErrorType.PERMISSION, "target_not_allowed",
                               f"key '{key.name}' may use none of the configured targets")
        return [n for n in mine if n in asked] if asked else mine

    async def _round(self, names: list[str], alert: bool) -> dict[str, Any]:
        results = await self.prober.run_round(names)
        counts = {s: sum(1 for r in results if r.status == s) for s in Status}
        body: dict[str, Any] = {
            "ok": counts[Status.DEGRADED] == 0 and counts[Status.DOWN] == 0,
            "targets": len(results),
            **{str(s): n for s, n in counts.items()},
            "results": [r.to_dict() for r in results],
        }
        if self.prober.last_lag is not None:
            body["loop_lag_ms"] = self.prober.last_lag.to_dict()
        if alert:
            body["alerts"], body["history"] = await self._alert_step(results)
        return body

    async def _alert_step(self, results: list[ProbeResult]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The timer's alert step on these results, in a thread (the store is blocking I/O), under its lease, and
        the round's history recorded under that same lease: the answer's `alerts` and `history` parts."""
        from shared.alerts.step import run_alerts
        from shared.history.record import record_round

        alerts = self.config.alerts
        assert alerts is not None
        known = [t.name for t in self.config.targets]
        history: dict[str, Any] = {"skipped": "another round holds the store lease and records its own"}

        def record(store: Any) -> None:  # after the alert state is saved: it cannot undo a sent alert
            history.clear()
            try:
                history.update(record_round(store, results).to_dict())
            except Exception as exc:
                history["error"] = logs.redact_text(f"{type(exc).__name__}: {exc}")
                raise  # run_alerts logs it (while_held_failed)

        def step() -> dict[str, Any]:
            return asyncio.run(run_alerts(alerts, results, tokens=self.tokens, known_targets=known, while_held=record))

        try:
            summary = await asyncio.to_thread(step)
        except Exception as exc:  # a store or channel failure: the round's results are still the answer
            self._log.error("alerts_failed", error=logs.redact_text(f"{type(exc).__name__}: {exc}"), route="probe")
            summary = {"error": logs.redact_text(f"{type(exc).__name__}: {exc}")}
        return summary, history

    async def _hand_over(self, names: list[str] | None, alert: bool) -> dict[str, Any]:
        """Invoke the probe function asynchronously with the round's event; its request id for the answer."""
        from shared.credentials.control_plane import ControlPlane
        from shared.credentials.errors import CloudError
        from shared.fc.invoke import InvokeUsageError, invoke

        function = self.settings.probe_function
        event: dict[str, Any] = {"alert": alert}
        if names is not None:
            event["targets"] = names
        if self._plane is None:
            self._plane = ControlPlane(self.config.cloud)
        plane = self._plane
        budget = self.config.cloud.fetch_budget_s()
        payload = json.dumps(event, separators=(",", ":")).encode()
        try:
            call = asyncio.to_thread(invoke, function, payload, is_async=True, plane=plane)
            done = await asyncio.wait_for(call, timeout=budget)
        except asyncio.TimeoutError:
            raise GatewayError(504, ErrorType.UPSTREAM, "invoke_timeout",
                               f"InvokeFunction({function}) did not answer within {budget:.0f}s") from None
        except InvokeUsageError as exc:
            raise GatewayError(500, ErrorType.SERVER, "invoke_unavailable", str(exc)) from None
        except CloudError as exc:
            if exc.kind == "throttled":
                raise GatewayError(429, ErrorType.RATE_LIMIT, "invoke_throttled", str(exc),
                                   headers={"Retry-After": str(BUSY_RETRY_AFTER_S)}) from None
            raise GatewayError(502, ErrorType.UPSTREAM, "invoke_failed", str(exc)) from None
        if done.status != 202:
            raise GatewayError(502, ErrorType.UPSTREAM, "invoke_failed",
                               f"InvokeFunction({function}, Async) answered {done.status}, not 202")
        self._log.info("probe_handed_over", function=function, api=done.api, fc_request_id=done.request_id)
        return {"request_id": done.request_id, "function": function, "api": done.api,
                "targets": names, "alert": alert}


def _bad_query(message: str) -> GatewayError:
    return GatewayError(400, ErrorType.INVALID_REQUEST, "invalid_parameter", message)


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
