"""Canary: secrets of every kind, echoed back in every encoded form by upstreams and alert channels, never
reach stdout, stderr, log lines, state files or the messages sent (issue 11, "Secrets").

Three rounds with alerts through the CLI (`vpcprobe check --alert`): in the first both channels fail with
replies that quote their secrets, in the second email delivers the alert, in the third DingTalk delivers the
recovery; then requests through the gateway. The upstream
answers 401 quoting the credential it received in every form; the DingTalk robot's errmsg quotes its
token and URL-encoded signing secret; the SMTP server's reply quotes the AUTH PLAIN blob. The forms
searched for are computed here, independently of shared/logs.py.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import pytest

from shared.local.cli import main
from shared.local.dingtalk_receiver import DingTalkReceiver
from shared.local.smtp_sink import SmtpSink
from tests.fakecloud import FakeCloud

REGION = "ap-southeast-1"
PL = "ep-canary1.dashscope.ap-southeast-1.privatelink.aliyuncs.com"
USER = "alerts@example.com"
# '+', '/', '=' and '"' make the URL-encoded, base64 and JSON forms differ from the raw value.
CANARIES = {
    "dashscope key": "sk-canaryDS+key/01=",
    "kms secret": "sk-canaryKMS+sec/02=",
    "eas token": "canaryEAS+tok/03\"x",
    "dingtalk token": "canaryDTtoken+0123456789/abcdef",
    "dingtalk signing secret": "SECcanary+sign/secret=04",
    "smtp password": "smtp-canary+pw/05",
    "gateway key": "gw-canary+key/06=",
    "sts token": "CAIScanary+sts/token/07=",
}


def forms(secret: str) -> dict[str, str]:
    """Every form of a secret searched for in the output."""
    data = secret.encode()
    out = {
        "raw": secret,
        "quote": quote(secret, safe=""),
        "quote/": quote(secret),
        "quote_plus": quote_plus(secret),
        "json": json.dumps(secret)[1:-1],
        "hex": data.hex(),
    }
    out["quote-lower"] = re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), out["quote"])
    for name, enc in (("b64", base64.b64encode), ("b64url", base64.urlsafe_b64encode)):
        text = enc(data).decode()
        out[name], out[name + "-unpadded"] = text, text.rstrip("=")
        # Inside a longer base64 text (an Authorization: Basic value, a JSON document) the secret's first and
        # last bytes share characters with their neighbours; what is always there is the encoding of the
        # bytes from a 3-byte boundary to the last whole group after it.
        for shift in (1, 2):
            core = data[shift:]
            out[f"{name} from byte {shift}"] = enc(core[: len(core) - len(core) % 3]).decode()
    return out


def echoes(secret: str) -> str:
    """What a hostile upstream says back: the secret in every form, and inside longer base64 texts at each
    of the three alignments (an Authorization: Basic value)."""
    inside = [base64.b64encode(prefix + secret.encode()).decode() for prefix in (b"u:", b"us:", b"usr:")]
    return " | ".join([*forms(secret).values(), *inside])


class _EchoUpstream(BaseHTTPRequestHandler):
    """401 quoting the credential it received, as an upstream that echoes bad keys would."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        auth = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        if self.server.healthy:  # type: ignore[attr-defined]
            status, body = 200, b'{"object": "list", "data": []}'
        else:
            status = 401
            body = json.dumps({"error": {"code": "invalid_api_key", "message": f"bad key {echoes(auth)}"}}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def upstream():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoUpstream)
    server.healthy = False  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def cloud(monkeypatch, tmp_path):
    with FakeCloud() as fake:
        key = fake.add_key(token=CANARIES["sts token"])
        fake.add_kms_secret("canary-kms", CANARIES["kms secret"])
        fake.add_eas_service("llm", token=CANARIES["eas token"])
        for name in ("FC_FUNCTION_NAME", "FC_INSTANCE_ID", "FC_REGION", "VPCPROBE_CONFIG"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HOME", str(tmp_path))
        for name, value in fake.env(key).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("CANARY_DS_KEY", CANARIES["dashscope key"] + "\n")  # as `echo key > file` leaves it
        monkeypatch.setenv("CANARY_DT_TOKEN", CANARIES["dingtalk token"])
        monkeypatch.setenv("CANARY_DT_SECRET", CANARIES["dingtalk signing secret"])
        monkeypatch.setenv("CANARY_SMTP_PASSWORD", CANARIES["smtp password"])
        monkeypatch.setenv("CANARY_GW_KEY", CANARIES["gateway key"])
        yield fake, key


@pytest.fixture
def robot():
    r = DingTalkReceiver({CANARIES["dingtalk token"]: CANARIES["dingtalk signing secret"]}).start()
    yield r
    r.stop()


@pytest.fixture
def smtp():
    s = SmtpSink("ssl", users={USER: CANARIES["smtp password"]}).start()
    yield s
    s.stop()


def write_config(path: Path, fake: FakeCloud, upstream: int, robot: DingTalkReceiver, smtp: SmtpSink) -> Path:
    eas_host = f"{fake.account_id}.vpc.{REGION}.pai-eas.aliyuncs.com"
    config = {
        "region": REGION,
        "defaults": {"timeout": "2s", "retries": 0},
        "resolve": {PL: [f"127.0.0.1:{upstream}"], eas_host: [f"127.0.0.1:{upstream}"]},
        "cloud": {"retries": 0},
        "targets": [
            {"name": "ds-env", "kind": "dashscope", "endpoint": f"http://{PL}", "credential": "env:CANARY_DS_KEY"},
            {"name": "ds-kms", "kind": "dashscope", "endpoint": f"http://{PL}", "credential": "kms:canary-kms"},
            {"name": "eas", "kind": "eas", "endpoint": f"http://{eas_host}/api/predict/llm",
             "credential": f"eas:{REGION}/llm"},
        ],
        "state": {"backend": "file", "path": str(path / "state")},
        "alerts": {
            "failure_threshold": 1,
            "channels": [
                {"name": "robot", "type": "dingtalk", "url": robot.url, "access_token": "env:CANARY_DT_TOKEN",
                 "secret": "env:CANARY_DT_SECRET"},
                {"name": "mail", "type": "email", "host": "127.0.0.1", "port": smtp.port, "security": "ssl",
                 "ca_bundle": smtp.ca_path, "username": USER, "password": "env:CANARY_SMTP_PASSWORD",
                 "from": USER, "to": ["oncall@example.com"]},
            ],
        },
        "gateway": {"keys": [{"name": "app", "key": "env:CANARY_GW_KEY"}]},
    }
    file = path / "vpcprobe.yaml"
    file.write_text(json.dumps(config))  # JSON is YAML
    return file


def found(texts: dict[str, str], secrets: dict[str, str]) -> list[str]:
    """Every (sink, secret, form) where a form of a secret occurs."""
    hits = []
    for kind, secret in secrets.items():
        searched = forms(secret)
        if kind == "smtp password":
            searched["AUTH PLAIN"] = base64.b64encode(f"\0{USER}\0{secret}".encode()).decode()
        for form, text in searched.items():
            hits += [f"{sink}: {kind} as {form}" for sink, out in texts.items() if text in out]
    return hits


def test_no_form_of_any_secret_reaches_any_output(cloud, upstream, robot, smtp, tmp_path, capfd):
    fake, key = cloud
    config = write_config(tmp_path, fake, upstream.server_address[1], robot, smtp)
    secrets = {**CANARIES, "access key secret": key.secret}
    # Round 1: every target is down (401); both channels fail quoting what they were sent.
    robot.fail_next(310000, f"sign not match: {echoes(CANARIES['dingtalk signing secret'])} token "
                            f"{echoes(CANARIES['dingtalk token'])}")
    blob = base64.b64encode(f"\0{USER}\0{CANARIES['smtp password']}".encode()).decode()
    smtp.fail_next(554, f"5.7.1 rejected AUTH PLAIN {blob} {echoes(CANARIES['smtp password'])}")
    assert main(["check", "--alert", "-c", str(config)]) == 1
    # Round 2: DingTalk fails again, email delivers the alert (with the upstream's echoes in its diagnosis).
    robot.fail_next(310000, f"sign not match: {echoes(CANARIES['dingtalk signing secret'])}")
    assert main(["check", "--alert", "--json", "-c", str(config)]) == 1
    # Round 3: the upstream recovers; DingTalk delivers the recovery.
    upstream.healthy = True
    assert main(["check", "--alert", "-c", str(config)]) == 0
    upstream.healthy = False
    out, err = capfd.readouterr()

    from shared.config.load import load_config
    from shared.credentials.provider import TokenProvider
    from shared.gateway.app import create_app
    from shared.gateway.server import start_in_thread

    loaded = load_config(str(config))
    server = start_in_thread(create_app(loaded, tokens=TokenProvider(cloud=loaded.cloud)), "127.0.0.1", 0)
    try:
        base = f"http://127.0.0.1:{server.port}"
        wrong = httpx.get(f"{base}/ds-env/compatible-mode/v1/models",
                          headers={"Authorization": f"Bearer {CANARIES['gateway key']}x"})
        through = httpx.get(f"{base}/ds-env/compatible-mode/v1/models",
                            headers={"Authorization": f"Bearer {CANARIES['gateway key']}"})
    finally:
        server.stop()
    gw_out, gw_err = capfd.readouterr()

    assert "unauthorized" in out and "***" in out  # the rounds ran, saw the echoes, and masked them
    assert wrong.status_code == 401 and through.status_code == 502  # the upstream's 401, as the gateway's error
    assert robot.messages and smtp.messages, "rounds 2 and 3 delivered on both channels"
    texts = {"stdout": out, "stderr": err, "gateway stdout": gw_out, "gateway stderr": gw_err,
             "gateway answer to a wrong key": wrong.text, "gateway answer through": through.text}
    for file in sorted((tmp_path / "state").rglob("*")):
        if file.is_file():
            texts[f"state file {file.name}"] = file.read_bytes().decode("utf-8", "replace")
    # the receiver's record of each message, minus the access_token URL parameter it arrived with
    posted = [{k: v for k, v in m.items() if k != "token"} for m in robot.messages]
    texts["dingtalk messages"] = json.dumps(posted, ensure_ascii=False)
    texts["dingtalk messages (ascii)"] = json.dumps(posted)
    texts["emails (wire)"] = "\n".join(m["data"].decode("utf-8", "replace") for m in smtp.messages)
    texts["emails"] = "\n".join(part.get_content() for m in smtp.messages for part in m["message"].walk()
                                if part.get_content_maintype() == "text")
    assert "RESOLVED" in texts["dingtalk messages"] and "unauthorized" in texts["emails"]
    assert found(texts, secrets) == []
