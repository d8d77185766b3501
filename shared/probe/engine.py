"""The probe engine: one round = every target concurrently, every address of every target.

Each address gets its own fresh connection (see attempt.py), so a dead zone shows while the name
still answers, and the phase timings are of a cold connection — what a real caller's first request pays.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from shared import logs
from shared.config.load import Config
from shared.config.targets import Target
from shared.config.urls import UrlError
from shared.credentials.errors import CredentialError
from shared.credentials.provider import Resolved, TokenProvider
from shared.probe import dns
from shared.probe.attempt import Attempt, try_address, wire_request
from shared.probe.deadline import Deadline, DeadlineExpired
from shared.probe.lag import LagMonitor, LagSummary
from shared.probe.pacing import StartPacer
from shared.probe.request import RequestSpec, build_request
from shared.probe.tls import cached_context
from shared.probe.transport import Request
from shared.verdict.codes import Code
from shared.verdict.decide import address_verdict, lead_address, target_verdict
from shared.verdict.diagnose import Diagnosis, diagnose
from shared.verdict.overload import judge_overload, timed_out
from shared.verdict.result import AddressResult, ProbeResult, now_rfc3339
from shared.verdict.status import Status

# Failures worth one quick retry: a blip, not a misconfiguration.
TRANSIENT = frozenset(
    {
        Code.CONNECT_TIMEOUT,
        Code.CONNECT_REFUSED,
        Code.CONNECTION_RESET,
        Code.READ_TIMEOUT,
        Code.STREAM_STALLED,
        Code.SERVER_ERROR,
        Code.REQUEST_TIMEOUT,
        Code.RATE_LIMITED,
        Code.EAS_QUEUE_FULL,
        Code.NO_READY_INSTANCE,
        Code.MODEL_UNAVAILABLE,
        Code.STREAM_ERROR_FRAME,
        Code.PROTOCOL_ERROR,
    }
)


class Prober:
    """Runs probe rounds; holds what may be reused across rounds in a warm FC instance."""

    def __init__(self, config: Config, tokens: TokenProvider | None = None) -> None:
        self.config = config
        self.tokens = tokens or TokenProvider(cloud=config.cloud)
        self._pacer = StartPacer()  # connection starts spread out, not in one burst
        self.last_lag: LagSummary | None = None  # the last round's event-loop lag (lag hook)
        self.log = logs.get_logger("vpcprobe.probe")

    async def run_round(self, names: list[str] | None = None) -> list[ProbeResult]:
        """Probe the selected targets concurrently (bounded by `concurrency`), in config order."""
        targets = self.config.select(names)
        gate = asyncio.Semaphore(self.config.concurrency)
        spans: list[tuple[float, float]] = [(0.0, 0.0)] * len(targets)  # lag hook: when each target ran

        async def one(i: int, target: Target) -> ProbeResult:
            async with gate:
                started = time.perf_counter()
                try:
                    return await self._probe_bounded(target)
                finally:
                    spans[i] = (started, time.perf_counter())

        async with LagMonitor() as lag:
            results = list(await asyncio.gather(*(one(i, t) for i, t in enumerate(targets))))
        # lag hook (overload helper): a timeout while the prober's own loop lag may have cost an attempt half
        # its timeout is `unknown` (prober_overloaded), never `down` — see shared/verdict/overload.py.
        # It needs only `spans` (each target's start/end, perf_counter) and the monitor around the round.
        self.last_lag = lag.summary()
        return [
            judge_overload(r, lag.lost_ms(*spans[i], t.probe.timeout_s), t.probe.timeout_s) if timed_out(r) else r
            for i, (r, t) in enumerate(zip(results, targets))
        ]

    async def probe_target(self, target: Target) -> ProbeResult:
        return await self._probe_bounded(target)

    async def _probe_bounded(self, target: Target) -> ProbeResult:
        settings = target.probe
        budget = settings.timeout_s * (settings.retries + 1) + settings.retry_delay_s * settings.retries + 2.0
        if target.credential is not None and target.credential.scheme != "env":
            # A control-plane fetch, and after a 401 a second fetch and a second try, fit in the budget too.
            budget = 2 * (budget + self.tokens.fetch_budget_s(target.credential))
        try:
            async with Deadline(budget):
                return await self._probe(target)
        except DeadlineExpired:
            return self._failed(target, diagnose(Code.READ_TIMEOUT, f"probe exceeded its {budget:.1f}s budget"))
        except Exception as exc:  # a probe bug must not take the round down with it, nor page for the endpoint
            self.log.error("probe_crashed", target=target.name, error=exc)
            diag = diagnose(Code.PROBER_ERROR, f"probe error: {type(exc).__name__}")
            return self._failed(target, diag, status=Status.UNKNOWN)

    def _failed(self, target: Target, diag: Diagnosis, status: Status = Status.DOWN, **extra: Any) -> ProbeResult:
        return ProbeResult(
            target.name,
            target.kind,
            target.endpoint.base_url,
            status,
            diagnosis=diag,
            form=target.endpoint.form,
            mode=target.probe.mode,
            warnings=list(target.warnings),
            **extra,
        )

    async def _probe(self, target: Target) -> ProbeResult:
        checked_at = now_rfc3339()
        ref, resolved = target.credential, None
        started = self.tokens.now()
        if ref is not None:
            try:
                resolved = await self.tokens.resolve(ref)
            except CredentialError as exc:
                return self._failed(target, diagnose(Code.CREDENTIAL_UNAVAILABLE, str(exc)), checked_at=checked_at)
        result = await self._probe_with(target, resolved, checked_at)
        if ref is None or resolved is None or ref.scheme == "env" or not _refresh_worthy(result, resolved, started):
            return result
        # A cached credential failed: fetch it again once. A rotated KMS secret or EAS token (401), or a
        # service that stopped since it was cached, shows now rather than after the cache TTL.
        self.tokens.invalidate(ref, resolved.value)
        try:
            fresh = await self.tokens.resolve(ref)
        except CredentialError as exc:
            self.log.warning("credential_refresh_failed", target=target.name, error=str(exc))
            return result
        if fresh.value == resolved.value and fresh.eas == resolved.eas:
            return result  # nothing changed: the failure stands, no second request
        again = await self._probe_with(target, fresh, checked_at)
        again.credential_refreshed = fresh.value != resolved.value
        return again

    async def _probe_with(self, target: Target, resolved: Resolved | None, checked_at: str) -> ProbeResult:
        """One probe with a resolved credential: EAS service state first, then every address."""
        eas = resolved.eas if resolved is not None else None
        extra: dict[str, Any] = {"checked_at": checked_at}
        problem: UrlError | None = None
        if target.endpoint_deferred:
            try:
                target = self._discovered(target, eas)
            except UrlError as exc:
                problem = exc
        if eas is not None:
            extra["eas_service"] = eas.summary()
            if not eas.serving:
                why = f" ({eas.reason or eas.message})" if (eas.reason or eas.message) else ""
                detail = (
                    f"{target.credential}: DescribeService says status {eas.status}, "
                    f"{eas.running} of {eas.total} instances running{why}; no request was sent"
                )
                diag = diagnose(Code.EAS_SERVICE_NOT_RUNNING, detail, service=eas.name, region=eas.region)
                return self._failed(target, diag, **extra)
        if problem is not None:
            code = Code.EAS_SERVICE_NOT_FOUND if eas is None or not eas.intranet_endpoint else Code.PATH_NOT_FOUND
            return self._failed(target, diagnose(code, str(problem), service=target.endpoint.service), **extra)
        result = await self._probe_http(target, resolved.value if resolved is not None else None, checked_at)
        result.eas_service = extra.get("eas_service")
        return result

    def _discovered(self, target: Target, eas: Any) -> Target:
        """The target with the endpoint DescribeService gave (IntranetEndpoint), under the same URL rules."""
        if eas is None or not eas.intranet_endpoint:
            raise UrlError(
                f"{target.credential}: DescribeService gave no IntranetEndpoint; give the target an 'endpoint'"
            )
        return target.with_intranet_endpoint(eas.intranet_endpoint, self.config.region)

    async def _probe_http(self, target: Target, token: str | None, checked_at: str) -> ProbeResult:
        spec = build_request(target, token)
        ep = target.endpoint
        res = await dns.resolve(ep.host, ep.port, self.config.resolve)
        result = ProbeResult(
            target.name,
            target.kind,
            spec.url,
            Status.DOWN,
            checked_at=checked_at,
            form=ep.form,
            mode=target.probe.mode,
            warnings=list(target.warnings),
        )
        result.phases_ms = {"dns": res.elapsed_ms}
        result.blackbox_phases_ms = {"resolve": res.elapsed_ms}
        if not res.addresses:
            result.diagnosis = diagnose(Code.DNS_UNRESOLVED, f"{ep.host}: {res.error or 'no addresses'}", host=ep.host)
            return result
        request = wire_request(spec, target)
        first, *more = (self._probe_address(target, spec, a, res, request) for a in res.addresses)
        # Every address at once; the first in this task, the others in tasks of their own (a task fewer).
        others = [asyncio.ensure_future(c) for c in more]
        try:
            lead_first = await first
        except BaseException:  # cancelled (the probe's budget): the others go too, as gather's would
            for task in others:
                task.cancel()
            raise
        result.addresses = [lead_first, *(await asyncio.gather(*others))] if others else [lead_first]
        lead = lead_address(result.addresses)
        result.phases_ms = dict(lead.phases_ms)
        result.blackbox_phases_ms = dict(lead.blackbox_phases_ms)
        result.http_status = lead.http_status
        result.tls_days_left = lead.tls_days_left
        result.tls_not_after = min((a.tls_not_after for a in result.addresses if a.tls_not_after), default=None)
        result.status, result.diagnosis = target_verdict(
            result.addresses, host=ep.host, expect_private=ep.expect_private and res.source != "literal"
        )
        if ep.form in ("privatelink-default", "privatelink-custom") and len(result.addresses) == 1:
            result.warnings.append(
                f"{ep.host} resolves to one address only: the endpoint has an ENI in a single zone; the docs "
                "recommend vSwitches in at least two zones so a zone failure moves traffic to another ENI"
            )
        return result

    async def _probe_address(
        self, target: Target, spec: RequestSpec, addr: dns.Address, res: dns.Resolution, request: Request
    ) -> AddressResult:
        """One address, with quick retries of transient failures; its own verdict."""
        settings = target.probe
        out = AddressResult(addr.ip, addr.port, addr.private)
        attempt = Attempt()
        # Built before the attempt's clock starts, once per trust setting per warm instance; none for http.
        tls = cached_context(target.ca_bundle, target.tls_verify) if target.endpoint.scheme == "https" else None
        for n in range(settings.retries + 1):
            if n:
                await asyncio.sleep(settings.retry_delay_s)
            await self._pacer.turn()
            attempt = await try_address(target, spec, addr, tls, request)
            out.attempts = n + 1
            if attempt.code not in TRANSIENT:
                break
        attempt.phases["dns"] = res.elapsed_ms
        if attempt.phases.get("total") is not None:
            attempt.phases["total"] += res.elapsed_ms
        out.phases_ms, out.http_status, out.tls_days_left = attempt.phases, attempt.http_status, attempt.tls_days_left
        out.tls_not_after = attempt.tls_not_after
        out.blackbox_phases_ms = {"resolve": res.elapsed_ms, **attempt.blackbox_phases}
        ep = target.endpoint
        out.status, out.diagnosis = address_verdict(
            attempt.code,
            attempt.detail,
            total_ms=attempt.phases.get("total") or 0.0,
            tls_days_left=attempt.tls_days_left,
            latency_slo_ms=settings.latency_slo_ms,
            cert_min_days=settings.cert_min_days,
            host=ep.host,
            port=addr.port,
            scheme=ep.scheme,
            region=ep.region,
            service=ep.service,
        )
        return out


def _refresh_worthy(result: ProbeResult, resolved: Resolved, started: float) -> bool:
    """Whether a failed probe should fetch its cached cloud credential again: after a 401 from any
    address, or when an EAS target fails (its service may have stopped since it was cached)."""
    if resolved.fetched_at >= started:
        return False  # fetched for this very probe: fetching again would give the same answer
    if any(a.error_code == Code.UNAUTHORIZED for a in result.addresses):
        return True
    return resolved.eas is not None and result.status == Status.DOWN
