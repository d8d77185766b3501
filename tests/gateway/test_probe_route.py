"""POST /probe: a round on demand through the served gateway, against the simulator and the fake control plane.

Sync rounds probe the simulator's loopback "zones" (and one refused address); alert=true sends through the
loopback DingTalk robot under the alert store's lease; async=true reaches InvokeFunction on tests/fakecloud.py
through the real FC SDKs.
"""

from __future__ import annotations

import copy
import json
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

import httpx
import pytest

from shared.config.load import parse_config
from shared.config.reader import ConfigError
from shared.credentials.provider import TokenProvider
from shared.credentials.settings import CloudSettings
from shared.fc.events import parse_probe_event
from shared.gateway.app import create_app
from shared.gateway.errors import GatewayError
from shared.gateway.probe_route import ProbeQuery, parse_query
from shared.gateway.server import start_in_thread
from shared.local.dingtalk_receiver import DingTalkReceiver
from shared.verdict.result import ProbeResult
from tests.fakecloud import FakeCloud
from tests.gateway.harness import BASE_ENV, CANARIES, KEY_ALL, KEY_CHAT, REGION, config_dict, error_of

RESULT_FIELDS = set(ProbeResult("t", "dashscope", "http://x", "up").to_dict())
ROBOT_TOKEN, ROBOT_SECRET = "probe-route-robot-token-7c1", "SECprobe-route-robot-secret-9d4"


def post(url: str, query: str = "", key: str | None = KEY_ALL, method: str = "POST") -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.request(method, f"{url}/probe{query}", headers=headers, timeout=30)


@pytest.fixture
def served(gw_sim, dead_port, tmp_path) -> Iterator[Any]:
    """Start gateways on variants of the acceptance tests' config: served(changes) -> base URL."""
    servers = []
    ca = tmp_path / "sim-ca.pem"
    ca.write_bytes(gw_sim.ca_pem or b"")

    def start(change=None, environ: dict[str, str] | None = None, config: Any = None) -> str:
        if config is None:
            data = copy.deepcopy(config_dict(gw_sim, dead_port, str(ca)))
            if change is not None:
                change(data)
            config = parse_config(data, path="probe-route.yaml")
        tokens = TokenProvider({**BASE_ENV, **(environ or {})}, CloudSettings(region=REGION))
        server = start_in_thread(create_app(config, tokens=tokens), "127.0.0.1", 0)
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.stop()


# --- the query ---------------------------------------------------------------------------------


def test_query_defaults_and_repeatable_targets():
    assert parse_query("") == ProbeQuery(())
    assert parse_query("target=a&target=b&target=a&alert=true&async=false") == ProbeQuery(("a", "b"), True, False)
    assert parse_query("async=true") == ProbeQuery((), False, True)


@pytest.mark.parametrize(
    "query,named",
    [("alert=maybe", "alert='maybe'"), ("async=1", "async='1'"), ("targets=a", "'targets'"),
     ("alert=true&alert=false", "'alert' is given twice"), ("target=", "target= needs a target name")],
)
def test_a_bad_query_is_refused_naming_the_parameter(query, named):
    with pytest.raises(GatewayError) as caught:
        parse_query(query)
    assert (caught.value.status, caught.value.code) == (400, "invalid_parameter")
    assert named in caught.value.message and "target=NAME (repeatable)" in caught.value.message


# --- sync rounds ---------------------------------------------------------------------------------


def test_a_round_answers_the_check_json_objects_and_200_even_when_down(gw, gw_logs):
    resp = post(gw.url, "?target=qwen-pl&target=qwen-dead")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert (body["ok"], body["targets"], body["up"], body["down"], body["degraded"], body["unknown"]) == (
        False, 2, 1, 1, 0, 0)
    assert [r["target"] for r in body["results"]] == ["qwen-pl", "qwen-dead"]  # config order
    assert all(set(r) == RESULT_FIELDS for r in body["results"])
    up, down = body["results"]
    assert (up["status"], up["http_status"], up["diagnosis"]) == ("up", 200, None)
    assert down["status"] == "down" and down["diagnosis"]["code"] == "connect_refused"
    assert len(up["addresses"]) == 2 and {a["ip"] for a in up["addresses"]} == {"127.0.0.2", "127.0.0.3"}
    assert "alerts" not in body and 0 <= body["loop_lag_ms"]["max"] < 5000
    models = [r for r in gw.arrived() if r["path"].endswith("/models")]
    assert len(models) == 2  # one probe request per zone of qwen-pl, nothing else upstream
    line = next(x for x in map(json.loads, gw_logs.getvalue().splitlines()) if x.get("route") == "probe")
    assert (line["status"], line["targets"], line["key_name"]) == (200, ["qwen-pl", "qwen-dead"], "all-access")
    assert not any(c in gw_logs.getvalue() or c in resp.text for c in CANARIES)


def test_without_target_a_key_probes_the_targets_it_may_use(gw):
    everything = post(gw.url).json()
    assert [r["target"] for r in everything["results"]] == ["qwen-pl", "qwen-custom", "qwen-kms", "llm-eas",
                                                            "qwen-dead"]
    mine = post(gw.url, key=KEY_CHAT).json()  # chat-only may use qwen-pl only
    assert [r["target"] for r in mine["results"]] == ["qwen-pl"]


def test_a_target_the_key_may_not_use_is_403_naming_it(gw):
    resp = post(gw.url, "?target=qwen-pl&target=llm-eas", key=KEY_CHAT)
    error = error_of(resp.json())
    assert (resp.status_code, error["code"]) == (403, "target_not_allowed")
    assert "'llm-eas'" in error["message"] and "chat-only" in error["message"]
    assert gw.arrived() == []  # refused before anything was probed


def test_an_unknown_target_is_404_naming_it_and_the_known_ones(gw):
    resp = post(gw.url, "?target=qwen-pl&target=nope", key=KEY_CHAT)
    error = error_of(resp.json())
    assert (resp.status_code, error["type"], error["code"]) == (404, "not_found_error", "unknown_target")
    assert "'nope'" in error["message"] and error["message"].endswith("may probe: qwen-pl")


def test_bad_query_method_key_and_alert_without_alerts(gw):
    resp = post(gw.url, "?alert=maybe")
    assert resp.status_code == 400 and "alert='maybe'" in error_of(resp.json())["message"]
    resp = post(gw.url, method="GET")
    assert (resp.status_code, resp.headers["allow"]) == (405, "POST")
    assert post(gw.url, key=None).status_code == 401
    assert post(gw.url, method="GET", key=None).status_code == 401  # nothing said before the key
    resp = post(gw.url, "?alert=true")
    assert resp.status_code == 400 and "needs an alerts: section" in error_of(resp.json())["message"]
    assert gw.arrived() == []


class _Holding:
    """A loopback server that accepts connections and answers nothing until released: a round that waits."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        conn, _ = self.sock.accept()
        self.accepted.set()
        self.release.wait(30)
        conn.close()  # the probe sees the connection end: its round finishes
        self.sock.close()


def test_rounds_beyond_the_limit_get_429_while_the_proxy_still_serves(served, gw_sim):
    holding = _Holding()

    def change(data: dict) -> None:
        data["resolve"]["ep-hold.dashscope.ap-southeast-1.privatelink.aliyuncs.com"] = f"127.0.0.1:{holding.port}"
        data["targets"].append({"name": "held", "kind": "dashscope", "credential": "env:GW_UP_DS_KEY",
                                "endpoint": "http://ep-hold.dashscope.ap-southeast-1.privatelink.aliyuncs.com"})

    url = served(change)
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(post, url, "?target=held")
        assert holding.accepted.wait(20)  # the first round is running and waiting on its target
        busy = post(url, "?target=qwen-pl")
        assert (busy.status_code, busy.headers["retry-after"]) == (429, "1")
        assert error_of(busy.json())["code"] == "probe_busy"
        assert "concurrent_rounds: 1" in error_of(busy.json())["message"]
        proxied = httpx.get(f"{url}/qwen-pl/compatible-mode/v1/models", headers={"Authorization": f"Bearer {KEY_ALL}"})
        assert proxied.status_code == 200  # the proxy is not blocked by the running round
        holding.release.set()
        done = first.result(timeout=30)
    assert done.status_code == 200 and done.json()["results"][0]["status"] == "down"
    assert post(url, "?target=qwen-pl").status_code == 200  # the slot is free again


# --- alert=true: the timer's alert step under its lease ------------------------------------------


def test_concurrent_alerting_rounds_on_two_instances_send_exactly_one_message(served, tmp_path):
    posted = threading.Event()
    go_on = threading.Event()

    def hold(message: dict) -> None:  # the first sender keeps the lease while the others finish their rounds
        posted.set()
        go_on.wait(30)

    with DingTalkReceiver({ROBOT_TOKEN: ROBOT_SECRET}, on_message=hold) as robot:
        def change(data: dict) -> None:
            data["state"] = {"backend": "file", "path": str(tmp_path / "state")}
            data["alerts"] = {"failure_threshold": 1, "channels": [
                {"name": "ding", "type": "dingtalk", "url": robot.url, "access_token": "env:DT_TOKEN",
                 "secret": "env:DT_SECRET", "timeout": "30s"}]}
            data["gateway"]["probe"] = {"concurrent_rounds": 4}

        environ = {"DT_TOKEN": ROBOT_TOKEN, "DT_SECRET": ROBOT_SECRET}
        urls = [served(change, environ), served(change, environ)]  # two FC instances, one state store
        with ThreadPoolExecutor(6) as pool:
            calls = [pool.submit(post, urls[i % 2], "?target=qwen-dead&alert=true") for i in range(6)]
            assert posted.wait(30)  # one round holds the lease and is sending
            for finished, _ in enumerate(as_completed(calls, timeout=30), 1):  # the rest finish meanwhile
                if finished == 5:
                    break
            go_on.set()
            answers = [c.result(timeout=30) for c in calls]
    alerts = [a.json()["alerts"] for a in answers]
    assert all(a.status_code == 200 and a.json()["down"] == 1 for a in answers)
    assert sum(1 for a in alerts if a.get("sent") == 1) == 1
    assert sum(1 for a in alerts if "skipped" in a) == 5
    histories = [a.json()["history"] for a in answers]  # recorded once, by the round that held the lease
    assert sum(1 for h in histories if h.get("objects_written", 0) >= 1) == 1
    assert sum(1 for h in histories if "skipped" in h) == 5
    assert len(robot.messages) == 1 and "qwen-dead" in robot.messages[0]["text"]
    again = post(urls[0], "?target=qwen-dead&alert=true").json()["alerts"]  # still down: already announced
    assert (again["new"], again["sent"]) == (0, 0) and len(robot.messages) == 1
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    assert state["targets"]["qwen-dead"]["status"] == "down"
    assert ROBOT_SECRET not in json.dumps(alerts)


# --- async=true: InvokeFunction of the probe function --------------------------------------------


@pytest.fixture
def cloud(monkeypatch) -> Iterator[FakeCloud]:
    with FakeCloud() as fake:
        for name, value in fake.env().items():
            monkeypatch.setenv(name, value)
        yield fake


def _cloud_section(function: str | None = None, retries: int = 2):
    def change(data: dict) -> None:
        data["cloud"] = {"account_id": "1234567890123456", "network": "vpc", "retries": retries}
        if function is not None:
            data["gateway"]["probe"] = {"function": function}

    return change


def test_async_hands_the_round_to_the_probe_function_fc3(served, cloud):
    cloud.add_fc_function("vpcprobe-probe", region=REGION)
    url = served(_cloud_section())
    resp = post(url, "?target=qwen-pl&async=true&alert=false")
    assert resp.status_code == 202
    body = resp.json()
    (call,) = cloud.invocations
    assert (call["api"], call["function"], call["type"], call["qualifier"]) == ("fc3", "vpcprobe-probe", "Async",
                                                                                 "LATEST")
    assert body == {"request_id": call["request_id"], "function": "vpcprobe-probe", "api": "fc3",
                    "targets": ["qwen-pl"], "alert": False}
    event = parse_probe_event(call["payload"])  # the probe function accepts what was sent
    assert (event.source, event.targets, event.alert) == ("invoke", ["qwen-pl"], False)
    assert cloud.count("fc3", 202) == 1  # signed and authorized by the fake


def test_async_without_targets_sends_the_keys_targets_or_none(served, cloud):
    cloud.add_fc_function("vpcprobe-probe", region=REGION)
    url = served(_cloud_section())
    assert post(url, "?async=true").status_code == 202
    assert post(url, "?async=true", key=KEY_CHAT).status_code == 202
    every, mine = (json.loads(c["payload"]) for c in cloud.invocations)
    assert every == {"alert": False}  # the probe function's own "every target"
    assert mine == {"alert": False, "targets": ["qwen-pl"]}


def test_async_to_a_function_in_an_fc2_service(served, cloud):
    cloud.add_fc_function("probe", service="vpcprobe", region=REGION)
    url = served(_cloud_section("vpcprobe/probe"))
    resp = post(url, "?target=llm-eas&async=true")
    assert resp.status_code == 202 and resp.json()["api"] == "fc2"
    (call,) = cloud.invocations
    assert (call["api"], call["service"], call["function"], call["type"]) == ("fc2", "vpcprobe", "probe", "Async")
    assert resp.json()["request_id"] == call["request_id"]


def test_async_failures_are_clear_and_secret_free(served, cloud, gw_logs, monkeypatch):
    cloud.add_fc_function("vpcprobe-probe", region=REGION)
    url = served(_cloud_section(retries=0))
    cloud.throttle(1, "fc3")
    resp = post(url, "?async=true")
    assert (resp.status_code, error_of(resp.json())["code"], resp.headers["retry-after"]) == (
        429, "invoke_throttled", "1")
    missing = served(_cloud_section("not-deployed"))
    resp = post(missing, "?async=true")
    assert resp.status_code == 502 and "not-deployed" in error_of(resp.json())["message"]
    denied = cloud.add_key(allow={"kms:GetSecretValue"})  # the gateway's role lacks fc:InvokeFunction
    for name, value in cloud.env(denied).items():
        monkeypatch.setenv(name, value)
    resp = post(url, "?async=true")
    error = error_of(resp.json())
    assert (resp.status_code, error["code"]) == (502, "invoke_failed") and "fc:InvokeFunction" in error["message"]
    assert cloud.invocations == []
    out = gw_logs.getvalue() + resp.text
    assert not any(s in out for s in (cloud.default_key.secret, cloud.default_key.token, denied.secret, denied.token))


def test_async_needs_an_account_id_for_the_fc_host(served, cloud, monkeypatch):
    monkeypatch.delenv("FC_ACCOUNT_ID", raising=False)
    monkeypatch.delenv("ALIBABA_CLOUD_ACCOUNT_ID", raising=False)
    url = served()
    resp = post(url, "?async=true")
    assert (resp.status_code, error_of(resp.json())["code"]) == (500, "invoke_unavailable")
    assert "account id" in error_of(resp.json())["message"] and cloud.invocations == []


def test_probe_function_setting_is_validated_and_defaults_from_the_environment(monkeypatch, gw_sim, dead_port,
                                                                              tmp_path):
    (tmp_path / "ca.pem").write_bytes(gw_sim.ca_pem or b"")
    data = config_dict(gw_sim, dead_port, str(tmp_path / "ca.pem"))
    data["gateway"]["probe"] = {"function": "a/b/c", "concurrent_rounds": 0}
    with pytest.raises(ConfigError) as caught:
        parse_config(data, path="p.yaml")
    problems = "\n".join(caught.value.problems)
    assert "gateway.probe.function: 'a/b/c' is not a function name" in problems
    assert "gateway.probe.concurrent_rounds: must be a whole number >= 1" in problems
    del data["gateway"]["probe"]
    assert parse_config(data, path="p.yaml").gateway.probe_function == "vpcprobe-probe"  # s.yaml's name
    monkeypatch.setenv("VPCPROBE_PROBE_FUNCTION", "svc/other")
    assert parse_config(data, path="p.yaml").gateway.probe_function == "svc/other"
