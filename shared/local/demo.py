"""`vpcprobe serve --demo`: the simulator plus a config that looks like a real deployment.

Realistic PrivateLink and EAS host names are mapped onto the simulator's loopback addresses
through `resolve:` (two addresses = two zones' endpoint ENIs), and a fault script makes targets
degrade, go down and recover so a person sees what vpcprobe reports. With alerts, a local
DingTalk-compatible robot and an SMTP sink print every message that arrives, exactly as sent.
The config has a `gateway:` section with a demo key, so the gateway `serve` runs beside the
schedule answers the commands `gateway_commands` prints, and the fault script sends a request
through it while a zone is down.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from shared.local.dingtalk_receiver import DingTalkReceiver
from shared.local.simulator import Fault, Simulator

ZONE_A, ZONE_B = "127.0.0.2", "127.0.0.3"
PL_HOST = "ep-demo01.dashscope.ap-southeast-1.privatelink.aliyuncs.com"
CUSTOM_HOST = "vpc-ap-southeast-1.dashscope.aliyuncs.com"
EAS_HOST = "1234567890.vpc.ap-southeast-1.pai-eas.aliyuncs.com"
DEMO_KEY, DEMO_EAS_TOKEN = "sk-demo-0123456789abcdef", "eas-demo-token-0123456789"
DEMO_ROBOT_TOKEN, DEMO_ROBOT_SECRET = "demo-robot-token-0123456789", "SECdemo-signing-secret-0123456789"
DEMO_SMTP_USER, DEMO_SMTP_PASSWORD = "alerts@example.com", "demo-smtp-password-0123"
DEMO_MOBILE = "13800000000"
DEMO_GATEWAY_KEY = "gw-demo-key-0123456789abcdef"  # printed for the person trying the demo, never logged
GATEWAY_KEY_ENV = "VPCPROBE_DEMO_GATEWAY_KEY"


@dataclass
class DemoStep:
    round: int
    say: str
    act: Callable[[Simulator], object]


def fault_script(
    alerts: DemoAlerts | None = None, gateway_url: str | None = None, log_path: Path | None = None
) -> list[DemoStep]:
    """One 12-round cycle: a zone dies and returns, EAS loses its instances, a slow model, a bad stream.

    With alerts (failure_threshold 2): zone B's outage fires at round 4 and resolves at 5 — when the
    robot rejects one message, so the recovery falls back to email; EAS fires at 7 and resolves at 8;
    the one-round blips at 9 and 11 never fire. With the gateway at `gateway_url`: right after zone B
    dies, one request through it to the target whose first address is zone B's (its log line, in
    `log_path`, shows the failover)."""
    steps = [
        DemoStep(3, f"zone B's endpoint ENI ({ZONE_B}) stops answering", lambda s: s.set_host_down(ZONE_B)),
        DemoStep(5, "zone B is back", lambda s: s.set_host_down(ZONE_B, False)),
        DemoStep(
            6,
            "EAS service llm_demo loses its ready instances",
            lambda s: s.set_eas_service("llm_demo", token=DEMO_EAS_TOKEN, state="unready"),
        ),
        DemoStep(
            8,
            "EAS service llm_demo is ready again",
            lambda s: s.set_eas_service("llm_demo", token=DEMO_EAS_TOKEN, state="running"),
        ),
        DemoStep(
            9,
            "Model Studio answers the models list slowly (3.5 s)",
            lambda s: s.inject(Fault(route="/compatible-mode/v1/models", latency_ms=3500)),
        ),
        DemoStep(10, "latency back to normal", lambda s: s.clear()),
        DemoStep(
            11,
            "the native chat stream sends an error frame",
            lambda s: s.inject(Fault(route="/api/v1/services/*", stream_error=True)),
        ),
        DemoStep(12, "the stream is healthy again", lambda s: s.clear()),
    ]
    if alerts is not None:
        steps.insert(
            2,
            DemoStep(
                5,
                "the DingTalk robot rejects its next message (errcode 310000, as after a rotated signing secret)",
                lambda _s: alerts.robot.fail_next(310000, "sign not match"),
            ),
        )
    if gateway_url is not None:
        steps.append(
            DemoStep(
                3,
                f"a chat request through the gateway to {FAILOVER_TARGET}, whose first address is zone B's",
                lambda s: print(request_through_gateway(gateway_url, s, log_path=log_path)),
            )
        )
    return steps


def start_demo(workdir: Path, alerts: DemoAlerts | None = None) -> tuple[Simulator, Path]:
    """Start the simulator and write the demo config; returns both (caller stops the simulator)."""
    sim = Simulator(
        hosts=(ZONE_A, ZONE_B),
        tls_hostnames=(CUSTOM_HOST,),
        region="ap-southeast-1",
        api_keys={DEMO_KEY: "ap-southeast-1"},
        eas_services={"llm_demo": DEMO_EAS_TOKEN},
    ).start()
    workdir.mkdir(parents=True, exist_ok=True)
    ca = workdir / "demo-ca.pem"
    ca.write_bytes(sim.ca_pem or b"")
    os.environ["VPCPROBE_DEMO_DASHSCOPE_KEY"] = DEMO_KEY
    os.environ["VPCPROBE_DEMO_EAS_TOKEN"] = DEMO_EAS_TOKEN
    config = {
        "region": "ap-southeast-1",
        "defaults": {"timeout": "5s", "retries": 1, "latency_slo": "3s"},
        "resolve": {
            PL_HOST: [f"{ZONE_A}:{sim.port}", f"{ZONE_B}:{sim.port}"],
            # zone B first: the gateway tries addresses in order, so its request in round 3 meets the dead zone
            CUSTOM_HOST: [f"{ZONE_B}:{sim.https_port}", f"{ZONE_A}:{sim.https_port}"],
            EAS_HOST: [f"{ZONE_A}:{sim.port}"],
        },
        "targets": [
            {
                "name": "qwen-privatelink",
                "kind": "dashscope",
                "endpoint": f"http://{PL_HOST}",
                "credential": "env:VPCPROBE_DEMO_DASHSCOPE_KEY",
            },
            {
                "name": "qwen-native-stream",
                "kind": "dashscope",
                "endpoint": f"http://{PL_HOST}",
                "api": "native",
                "credential": "env:VPCPROBE_DEMO_DASHSCOPE_KEY",
                "probe": {"mode": "chat", "model": "qwen-flash", "stream": True},
            },
            {
                "name": "qwen-custom-domain",
                "kind": "dashscope",
                "endpoint": f"https://{CUSTOM_HOST}",
                "credential": "env:VPCPROBE_DEMO_DASHSCOPE_KEY",
                "ca_bundle": str(ca),
            },
            {
                "name": "llm-eas-vpc",
                "kind": "eas",
                "endpoint": f"http://{EAS_HOST}/api/predict/llm_demo",
                "credential": "env:VPCPROBE_DEMO_EAS_TOKEN",
                "probe": {"mode": "chat", "model": "DeepSeek-R1-Distill-Qwen-7B"},
            },
        ],
    }
    os.environ[GATEWAY_KEY_ENV] = DEMO_GATEWAY_KEY
    config["gateway"] = {
        "keys": [{"name": "demo-app", "key": f"env:{GATEWAY_KEY_ENV}"}],
        "state_ttl": "2s",  # the status page shows each 5-second round (the default is 10 s)
        "models": {
            "qwen-plus": [
                {"target": "qwen-privatelink", "model": "qwen-plus"},
                {"target": "qwen-custom-domain", "model": "qwen-plus"},
            ],
            "deepseek": [{"target": "llm-eas-vpc", "model": "DeepSeek-R1-Distill-Qwen-7B"}],
        },
    }
    if alerts is not None:
        alerts.configure(config, workdir)
    path = workdir / "vpcprobe.demo.yaml"
    path.write_text(
        "# written by `vpcprobe serve --demo`; endpoints are the built-in simulator\n"
        + yaml.safe_dump(config, sort_keys=False)
    )
    return sim, path


FAILOVER_TARGET = "qwen-custom-domain"


def status_lines(url: str, key: str = DEMO_GATEWAY_KEY) -> list[str]:
    """Where to watch the demo: the status page (the demo key as the browser login's password), metrics."""
    scheme, _, host = url.partition("://")
    return [
        f"demo: status page {url}/status (log in with any user name and the password {key}),",
        f"demo:   or open {scheme}://demo:{key}@{host}/status; refreshes every 30 s; zone B dies in round 3",
        f"demo: Prometheus metrics: curl -u demo:{key} {url}/metrics",
    ]


def gateway_commands(url: str, key: str = DEMO_GATEWAY_KEY) -> list[str]:
    """Copy-paste commands that work against the demo's gateway: curl, the OpenAI SDK, the DashScope SDK."""
    chat = json.dumps({"model": "qwen-plus", "messages": [{"role": "user", "content": "Hello"}]})
    stream = json.dumps({"model": "qwen-plus", "messages": [{"role": "user", "content": "Hello"}], "stream": True})
    eas = json.dumps({"model": "DeepSeek-R1-Distill-Qwen-7B", "messages": [{"role": "user", "content": "Hello"}]})
    openai_code = [
        "from openai import OpenAI",
        f"client = OpenAI(base_url={url + '/v1'!r}, api_key={key!r})",
        "print([m.id for m in client.models.list()])",
        "reply = client.chat.completions.create(model='qwen-plus', messages=[{'role': 'user', 'content': 'Hello'}])",
        "print(reply.choices[0].message.content)",
    ]
    dashscope_code = [
        "import dashscope",
        f"dashscope.base_http_api_url = {url + '/qwen-native-stream/api/v1'!r}",
        f"for part in dashscope.Generation.call(api_key={key!r}, model='qwen-flash',",
        "        messages=[{'role': 'user', 'content': 'Hello'}], result_format='message',",
        "        stream=True, incremental_output=True):",
        "    print(part.output.choices[0].message.content, end='', flush=True)",
        "print()",
    ]
    auth = shlex.quote(f"Authorization: Bearer {key}")
    json_type = shlex.quote("Content-Type: application/json")
    return [
        "# the OpenAI base URL: the body's model picks the route (gateway.models)",
        f"curl -sS -w '\\n' {url}/v1/chat/completions -H {auth} -H {json_type} -d {shlex.quote(chat)}",
        "# one target, streamed (DashScope's OpenAI-compatible mode through PrivateLink)",
        f"curl -sSN {url}/qwen-privatelink/compatible-mode/v1/chat/completions -H {auth} "
        f"-H {json_type} -d {shlex.quote(stream)}",
        "# an EAS service: the raw key works too, as EAS clients send it",
        f"curl -sS -w '\\n' {url}/llm-eas-vpc/v1/chat/completions -H {shlex.quote('Authorization: ' + key)} "
        f"-H {json_type} -d {shlex.quote(eas)}",
        "# the OpenAI SDK (pip install openai)",
        "python - <<'EOF'",
        *openai_code,
        "EOF",
        "# the DashScope SDK, native API, streamed (pip install dashscope)",
        "python - <<'EOF'",
        *dashscope_code,
        "EOF",
    ]


def request_through_gateway(url: str, sim: Simulator, key: str = DEMO_GATEWAY_KEY, log_path: Path | None = None) -> str:
    """One chat request through the gateway to FAILOVER_TARGET; what happened, which address served it
    and, from the gateway's log, the failovers on the way (logged before the answer is sent)."""
    request_id = f"demo-{uuid.uuid4().hex[:12]}"
    body = {"model": "qwen-plus", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 8}
    headers = {"Authorization": f"Bearer {key}", "X-Request-Id": request_id}
    log_offset = _size(log_path)
    started = time.perf_counter()
    try:
        answer = httpx.post(
            f"{url}/{FAILOVER_TARGET}/compatible-mode/v1/chat/completions", json=body, headers=headers, timeout=30
        )
    except httpx.HTTPError as exc:
        return f"gateway: the request failed: {type(exc).__name__}: {exc}"
    ms = (time.perf_counter() - started) * 1000
    served = [r for r in sim.requests if _header(r["headers"], "x-request-id") == request_id]
    where = f"{served[-1]['listen']} (zone {'A' if served[-1]['listen'] == ZONE_A else 'B'})" if served else "?"
    if answer.status_code != 200:
        return f"gateway: the request failed: HTTP {answer.status_code} {answer.text[:300]}"
    failovers = _failovers_logged(log_path, log_offset, FAILOVER_TARGET) if log_path else []
    tried = "; ".join(f"{f.get('address')} {f.get('reason')}, then {f.get('next')}" for f in failovers)
    return f"gateway: HTTP 200 in {ms:.0f} ms: the request survived the dead zone, served by {where}" + (
        f" (failover: {tried})" if tried else f"; zone B ({ZONE_B}), the target's first address, is down"
    )


def _size(path: Path | None) -> int:
    try:
        return path.stat().st_size if path is not None else 0
    except OSError:
        return 0


def _failovers_logged(log_path: Path, offset: int, target: str) -> list[dict[str, Any]]:
    """The gateway_failover lines for `target` written to the JSON log after `offset`."""
    try:
        with log_path.open("rb") as log:
            log.seek(offset)
            lines = log.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event") == "gateway_failover" and entry.get("target") == target:
            found.append(entry)
    return found


def _header(headers: dict[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name), None)


class DemoAlerts:
    """The demo's alert receivers: a signed DingTalk robot and (with aiosmtpd) an SMTP sink over TLS.

    Both print what arrived, as a person would see it. Routing in the demo config: most targets go
    to DingTalk with email as fallback; llm-eas-vpc goes to email; qwen-custom-domain to the console.
    """

    def __init__(self) -> None:
        self.robot = DingTalkReceiver({DEMO_ROBOT_TOKEN: DEMO_ROBOT_SECRET}, on_message=_print_robot)
        self.mail: Any = None
        try:
            from shared.local.smtp_sink import SmtpSink
        except ImportError:  # aiosmtpd is a dev/demo dependency: without it the demo has no mailbox
            SmtpSink = None  # noqa: N806
        if SmtpSink is not None:
            self.mail = SmtpSink("ssl", users={DEMO_SMTP_USER: DEMO_SMTP_PASSWORD}, on_message=_print_mail)

    def start(self) -> DemoAlerts:
        self.robot.start()
        if self.mail is not None:
            self.mail.start()
        return self

    def stop(self) -> None:
        self.robot.stop()
        if self.mail is not None:
            self.mail.stop()

    def describe(self) -> list[str]:
        lines = [f"DingTalk-compatible robot (signed) at {self.robot.url}"]
        if self.mail is not None:
            lines.append(f"SMTP sink (SSL, port-465 style, login required) at {self.mail.host}:{self.mail.port}")
        else:
            lines.append("no SMTP sink: install aiosmtpd (pip install -e '.[dev]') to see the email channel")
        return lines

    def configure(self, config: dict[str, Any], workdir: Path) -> None:
        """Add alerts:, state: and per-target routes to the demo config (state starts empty each run)."""
        os.environ["VPCPROBE_DEMO_DINGTALK_TOKEN"] = DEMO_ROBOT_TOKEN
        os.environ["VPCPROBE_DEMO_DINGTALK_SECRET"] = DEMO_ROBOT_SECRET
        os.environ["VPCPROBE_DEMO_SMTP_PASSWORD"] = DEMO_SMTP_PASSWORD
        state_dir = workdir / "state"
        shutil.rmtree(state_dir, ignore_errors=True)
        channels: list[dict[str, Any]] = [
            {
                "name": "demo-dingtalk",
                "type": "dingtalk",
                "url": self.robot.url,
                "access_token": "env:VPCPROBE_DEMO_DINGTALK_TOKEN",
                "secret": "env:VPCPROBE_DEMO_DINGTALK_SECRET",
                "at_mobiles": [DEMO_MOBILE],
            }
        ]
        if self.mail is not None:
            channels.append(
                {
                    "name": "demo-email",
                    "type": "email",
                    "host": self.mail.host,
                    "port": self.mail.port,
                    "security": "ssl",
                    "username": DEMO_SMTP_USER,
                    "password": "env:VPCPROBE_DEMO_SMTP_PASSWORD",
                    "from": f"vpcprobe <{DEMO_SMTP_USER}>",
                    "to": ["oncall@example.com"],
                    "ca_bundle": self.mail.ca_path,
                }
            )
        channels.append({"name": "demo-console", "type": "console"})
        config["state"] = {"backend": "file", "path": str(state_dir)}
        config["alerts"] = {
            "failure_threshold": 2,
            "success_threshold": 1,
            "repeat_interval": "1h",
            "degraded": "warning",
            "timezone": "Asia/Shanghai",
            "channels": channels,
        }
        routes = {"qwen-custom-domain": ["demo-console"]}
        if self.mail is not None:
            routes["llm-eas-vpc"] = ["demo-email"]
        for target in config["targets"]:
            if target["name"] in routes:
                target["alerts"] = {"channels": routes[target["name"]]}


def start_demo_alerts() -> DemoAlerts:
    return DemoAlerts().start()


def _box(header: str, body: str) -> None:
    lines = [f"┌─ {header}"] + [f"│ {line}" for line in body.rstrip().splitlines()] + ["└─"]
    print("\n".join(lines), flush=True)


def _print_robot(message: dict[str, Any]) -> None:
    notified = ", ".join(f"@{m}" for m in message["notified"]) or "nobody"
    header = (
        f"DingTalk robot received a {message['msgtype']} message ({message['bytes']} bytes, "
        f"signature {'verified' if message['signed'] else 'not required'}, mentions notify {notified})"
    )
    _box(header, f"title: {message['title']}\n\n{message['text']}")


def _print_mail(record: dict[str, Any]) -> None:
    msg = record["message"]
    head = "\n".join(f"{k}: {msg[k]}" for k in ("From", "To", "Subject", "Message-ID") if msg[k])
    text = msg.get_body(("plain",)).get_content() if msg.is_multipart() else msg.get_content()
    parts = ", ".join(part.get_content_type() for part in msg.iter_parts()) if msg.is_multipart() else "text/plain"
    _box(f"SMTP sink received mail over TLS, login {record['user']} ({parts})", f"{head}\n\n{text}")
