"""The `vpcprobe` command line (also `python -m shared`).

Exit codes: 0 all up, 1 any degraded/down (or a failed doctor/invoke), 2 config or usage error,
3 (check) some result unknown — the prober itself could not keep up — and none degraded/down.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING

from shared import logs
from shared.config.load import ConfigError, load_config
from shared.errors import clip

if TYPE_CHECKING:  # imported lazily at run time: each command loads only what it needs
    from shared.alerts.config import AlertConfig
    from shared.config.load import Config
    from shared.probe.engine import Prober
    from shared.verdict.result import ProbeResult
    from shared.verdict.status import Status


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vpcprobe", description="Probe private DashScope and PAI-EAS endpoints.")
    sub = p.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="run one probe round")
    check.add_argument("-c", "--config")
    check.add_argument("--target", action="append", dest="targets", metavar="NAME")
    check.add_argument("--json", action="store_true", help="one JSON object per target")
    check.add_argument("--alert", action="store_true", help="also run alerting, as the timer function does")

    targets = sub.add_parser("targets", help="show each target's request URL, scheme, auth and warnings")
    targets.add_argument("-c", "--config")
    targets.add_argument("--json", action="store_true")

    doctor = sub.add_parser("doctor", help="step-by-step diagnosis of one endpoint URL")
    doctor.add_argument("url")
    doctor.add_argument("--token-env", metavar="NAME", help="environment variable holding the key/token")

    serve = sub.add_parser(
        "serve", help="run locally what FC runs: the probe function on its schedule, the gateway beside it"
    )
    serve.add_argument("-c", "--config")
    serve.add_argument("--port", type=_port, default=9000, help="the gateway's port (default 9000; 0 = any free)")
    serve.add_argument("--host", default="127.0.0.1", help="the gateway's address (default 127.0.0.1)")
    serve.add_argument("--demo", action="store_true", help="start simulated endpoints and a demo config")
    serve.add_argument("--syaml", default="s.yaml", help="s.yaml whose timer schedule to follow")
    serve.add_argument("--schedule", help="override the schedule (FC cron, six fields, or @every 5s)")
    serve.add_argument("--rounds", type=_positive, help="stop after this many rounds")

    invoke = sub.add_parser("invoke", help="invoke a deployed function (NAME: FC 3.0; SERVICE/NAME: FC 2.0)")
    invoke.add_argument("function")
    invoke.add_argument("--async", dest="is_async", action="store_true", help="queue it; print the request id")
    invoke.add_argument("--payload", default="", help="the event, as JSON")
    invoke.add_argument("--qualifier", default="LATEST")
    invoke.add_argument("-c", "--config", help="take region and cloud: settings from this config")
    invoke.add_argument("--region", help="default: the config's region, $VPCPROBE_REGION or $FC_REGION")
    invoke.add_argument("--account-id", help="default: cloud.account_id, $ALIBABA_CLOUD_ACCOUNT_ID or $FC_ACCOUNT_ID")
    invoke.add_argument("--endpoint", help="the FC API host (default <account-id>.<region>.fc.aliyuncs.com)")
    return p


def _port(text: str) -> int:
    """--port: 0 (any free port) to 65535; argparse turns the ValueError into a usage error (exit 2)."""
    port = int(text)
    if not 0 <= port <= 65535:
        raise ValueError(text)
    return port


def _positive(text: str) -> int:
    number = int(text)
    if number < 1:
        raise ValueError(text)
    return number


def _check(args: argparse.Namespace) -> int:
    from shared.local.report import render_table
    from shared.probe.engine import Prober

    config = load_config(args.config)
    names = args.targets
    config.select(names)  # unknown names: a usage error before anything is sent
    alerts = _alert_config(config, args.alert)
    prober = Prober(config)
    results = asyncio.run(prober.run_round(names))
    if args.json:
        for r in results:
            print(json.dumps(r.to_dict()))
    else:
        print(render_table(results))
    if alerts is not None:
        _alert(alerts, results, prober, config)
    return exit_code([r.status for r in results])


# `check`: a real failure outranks an unknown (1 over 3); unknown is its own code so a cron job or CI
# step can tell "the endpoint is broken" from "the prober was overloaded, try fewer targets".
EXIT_UNKNOWN = 3


def exit_code(statuses: list[Status]) -> int:
    """0 all up; 1 any degraded or down; 3 any unknown and nothing degraded or down."""
    from shared.verdict.status import Status

    if any(s in (Status.DEGRADED, Status.DOWN) for s in statuses):
        return 1
    return EXIT_UNKNOWN if any(s == Status.UNKNOWN for s in statuses) else 0


def _alert_config(config: Config, wanted: bool) -> AlertConfig | None:
    """With --alert, the config's alerts: section (required); else None."""
    if wanted and config.alerts is None:
        raise ConfigError([f"{config.path}: alerts: --alert needs an alerts: section with at least one channel"])
    return config.alerts if wanted else None


def _alert(alerts: AlertConfig, results: list[ProbeResult], prober: Prober, config: Config) -> None:
    """`check --alert`: the timer function's alert step, locally; one summary line on stderr."""
    from shared.alerts.step import run_alerts
    from shared.state.store import StoreError

    try:
        known = [t.name for t in config.targets]
        summary = asyncio.run(run_alerts(alerts, results, tokens=prober.tokens, known_targets=known))
    except StoreError as exc:
        print(f"alerts: state store error: {exc}", file=sys.stderr)
        return
    if "skipped" in summary:
        print(f"alerts: skipped: {summary['skipped']}", file=sys.stderr)
        return
    channels = "; ".join(f"{name}: {outcome}" for name, outcome in summary["channels"].items()) or "nothing to send"
    print(
        f"alerts: {summary['new']} new, {summary['sent']} sent in {summary['messages']} message(s), "
        f"{summary['pending']} pending ({channels})",
        file=sys.stderr,
    )
    for problem in summary.get("problems", []):
        print(f"alerts: state store: {problem}", file=sys.stderr)


def _targets(args: argparse.Namespace) -> int:
    from shared.probe.request import build_request

    config = load_config(args.config)
    rows = []
    for t in config.targets:
        spec = build_request(t, None)
        rows.append(
            {
                "target": t.name,
                "kind": t.kind,
                "form": t.endpoint.form,
                "mode": t.probe.mode,
                "method": spec.method,
                "url": spec.url
                if not t.endpoint_deferred
                else spec.url.replace(t.endpoint.base_url, f"<IntranetEndpoint from DescribeService {t.credential}>"),
                "scheme": t.endpoint.scheme,
                "auth": "none" if t.credential is None else f"{t.auth} ({t.credential})",
                "private_expected": t.endpoint.expect_private,
                "warnings": list(t.warnings),
            }
        )
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    for row in rows:
        print(f"{row['target']} [{row['kind']}, {row['form']}]")
        print(f"  {row['method']} {row['url']}")
        print(f"  scheme {row['scheme']}, auth {row['auth']}, probe mode {row['mode']}")
        for w in row["warnings"]:
            print(f"  warning: {w}")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from shared.local.doctor import run_doctor

    code, report = run_doctor(args.url, args.token_env)
    print(report, file=sys.stderr if code == 2 else sys.stdout)  # exit 2: a usage error, not a report
    return code


def _serve(args: argparse.Namespace) -> int:
    from shared.local.serve import serve

    return serve(args)


def _invoke(args: argparse.Namespace) -> int:
    """Sync: print the function's response (exit 1 if it failed); async: print the request id."""
    import dataclasses
    import os

    from shared.credentials.errors import CloudError
    from shared.credentials.settings import CloudSettings
    from shared.fc.invoke import InvokeUsageError, invoke

    if args.payload:
        try:
            json.loads(args.payload)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep to read
            print(f"vpcprobe invoke: --payload is not valid JSON: {clip(str(exc))}", file=sys.stderr)
            return 2
    settings = load_config(args.config).cloud if args.config else CloudSettings()
    region = args.region or settings.region or os.environ.get("VPCPROBE_REGION") or os.environ.get("FC_REGION")
    settings = dataclasses.replace(
        settings,
        region=region,
        account_id=args.account_id or settings.account_id,
        fc_endpoint=args.endpoint or settings.fc_endpoint,
    )
    try:
        result = invoke(
            args.function,
            args.payload.encode(),
            is_async=args.is_async,
            qualifier=args.qualifier or None,
            settings=settings,
        )
    except InvokeUsageError as exc:
        print(f"vpcprobe invoke: {exc}", file=sys.stderr)
        return 2
    except CloudError as exc:
        print(f"vpcprobe invoke: {exc}", file=sys.stderr)
        return 1
    if result.is_async:
        print(result.request_id or "")
        return 0
    text = result.body.decode("utf-8", "replace")
    print(text)
    if result.error_type:
        print(
            f"vpcprobe invoke: the function failed ({result.error_type}), request id {result.request_id}",
            file=sys.stderr,
        )
        return 1
    return 0


# Packages of the optional extras (pyproject.toml): the base install is what FC runs, so a local
# tool (serve's simulator and schedule, invoke's FC SDK) may find its extra missing.
EXTRA_OF_MODULE = {
    "aiohttp": "local",
    "aiosmtpd": "local",
    "croniter": "local",
    "trustme": "local",
    "alibabacloud_fc20230330": "local",
    "uvicorn": "gateway",
    "uvloop": "gateway",
    "httptools": "gateway",
    "alibabacloud_tea_openapi": "cloud",
    "alibabacloud_credentials": "cloud",
    "alibabacloud_kms20160120": "cloud",
    "alibabacloud_eas20210701": "cloud",
    "oss2": "cloud",
    "fc2": "cloud",
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {"check": _check, "targets": _targets, "doctor": _doctor, "serve": _serve, "invoke": _invoke}
    previous_log_stream = logs.configure(stream=logs.STDERR)  # stdout is the command's output alone
    try:
        return handlers[args.command](args)
    except ConfigError as exc:
        print("config error:\n  " + "\n  ".join(exc.problems), file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        extra = EXTRA_OF_MODULE.get((exc.name or "").partition(".")[0])
        if extra is None:
            raise
        print(
            f"vpcprobe {args.command}: needs the `{extra}` extra ({exc.name} is not installed): "
            f"pip install 'vpcprobe[{extra}]', or in a checkout pip install -e '.[{extra}]'",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        logs.configure(stream=previous_log_stream)


if __name__ == "__main__":
    sys.exit(main())
