"""The `vpcprobe` command line (also `python -m shared`).

Exit codes: 0 all up, 1 any degraded/down (or a failed doctor/invoke), 2 config or usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from shared.config import ConfigError, load_config


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

    serve = sub.add_parser("serve", help="run locally what FC runs: the probe function on its schedule")
    serve.add_argument("-c", "--config")
    serve.add_argument("--port", type=int, default=9000)
    serve.add_argument("--demo", action="store_true", help="start simulated endpoints and a demo config")
    serve.add_argument("--syaml", default="s.yaml", help="s.yaml whose timer schedule to follow")
    serve.add_argument("--schedule", help="override the schedule (FC cron, six fields, or @every 5s)")
    serve.add_argument("--rounds", type=int, help="stop after this many rounds")

    invoke = sub.add_parser("invoke", help="invoke a deployed function")
    invoke.add_argument("function")
    invoke.add_argument("--async", dest="is_async", action="store_true")
    invoke.add_argument("--payload", default="")
    invoke.add_argument("--qualifier", default="LATEST")
    return p


def _check(args: argparse.Namespace) -> int:
    from shared.probe import Prober
    from shared.report import render_table

    config = load_config(args.config)
    names = args.targets
    config.select(names)  # unknown names: a usage error before anything is sent
    results = asyncio.run(Prober(config).run_round(names))
    if args.json:
        for r in results:
            print(json.dumps(r.to_dict()))
    else:
        print(render_table(results))
    return 0 if all(r.status == "up" for r in results) else 1


def _targets(args: argparse.Namespace) -> int:
    from shared.probe import build_request

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
                "url": spec.url,
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
    from shared.doctor import run_doctor

    code, report = run_doctor(args.url, args.token_env)
    print(report)
    return code


def _serve(args: argparse.Namespace) -> int:
    from shared.serve import serve

    return serve(args)


def _invoke(args: argparse.Namespace) -> int:
    print("vpcprobe invoke: remote invocation is not available in this version yet", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {"check": _check, "targets": _targets, "doctor": _doctor, "serve": _serve, "invoke": _invoke}
    try:
        return handlers[args.command](args)
    except ConfigError as exc:
        print("config error:\n  " + "\n  ".join(exc.problems), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
