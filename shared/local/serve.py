"""`vpcprobe serve`: run locally what FC runs — the probe function on its s.yaml timer schedule,
and the gateway function beside it when the config has a `gateway:` section.

The handler is called with an FC-shaped timer event, exactly as the timer trigger would; JSON
logs go to a file, and each round is printed as a table for the person watching. The gateway is the
same ASGI app as on FC, served by uvicorn in a thread on --host/--port (127.0.0.1:9000).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from shared import logs
from shared.fc.events import timer_event
from shared.fc.probe_function import run_probe_event
from shared.local.report import render_table
from shared.local.schedule import ScheduleError, parse_schedule, probe_schedule_from_syaml

if TYPE_CHECKING:
    from shared.gateway.server import RunningServer

WORKDIR = Path(".vpcprobe")


def _schedule(args: argparse.Namespace):
    if args.schedule:
        return parse_schedule(args.schedule), ""
    if args.demo:
        return parse_schedule("@every 5s"), ""
    return probe_schedule_from_syaml(args.syaml)


def _alert_line(alerts: dict) -> str:
    if "sent" not in alerts:
        return f"alerts: {alerts.get('skipped') or alerts.get('error')}"
    channels = ", ".join(f"{k}: {v}" for k, v in alerts.get("channels", {}).items())
    return (
        f"alerts: {alerts['new']} new, {alerts['sent']} sent in {alerts['messages']} message(s), "
        f"{alerts['pending']} pending" + (f" ({channels})" if channels else "")
    )


def start_gateway(config_path: Path | str | None, host: str, port: int) -> RunningServer | None:
    """The gateway app on host:port in a thread, for the config's `gateway:` section (None: there is none).

    The config is read once here: a config error stops serve before the first round."""
    from shared.config.load import load_config

    config = load_config(str(config_path) if config_path else None)
    if config.gateway is None:
        print('gateway: not started: the config has no gateway: section (README, "Gateway")')
        return None
    from shared.gateway.app import create_app
    from shared.gateway.server import start_in_thread

    return start_in_thread(create_app(config), host=host, port=port)


def serve(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    """Loop: wait for the next fire time, invoke the handler, print the round. Ctrl-C stops."""
    stop = stop or threading.Event()
    try:
        schedule, payload = _schedule(args)
    except (ScheduleError, OSError) as exc:
        print(f"schedule error: {exc}", file=sys.stderr)
        return 2
    WORKDIR.mkdir(exist_ok=True)
    log_path = WORKDIR / "probe.log"
    log_file = log_path.open("a", encoding="utf-8")
    logs.configure(stream=log_file)
    sim = None
    sinks = None
    gateway = None
    script = []
    config_path = args.config
    try:
        if args.demo:
            from shared.local.demo import start_demo, start_demo_alerts

            sinks = start_demo_alerts()
            sim, config_path = start_demo(WORKDIR, sinks)
            print(f"demo: simulated DashScope + EAS on 127.0.0.2/127.0.0.3 port {sim.port} (https {sim.https_port})")
            for line in sinks.describe():
                print(f"demo: {line}")
            print(f"demo: config {config_path}")
        host, port = getattr(args, "host", "127.0.0.1"), getattr(args, "port", 9000)
        try:
            gateway = start_gateway(config_path, host, port)
        except OSError as exc:
            print(f"gateway: cannot listen on {host}:{port}: {exc} (choose another with --port; 0 = any free port)",
                  file=sys.stderr)
            return 2
        if gateway is not None:
            print(f'gateway: {gateway.url} (GET /healthz; routes: README "Gateway"); its JSON logs: {log_path}')
            if args.demo:
                from shared.local.demo import status_lines

                print("\n".join(status_lines(gateway.url)))
            else:
                print(f"status: {gateway.url}/status (a gateway key as the password), /status.json, /metrics")
        if args.demo:
            from shared.local.demo import DEMO_GATEWAY_KEY, GATEWAY_KEY_ENV, fault_script, gateway_commands

            script = fault_script(sinks, gateway.url if gateway is not None else None, log_path)
            if gateway is not None:
                print(f"demo: gateway key {DEMO_GATEWAY_KEY} (env:{GATEWAY_KEY_ENV} in the demo config); try:")
                print("\n".join(gateway_commands(gateway.url)))  # unindented: heredocs must end at column 0
        print(f"schedule: {schedule.expression} ({schedule.timezone}); JSON logs: {log_path}; Ctrl-C stops")
        rounds = 0
        cycle = max((s.round for s in script), default=0)
        while not stop.is_set():
            now = datetime.now(timezone.utc)
            fire = schedule.next_after(now)
            if stop.wait(max(0.0, (fire - now).total_seconds())):
                break
            rounds += 1
            for step in script:
                if cycle and (rounds - 1) % cycle + 1 == step.round:
                    print(f"\n>>> demo fault script: {step.say}")
                    step.act(sim)
            event = timer_event(fire.isoformat().replace("+00:00", "Z"), payload)
            alert_output = io.StringIO()  # console channel and demo receivers: shown after the round's table
            with contextlib.redirect_stdout(alert_output):
                summary, results = run_probe_event(event, config_path=str(config_path) if config_path else None)
            print(
                f"\n== round {rounds} at {fire:%H:%M:%S} UTC: "
                f"{summary.get('up', 0)} up, {summary.get('degraded', 0)} degraded, {summary.get('down', 0)} down"
                + (f", {summary['unknown']} unknown (prober overloaded)" if summary.get("unknown") else "")
            )
            if results:
                print(render_table(results, warnings=rounds == 1))
            else:
                print(f"error: {summary.get('error')}")
                for problem in summary.get("problems", []):
                    print(f"  {problem}")
            print(alert_output.getvalue(), end="")
            alerts = summary.get("alerts")
            if alerts and ("sent" not in alerts or alerts["new"] or alerts["messages"] or alerts["pending"]):
                print(_alert_line(alerts))
            if args.rounds and rounds >= args.rounds:
                break
    except KeyboardInterrupt:
        pass
    finally:
        if gateway is not None:
            gateway.stop()
        if sim is not None:
            sim.stop()
        if sinks is not None:
            sinks.stop()
        logs.configure(stream=None)
        log_file.close()
    return 0
