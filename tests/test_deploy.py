"""s.yaml, the example config and the README agree on where alert state lives in FC."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _syaml() -> dict:
    return yaml.safe_load((ROOT / "s.yaml").read_text())


def test_probe_function_mounts_the_shared_explicit_nas_config() -> None:
    doc = _syaml()
    nas = doc["vars"]["nasConfig"]
    assert nas != "auto"  # fc3 mounts `auto` at /mnt/<functionName>: each function its own directory
    assert {"userId", "groupId", "mountPoints"} <= set(nas)
    (mount,) = nas["mountPoints"]
    assert mount["mountDir"].startswith("/mnt/") and ":/" in mount["serverAddr"]
    probe = doc["resources"]["vpcprobe-probe"]["props"]
    assert probe["nasConfig"] == "${vars.nasConfig}"


def test_example_config_and_readme_point_state_at_the_mount_dir() -> None:
    mount_dir = _syaml()["vars"]["nasConfig"]["mountPoints"][0]["mountDir"]
    example = (ROOT / "vpcprobe.example.yaml").read_text()
    readme = (ROOT / "README.md").read_text()
    assert f"path: {mount_dir}}}" in example
    assert f"path: {mount_dir} " in readme
    for text in (example, readme, (ROOT / "s.yaml").read_text()):
        assert "/mnt/auto" not in text and "/mnt/nas/" not in text


# --- the gateway web function ------------------------------------------------------------------

# The CPython each runtime runs (FC docs; custom.debian10's is at /var/fc/lang/python3.10).
RUNTIME_PYTHON = {"python3.10": "3.10", "custom.debian10": "3.10", "python3.12": "3.12", "custom.debian11": "3.12"}


def _function(name: str) -> dict:
    return _syaml()["resources"][name]["props"]


def test_gateway_is_a_web_function_on_the_probes_python() -> None:
    gateway, probe = _function("vpcprobe-gateway"), _function("vpcprobe-probe")
    assert gateway["runtime"] == "custom.debian10"
    # one set of cp310 wheels (scripts/package.py) serves both functions
    assert RUNTIME_PYTHON[gateway["runtime"]] == RUNTIME_PYTHON[probe["runtime"]]
    runtime = gateway["customRuntimeConfig"]
    python, script = runtime["command"]
    assert python == f"/var/fc/lang/python{RUNTIME_PYTHON[gateway['runtime']]}/bin/python3"
    assert script == "/code/index.py" and (ROOT / "functions" / "gateway" / "index.py").is_file()
    assert gateway["code"] == "./build/gateway" and probe["code"] == "./build/probe"
    assert type(runtime["port"]) is int and runtime["port"] == 9000  # a string fails fc3's schema
    assert runtime["healthCheckConfig"]["httpGetUrl"] == "/healthz"
    assert 1 <= runtime["healthCheckConfig"]["timeoutSeconds"] <= 3


def test_gateway_limits_fit_fc_and_long_streams() -> None:
    gateway = _function("vpcprobe-gateway")
    assert 2 <= gateway["instanceConcurrency"] <= 200  # fc3 allows 1-200; 1 would waste a web function
    assert 900 <= gateway["timeout"] <= 86400  # a stream must finish within it
    assert 512 <= gateway["memorySize"] <= 32768


def test_gateway_shares_the_probes_network_role_state_and_config() -> None:
    gateway, probe = _function("vpcprobe-gateway"), _function("vpcprobe-probe")
    for key in ("region", "vpcConfig", "role", "nasConfig"):
        assert gateway[key] == probe[key] == f"${{vars.{key}}}", key
    env = gateway["environmentVariables"]
    assert env["PYTHONPATH"] == probe["environmentVariables"]["PYTHONPATH"] == "/code/python"
    assert env["VPCPROBE_CONFIG"] == probe["environmentVariables"]["VPCPROBE_CONFIG"] == "/code/vpcprobe.yaml"
    assert not any(name.upper().startswith("FC_") for name in env)


def test_gateway_trigger_is_anonymous_http_without_a_public_url() -> None:
    (trigger,) = _function("vpcprobe-gateway")["triggers"]
    assert trigger["triggerType"] == "http"
    config = trigger["triggerConfig"]
    assert config["authType"] == "anonymous"  # the app checks gateway keys in Authorization
    assert config["disableURLInternet"] is True
    assert {"GET", "POST"} <= set(config["methods"])
    assert "vpcBinding" not in _function("vpcprobe-gateway")  # optional, commented out: README says when


def test_readme_tells_vpc_apps_how_to_call_the_gateway() -> None:
    readme = (ROOT / "README.md").read_text()
    deploy = readme[readme.index("## Deploy to Function Compute") :]
    for needed in ("urlIntranet", "-vpc.fcapp.run", "vpcBinding", "disableURLInternet", "custom domain", "anonymous"):
        assert needed in deploy, needed


def test_example_gateway_section_uncommented_is_a_valid_config(tmp_path: Path) -> None:
    from shared.config.load import load_config

    example = (ROOT / "vpcprobe.example.yaml").read_text()
    block = example[example.index("# gateway:") :].splitlines()
    section = "\n".join(line[2:] for line in block if line.startswith("# "))
    path = tmp_path / "vpcprobe.yaml"
    path.write_text(example + "\n" + section + "\n")
    gateway = load_config(str(path)).gateway
    assert gateway is not None
    assert [key.name for key in gateway.keys] == ["chat-app", "batch-jobs"]
    assert [route.target for route in gateway.models["qwen-plus"]] == ["qwen-privatelink", "qwen-custom-domain"]
    assert gateway.body_limit["eas"] == 1024 * 1024
