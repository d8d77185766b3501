"""The acceptance tests' world: names, canary secrets, the gateway config, and small helpers.

Why a module of its own: every acceptance test module speaks of the same targets, keys and simulator
records; the fixtures that start things are in conftest.py. Host names look real (PrivateLink, custom
domain, EAS VPC) but are pinned onto the simulator's loopback "zones" through `resolve:`, so nothing
ever resolves a real name.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from typing import Any

from shared.local.simulator import Simulator

REGION = "ap-southeast-1"
ZONE_A, ZONE_B = "127.0.0.2", "127.0.0.3"
DEAD_ADDR = "127.0.0.9"  # a bound socket that never listens: connection refused
PL_HOST = "ep-gw01.dashscope.ap-southeast-1.privatelink.aliyuncs.com"
DEAD_HOST = "ep-gwdead.dashscope.ap-southeast-1.privatelink.aliyuncs.com"
CUSTOM_HOST = "vpc-ap-southeast-1.dashscope.aliyuncs.com"
EAS_HOST = "1234567890.vpc.ap-southeast-1.pai-eas.aliyuncs.com"
EAS_SERVICE = "llm"

# Canary secrets: none of them may ever show in a log line, an error body or a response header.
UPSTREAM_DS_KEY = "sk-canaryupstreamds3f9a1c7e"
UPSTREAM_EAS_TOKEN = "canary-upstream-eas-8b2d4e61"
KMS_KEY_OLD = "sk-canarykmsold5d0c2a94"
KMS_KEY_NEW = "sk-canarykmsnew71e3b8f0"
ROTATED_ENV_KEY = "sk-canaryrotatedenv2b7e91"
KEY_ALL = "gwk-canary-all-6a1f0e93d2"
KEY_CHAT = "gwk-canary-chat-2c7d9b18aa"
KEY_LIMITED = "gwk-canary-limited-5e8a3f04"
WRONG_KEY = "gwk-canary-wrong-0b9e77c1"
CANARIES = (UPSTREAM_DS_KEY, UPSTREAM_EAS_TOKEN, KMS_KEY_OLD, KMS_KEY_NEW, ROTATED_ENV_KEY, KEY_ALL, KEY_CHAT,
            KEY_LIMITED, WRONG_KEY)

BASE_ENV = {
    "GW_UP_DS_KEY": UPSTREAM_DS_KEY,
    "GW_UP_EAS_TOKEN": UPSTREAM_EAS_TOKEN,
    "GW_KEY_ALL": KEY_ALL,
    "GW_KEY_CHAT": KEY_CHAT,
    "GW_KEY_LIMITED": KEY_LIMITED,
}
KMS_SECRET = "gw-upstream-ds-key"
LIMITED_RPM = 3
EAS_LIMIT = 1024 * 1024  # the EAS gateway's body limit, the gateway's default for eas targets

# gateway.models: OpenAI base URL model name -> ordered routes
MODEL_ROUTES: dict[str, list[dict[str, str]]] = {
    "qwen-plus": [{"target": "qwen-pl", "model": "qwen-plus"}, {"target": "qwen-custom", "model": "qwen-plus"}],
    "deepseek": [{"target": "llm-eas", "model": "DeepSeek-R1-Distill-Qwen-7B"}],
    "qwen-ha": [{"target": "qwen-dead", "model": "qwen-plus"}, {"target": "qwen-pl", "model": "qwen-max"}],
    "chat-ha": [{"target": "llm-eas", "model": "DeepSeek-R1-Distill-Qwen-7B"},
                {"target": "qwen-pl", "model": "qwen-turbo"}],
    "embed": [{"target": "qwen-pl", "model": "text-embedding-v4"}],
}


def config_dict(sim: Simulator, dead_port: int, ca_path: str) -> dict[str, Any]:
    """The vpcprobe.yaml of these tests: four targets on the simulator, one on a dead address."""
    return {
        "region": REGION,
        "defaults": {"timeout": "5s", "retries": 0},
        "resolve": {
            PL_HOST: [f"{ZONE_A}:{sim.port}", f"{ZONE_B}:{sim.port}"],
            CUSTOM_HOST: [f"{ZONE_A}:{sim.https_port}", f"{ZONE_B}:{sim.https_port}"],
            EAS_HOST: [f"{ZONE_A}:{sim.port}", f"{ZONE_B}:{sim.port}"],
            DEAD_HOST: [f"{DEAD_ADDR}:{dead_port}"],
        },
        "targets": [
            {"name": "qwen-pl", "kind": "dashscope", "endpoint": f"http://{PL_HOST}", "credential": "env:GW_UP_DS_KEY"},
            {"name": "qwen-custom", "kind": "dashscope", "endpoint": f"https://{CUSTOM_HOST}",
             "credential": "env:GW_UP_DS_KEY", "ca_bundle": ca_path, "workspace": "ws-gwtest"},
            {"name": "qwen-kms", "kind": "dashscope", "endpoint": f"http://{PL_HOST}",
             "credential": f"kms:{KMS_SECRET}"},
            {"name": "llm-eas", "kind": "eas", "endpoint": f"http://{EAS_HOST}/api/predict/{EAS_SERVICE}",
             "credential": "env:GW_UP_EAS_TOKEN"},
            {"name": "qwen-dead", "kind": "dashscope", "endpoint": f"http://{DEAD_HOST}",
             "credential": "env:GW_UP_DS_KEY"},
        ],
        "gateway": {
            "keys": [
                {"name": "all-access", "key": "env:GW_KEY_ALL"},
                {"name": "chat-only", "key": "env:GW_KEY_CHAT", "targets": ["qwen-pl"], "models": ["qwen-plus"]},
                {"name": "limited", "key": "env:GW_KEY_LIMITED", "rpm": LIMITED_RPM},
            ],
            "models": MODEL_ROUTES,
            "timeouts": {"connect": "2s", "first_byte": "20s", "idle": "20s"},
        },
    }


class RotatingPlane:
    """A stand-in control plane for `kms:` references: the test sets the secret, counts fetches."""

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}
        self.fetches = 0
        self.context: Any = None
        self.settings: Any = None

    def get_secret_value(self, name: str, stage: str | None = None) -> str:
        self.fetches += 1
        return self.secrets[name]


@dataclass
class RawResponse:
    """What came back on a raw socket: status None when the server closed without an answer."""

    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


def raw_request(port: int, data: bytes, timeout: float = 10.0) -> RawResponse:
    """Send bytes as they are (no client library to tidy them up) and read one response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):  # refused before we finished sending: fine
            pass
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = _recv(sock)
            if not chunk:
                return RawResponse(None) if not buf else _parse_head(buf, b"")
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        response = _parse_head(head, b"")
        if "content-length" in response.headers:
            want = int(response.headers["content-length"])
            while len(rest) < want and (chunk := _recv(sock)):
                rest += chunk
            response.body = rest[:want]
        elif "chunked" in response.headers.get("transfer-encoding", ""):
            while not rest.endswith(b"0\r\n\r\n") and (chunk := _recv(sock)):
                rest += chunk
            response.body = _dechunk(rest)
        else:
            while chunk := _recv(sock):
                rest += chunk
            response.body = rest
        return response


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        return b""


def _parse_head(head: bytes, body: bytes) -> RawResponse:
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(status, headers, body)


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2:]
    return out


def sse_data(text: str) -> list[str]:
    """The `data:` payloads of an SSE body, either dialect (with or without the space)."""
    out = []
    for block in text.split("\n\n"):
        for line in block.split("\n"):
            if line.startswith("data:"):
                out.append(line[5:].lstrip(" "))
    return out


def error_of(body: Any) -> dict[str, Any]:
    """The OpenAI-style error object, checked for its three required fields."""
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
    error = body["error"]
    assert all(isinstance(error.get(k), str) and error[k] for k in ("message", "type", "code")), error
    return error
