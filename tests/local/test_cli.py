"""The `vpcprobe` command: check, targets, doctor, serve --demo; exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from shared.local.cli import main
from shared.local.simulator import Fault, Simulator

ROOT = Path(__file__).resolve().parents[2]
PL = "ep-cli.dashscope.ap-southeast-1.privatelink.aliyuncs.com"


@pytest.fixture(scope="module")
def sim():
    s = Simulator(hosts=("127.0.0.2", "127.0.0.3"), api_keys={"sk-cli-key-123": "ap-southeast-1"}).start()
    yield s
    s.stop()


@pytest.fixture
def cfg(sim, tmp_path, monkeypatch):
    monkeypatch.setenv("DS_KEY", "sk-cli-key-123")
    data = {
        "defaults": {"timeout": "2s", "retries": 0},
        "resolve": {PL: [f"127.0.0.2:{sim.port}", f"127.0.0.3:{sim.port}"]},
        "targets": [
            {"name": "a", "kind": "dashscope", "endpoint": f"http://{PL}", "credential": "env:DS_KEY"},
            {
                "name": "b",
                "kind": "dashscope",
                "endpoint": f"http://{PL}",
                "credential": "env:DS_KEY",
                "probe": {"mode": "http", "path": "/compatible-mode/v1/nothing"},
            },
        ],
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_check_all_up_exits_0(cfg, capsys):
    assert main(["check", "-c", cfg, "--target", "a"]) == 0
    out = capsys.readouterr().out
    assert "TARGET" in out and "UP" in out


def test_check_json_one_object_per_target_exit_1(cfg, capsys):
    assert main(["check", "-c", cfg, "--json"]) == 1
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["target"] for x in lines] == ["a", "b"]
    assert lines[1]["status"] == "down" and lines[1]["diagnosis"]["code"] == "path_not_found"
    assert "sk-cli-key-123" not in json.dumps(lines)


def test_check_usage_and_config_errors_exit_2(cfg, tmp_path, capsys):
    assert main(["check", "-c", cfg, "--target", "zzz"]) == 2
    assert "unknown target(s) zzz" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("targets: []\n")
    assert main(["check", "-c", str(bad)]) == 2
    assert f"{bad}: targets: must be a non-empty list" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["check", "--bogus"])
    assert info.value.code == 2


def test_targets_lists_urls_without_sending(cfg, sim, capsys):
    before = len(sim.requests)
    assert main(["targets", "-c", cfg, "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert rows[0]["url"] == f"http://{PL}/compatible-mode/v1/models"
    assert rows[0]["auth"] == "bearer (env:DS_KEY)" and rows[0]["scheme"] == "http"
    assert len(sim.requests) == before


def test_targets_example_config_text(capsys):
    assert main(["targets", "-c", str(ROOT / "vpcprobe.example.yaml")]) == 0
    out = capsys.readouterr().out
    assert "/api/predict/llm_demo/v1/chat/completions" in out and "warning:" in out


def test_doctor_healthy_and_wrong_path(sim, monkeypatch, capsys):
    monkeypatch.setenv("DS_KEY", "sk-cli-key-123")
    assert main(["doctor", f"http://127.0.0.2:{sim.port}", "--token-env", "DS_KEY"]) == 0
    out = capsys.readouterr().out
    assert "TCP 127.0.0.2" in out and "auth: accepted" in out and "verdict: UP" in out
    assert main(["doctor", f"http://127.0.0.2:{sim.port}/api/predict/nosuch"]) == 1
    out = capsys.readouterr().out
    assert "eas_service_not_found" in out and "remedy:" in out


def test_doctor_reports_rule_violations_then_probes(sim, capsys):
    assert main(["doctor", "https://ep-x.dashscope.ap-southeast-1.privatelink.aliyuncs.com.invalid"]) == 1
    out = capsys.readouterr().out
    assert "[ok  ] URL rules" in out and "[FAIL] DNS: the name does not resolve" in out  # .invalid: custom domain
    assert main(["doctor", "https://my_bad_host.dashscope.aliyuncs.com"]) == 1
    assert "underscore" in capsys.readouterr().out


def test_doctor_without_token_says_so(sim, capsys):
    assert main(["doctor", f"http://127.0.0.2:{sim.port}"]) == 1
    assert "--token-env" in capsys.readouterr().out


def test_serve_demo_runs_rounds_with_the_fault_script(tmp_path, monkeypatch):
    """`vpcprobe serve --demo` end to end in a child process: rounds print, zone B dies in round 3."""
    proc = subprocess.run(
        [sys.executable, "-m", "shared", "serve", "--demo", "--port", "0", "--schedule", "@every 1s", "--rounds", "3"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "== round 1" in out and "== round 3" in out
    assert "zone B's endpoint ENI" in out and "zones_down" in out
    # right after zone B dies, a request through the gateway fails over from zone B to zone A
    assert "gateway: HTTP 200 in" in out and "served by 127.0.0.2 (zone A)" in out
    assert "(failover: 127.0.0.3:" in out and "connect_refused, then 127.0.0.2:" in out
    log = (tmp_path / ".vpcprobe" / "probe.log").read_text()
    events = {json.loads(line).get("event") for line in log.splitlines() if line.startswith("{")}
    assert {"probe", "gateway_request"} <= events
    assert "sk-demo" not in log and "eas-demo-token" not in log and "gw-demo-key" not in log


def _demo_commands(proc: subprocess.Popen) -> tuple[str, str]:
    """(the gateway's URL, the copy-paste commands) from serve --demo's output, read up to the schedule line."""
    url, commands, reading = "", [], False
    for line in proc.stdout:
        if line.startswith("gateway: http://"):
            url = line.split()[1]
        elif line.startswith("demo: gateway key "):
            reading = True
        elif line.startswith("schedule: "):
            break
        elif reading:
            commands.append(line)
    return url, "".join(commands)


@pytest.mark.skipif(shutil.which("curl") is None, reason="the demo prints curl commands; curl is not installed")
def test_serve_demo_gateway_answers_the_commands_it_prints(tmp_path):
    """The demo's printed curl / OpenAI SDK / DashScope SDK commands, run as a person would paste them."""
    pytest.importorskip("openai")
    pytest.importorskip("dashscope")
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared", "serve", "--demo", "--port", "0", "--schedule", "@every 1h"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path), "PYTHONUNBUFFERED": "1"},
    )
    guard = threading.Timer(120, proc.kill)  # a hung demo fails the test instead of hanging it
    guard.start()
    try:
        url, commands = _demo_commands(proc)
        assert url.startswith("http://127.0.0.1:") and commands.count("curl ") == 3, commands
        python_dir = tmp_path / "bin"  # `python` in the commands: this interpreter, which has both SDKs
        python_dir.mkdir()
        (python_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        (python_dir / "python").chmod(0o755)
        env = {"PATH": f"{python_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "NO_PROXY": "*", "no_proxy": "*"}
        env |= {k: v for k, v in os.environ.items() if k in ("SSL_CERT_FILE", "LANG")}
        ran = subprocess.run(["bash", "-e"], input=commands, capture_output=True, text=True, timeout=90, env=env)
        assert ran.returncode == 0, ran.stdout + ran.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=60)
        finally:
            guard.cancel()
    lines = [line for line in ran.stdout.splitlines() if line]
    chat, eas = (json.loads(line) for line in lines if line.startswith("{"))  # the two plain curl answers
    assert chat["choices"][0]["message"]["content"].startswith("Hello from the simulator")
    assert eas["model"] == "DeepSeek-R1-Distill-Qwen-7B"
    frames = [line for line in lines if line.startswith("data: ")]  # the streamed curl, frame by frame
    assert len(frames) > 3 and frames[-1] == "data: [DONE]"
    models, reply, streamed = (line for line in lines if not line.startswith(("{", "data: ")))
    assert json.loads(models.replace("'", '"')) == ["qwen-plus", "deepseek"]  # the models the demo key may use
    assert reply.startswith("Hello from the simulator")  # the OpenAI SDK
    assert streamed.startswith("Hello from the simulator")  # the DashScope SDK, streamed
    assert proc.returncode == 0


def test_python_dash_m_shared(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "shared", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0 and "check" in proc.stdout


def test_simulator_fault_survives_between_cli_rounds(cfg, sim, capsys):
    fid = sim.inject(Fault(route="/compatible-mode/v1/models", status=503))
    try:
        assert main(["check", "-c", cfg, "--target", "a"]) == 1
        assert "model_unavailable" in capsys.readouterr().out
    finally:
        sim.clear(fid)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://[::1", "is not a valid URL"),
        ("ep-x.dashscope.aliyuncs.com", "is not an http(s) URL"),
        ("ftp://h/x", "is not an http(s) URL"),
        ("http://h:99999", "is not a valid URL"),
        # issue 11: these reached the probe engine and crashed it (probe_crashed, exit 1)
        ("http://a..b/", "host 'a..b' is not a valid DNS name"),
        ("http://a..b/?q=1", "host 'a..b' is not a valid DNS name"),
        (f"http://{'a' * 64}.example/", "is not a valid DNS name: at most 253 characters"),
        (f"http://a_b.{'a' * 64}/", "is not a valid DNS name: at most 253 characters"),  # found by make fuzz
        ("http://127.0.0.1:9/api/predict/s/v1/v1", "the path repeats '/v1/v1'"),
        ("http://127.0.0.1:9/v1/v1/chat/completions", "the path repeats '/v1/v1'"),
        ("http://127.0.0.1:0/", "port 0 is no server's port"),
        ("http://127.0.0.1:9/a b", "the path must be visible ASCII"),
        ("http://127.0.0.1:9/api/predict/s/中", "the path must be visible ASCII"),
    ],
)
def test_doctor_refuses_what_no_request_can_be_sent_to(url, why, capsys):
    assert main(["doctor", url]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # a usage error: on stderr, and no probe ran (no log line either)
    assert captured.err.startswith("vpcprobe doctor: ") and why in captured.err
    assert "probe_crashed" not in captured.err and captured.err.count("\n") == 1


def test_doctor_quotes_a_huge_url_as_an_excerpt(capsys):
    assert main(["doctor", "http://" + "a." * 500_000 + "example/"]) == 2
    assert len(capsys.readouterr().err) < 400


def test_check_json_stdout_is_json_lines_even_when_a_probe_crashes(cfg, monkeypatch, capsys):
    """A probe that crashes (a bug: here DNS resolution raising) is logged as `probe_crashed` on stderr;
    stdout holds only the result objects, one per line; the targets are `unknown` (exit 3), not down."""

    async def broken_resolve(*args, **kwargs):
        raise RuntimeError("a bug in the prober")

    monkeypatch.setattr("shared.probe.engine.dns.resolve", broken_resolve)
    assert main(["check", "-c", cfg, "--json"]) == 3
    captured = capsys.readouterr()
    results = [json.loads(line) for line in captured.out.splitlines()]
    assert [(r["target"], r["status"], r["diagnosis"]["code"]) for r in results] == [
        ("a", "unknown", "prober_error"), ("b", "unknown", "prober_error")]
    assert {r["diagnosis"]["message"] for r in results} == {
        "the prober itself failed (a vpcprobe bug), so this says nothing about the endpoint: probe error: RuntimeError"}
    crashes = [json.loads(line) for line in captured.err.splitlines()]
    assert [(c["event"], c["target"]) for c in crashes] == [("probe_crashed", "a"), ("probe_crashed", "b")]


def test_the_command_puts_the_log_stream_back(cfg, monkeypatch, capsys):
    """In-process callers (the tests, serve's rounds) keep logging where they did before `main`."""
    from shared import logs

    previous = logs.configure(stream=None)
    main(["check", "-c", cfg, "--target", "a"])
    assert logs.configure(stream=previous) is None


def test_serve_without_the_local_extra_names_the_extra(monkeypatch, capsys):
    """The base install is FC's: `serve` needs the `local` extra, and says so instead of a traceback."""
    for name in [m for m in sys.modules if m.startswith(("shared.local.serve", "shared.local.schedule"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "croniter", None)  # `import croniter` now raises ModuleNotFoundError
    assert main(["serve", "--rounds", "1"]) == 2
    err = capsys.readouterr().err
    assert "`local` extra (croniter is not installed)" in err and "vpcprobe[local]" in err


def test_a_missing_module_of_no_extra_is_still_a_bug(monkeypatch):
    monkeypatch.setattr("shared.local.cli._targets", lambda args: __import__("no_such_module_of_ours"))
    with pytest.raises(ModuleNotFoundError):
        main(["targets"])


def test_serve_without_a_gateway_section_runs_only_the_schedule(cfg, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["serve", "-c", cfg, "--port", "0", "--schedule", "@every 1s", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "gateway: not started: the config has no gateway: section" in out and "== round 1" in out


def test_serve_names_a_gateway_port_in_use(sim, cfg, tmp_path, monkeypatch, capsys):
    """The gateway's port is taken (here by the simulator): exit 2 before any round, saying what to do."""
    data = yaml.safe_load(Path(cfg).read_text())
    data["gateway"] = {"keys": [{"name": "app", "key": "env:DS_KEY"}]}
    Path(cfg).write_text(yaml.safe_dump(data))
    monkeypatch.chdir(tmp_path)
    argv = ["serve", "-c", cfg, "--host", "127.0.0.2", "--port", str(sim.port), "--schedule", "@every 1s"]
    assert main([*argv, "--rounds", "1"]) == 2
    captured = capsys.readouterr()
    assert f"gateway: cannot listen on 127.0.0.2:{sim.port}" in captured.err and "--port" in captured.err
    assert "== round" not in captured.out and "cannot listen" not in captured.out


@pytest.mark.parametrize(
    ("statuses", "code"),
    [
        (["up", "up"], 0),
        (["up", "unknown"], 3),
        (["unknown", "unknown"], 3),
        (["unknown", "down"], 1),
        (["degraded", "unknown"], 1),
        (["up", "down"], 1),
        ([], 0),
    ],
)
def test_check_exit_code_unknown_is_3_unless_something_is_really_wrong(statuses, code):
    from shared.local.cli import exit_code
    from shared.verdict.status import Status

    assert exit_code([Status(s) for s in statuses]) == code


def test_the_table_shows_unknown_with_the_overload_diagnosis():
    from shared.local.report import render_table
    from shared.verdict.codes import Code
    from shared.verdict.diagnose import diagnose
    from shared.verdict.result import AddressResult, ProbeResult
    from shared.verdict.status import Status

    diag = diagnose(Code.PROBER_OVERLOADED, "lag may have cost an attempt 480 ms of its 500 ms timeout")
    r = ProbeResult(
        "qwen",
        "dashscope",
        f"http://{PL}/compatible-mode/v1/models",
        Status.UNKNOWN,
        addresses=[
            AddressResult("127.0.0.2", 80, True, status=Status.UP),
            AddressResult("127.0.0.3", 80, True, status=Status.UNKNOWN, diagnosis=diag),
        ],
        diagnosis=diag,
    )
    lines = render_table([r]).splitlines()
    assert lines[1].split()[:4] == ["qwen", "UNKNOWN", "-", "1/2"] and lines[1].endswith("prober_overloaded")
    text = "\n".join(lines)
    assert "480 ms of its 500 ms timeout" in text and "fix: " in text and "concurrency" in text


# ------------------------------------------------------------------ issue 11: bad input exits 2, no traceback

EAS_VPC = "1234567890.vpc.ap-southeast-1.pai-eas.aliyuncs.com"


def eas_config(tmp_path, **target) -> str:
    data = {"targets": [{"name": "e", "kind": "eas", "credential": "env:EAS_TOKEN", **target}]}
    path = tmp_path / "eas.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize("command", ["targets", "check"])
@pytest.mark.parametrize(
    "target,field",
    [
        ({"endpoint": f"http://{EAS_VPC}/api/predict/svc/v1/v1/chat/completions"}, "endpoint"),
        (
            {
                "endpoint": f"http://{EAS_VPC}/api/predict/svc",
                "api_path": "/v1/v1/chat/completions",
                "probe": {"mode": "chat", "model": "m"},
            },
            "api_path",
        ),
    ],
)
def test_a_doubled_v1_is_a_config_error_exit_2(command, target, field, tmp_path, capsys):
    assert main([command, "-c", eas_config(tmp_path, **target)]) == 2
    out, err = capsys.readouterr()
    assert out == ""  # nothing probed, no half result object
    assert err.startswith(f"config error:\n  {tmp_path}/eas.yaml: targets[e].{field}: ")
    assert "the path repeats '/v1/v1'" in err and "Traceback" not in err


def test_targets_warns_of_an_api_path_a_models_probe_does_not_use(tmp_path, capsys):
    config = eas_config(tmp_path, endpoint=f"http://{EAS_VPC}/api/predict/svc/v1/chat/completions")
    assert main(["targets", "-c", config]) == 0
    out = capsys.readouterr().out
    assert f"GET http://{EAS_VPC}/api/predict/svc/v1/models" in out
    assert "  warning: the API path '/v1/chat/completions' (api_path, or the endpoint URL after the service)" in out


def test_check_with_a_non_utf8_config_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"targets:\n- name: caf\xe9\n")
    assert main(["check", "-c", str(bad)]) == 2
    assert capsys.readouterr().err == (
        f"config error:\n  {bad}: is not UTF-8 text: byte 0xe9 at offset 20 (line 2); save it as UTF-8\n"
    )


def test_serve_with_an_interval_too_long_for_a_datetime_exits_2(cfg, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["serve", "-c", cfg, "--schedule", "@every 99999999999999h", "--rounds", "1"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "schedule error: cron '@every 99999999999999h': the @every interval is longer than a year (8784h)\n")


@pytest.mark.parametrize("argv", [["serve", "--port", "70000"], ["serve", "--port", "-1"], ["serve", "--rounds", "0"]])
def test_out_of_range_numbers_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "invalid" in capsys.readouterr().err


def test_invoke_with_a_payload_nested_too_deep_exits_2(capsys):
    assert main(["invoke", "probe", "--payload", "[" * 100_000 + "]" * 100_000]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vpcprobe invoke: --payload is not valid JSON: maximum recursion depth exceeded")


def test_serve_with_a_non_utf8_syaml_exits_2(tmp_path, capsys):
    syaml = tmp_path / "s.yaml"
    syaml.write_bytes(b"resources: \xff\n")
    assert main(["serve", "--syaml", str(syaml), "--rounds", "1"]) == 2
    captured = capsys.readouterr()
    assert "is not UTF-8 text: byte 0xff at offset 11" in captured.err and captured.out == ""


def test_state_without_a_state_section_stays_in_the_tests_own_directory(cfg, tmp_path, monkeypatch, capsys):
    """tests/conftest.py: each test works in its tmp_path, so the store's defaults (./.vpcprobe/state, and in
    FC /tmp/vpcprobe) never reach the checkout or a /tmp path that other runs share."""
    from shared.state import settings

    data = yaml.safe_load(Path(cfg).read_text())
    data["alerts"] = {"channels": [{"name": "c", "type": "console"}]}
    Path(cfg).write_text(yaml.safe_dump(data))
    assert Path.cwd() == tmp_path != ROOT
    main(["check", "-c", cfg, "--alert"])
    assert "alerts: 0 new" in capsys.readouterr().err  # the first failure is below the threshold
    assert (tmp_path / ".vpcprobe" / "state" / "state.json").is_file()
    monkeypatch.setenv("FC_FUNCTION_NAME", "vpcprobe-probe")
    assert Path(settings.default_path()).is_relative_to(tmp_path)
