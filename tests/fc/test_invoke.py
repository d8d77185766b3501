"""Remote invocation: NAME through FC 3.0, SERVICE/NAME through FC 2.0, sync and async, against the fake cloud."""

from __future__ import annotations

import json
import logging
import socket

import pytest

from shared.credentials.control_plane import ControlPlane
from shared.credentials.errors import CloudError
from shared.credentials.settings import CloudSettings
from shared.fc.invoke import InvokeUsageError, invoke, parse_function
from shared.local.cli import main
from tests.fakecloud import FakeCloud

REGION = "ap-southeast-1"


@pytest.fixture
def cloud(monkeypatch, tmp_path):
    with FakeCloud() as fake:
        fake.add_fc_function("vpcprobe-probe", result=lambda body: json.dumps({"ok": 1, "got": body.decode()}).encode())
        fake.add_fc_function(
            "legacy-probe", service="vpcprobe", result=b'{"ok": true, "fc": 2}', qualifiers=("LATEST", "prod")
        )
        fake.add_fc_function("broken", error="division by zero")
        fake.add_fc_function("broken", service="vpcprobe", error="division by zero")
        for name in ("FC_FUNCTION_NAME", "FC_INSTANCE_ID", "FC_REGION", "FC_ACCOUNT_ID", "VPCPROBE_REGION"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HOME", str(tmp_path))
        for k, v in fake.env().items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("ALIBABA_CLOUD_ACCOUNT_ID", fake.account_id)
        yield fake


def settings(**changes):
    return CloudSettings(region=REGION, **changes)


def test_function_names():
    assert parse_function("vpcprobe-probe") == (None, "vpcprobe-probe")
    assert parse_function("svc/fn") == ("svc", "fn")
    assert parse_function("svc$fn") == (None, "svc$fn")  # an FC 2.0 function as FC 3.0 names it
    for bad in ("", "a/b/c", "9fn", "svc/", "fn name"):
        with pytest.raises(InvokeUsageError):
            parse_function(bad)


@pytest.mark.parametrize("function, api", [("vpcprobe-probe", "fc3"), ("vpcprobe/legacy-probe", "fc2")])
def test_sync_invocation_returns_the_functions_response(cloud, function, api):
    result = invoke(function, b'{"targets": ["a"]}', settings=settings())
    assert (result.api, result.status, result.error_type) == (api, 200, None)
    assert json.loads(result.body)["ok"]
    assert result.request_id == cloud.invocations[-1]["request_id"]
    call = cloud.invocations[-1]
    assert (call["api"], call["type"], call["qualifier"]) == (api, "Sync", "LATEST")
    assert call["payload"] == b'{"targets": ["a"]}'


@pytest.mark.parametrize("function, api", [("vpcprobe-probe", "fc3"), ("vpcprobe/legacy-probe", "fc2")])
def test_async_invocation_returns_the_request_id(cloud, function, api):
    result = invoke(function, b'{"source": "cli"}', is_async=True, settings=settings())
    assert (result.api, result.status, result.body) == (api, 202, b"")
    assert result.request_id and result.request_id == cloud.invocations[-1]["request_id"]
    assert cloud.invocations[-1]["type"] == "Async" and cloud.invocations[-1]["payload"] == b'{"source": "cli"}'


def test_qualifier_reaches_both_apis(cloud):
    invoke("vpcprobe/legacy-probe", b"", qualifier="prod", settings=settings())
    assert cloud.invocations[-1]["qualifier"] == "prod"
    with pytest.raises(CloudError, match="AliasNotFound"):
        invoke("vpcprobe-probe", b"", qualifier="prod", settings=settings())


@pytest.mark.parametrize("function", ["broken", "vpcprobe/broken"])
def test_a_failing_function_is_a_result_with_its_error(cloud, function):
    result = invoke(function, b"{}", settings=settings())
    assert result.error_type
    assert json.loads(result.body)["errorMessage"] == "division by zero"


@pytest.mark.parametrize(
    "function, code",
    [("nope", "FunctionNotFound"), ("vpcprobe/nope", "FunctionNotFound"), ("other/x", "ServiceNotFound")],
)
def test_unknown_function_or_service(cloud, function, code):
    with pytest.raises(CloudError) as err:
        invoke(function, b"", settings=settings())
    assert err.value.kind == "not_found" and code in str(err.value) and "HTTP 404" in str(err.value)


@pytest.mark.parametrize("function", ["vpcprobe-probe", "vpcprobe/legacy-probe"])
def test_a_role_without_invoke_permission(cloud, function, monkeypatch):
    for k, v in cloud.env(cloud.add_key(allow={"kms:GetSecretValue"})).items():
        monkeypatch.setenv(k, v)
    with pytest.raises(CloudError) as err:
        invoke(function, b"", settings=settings())
    assert err.value.kind == "forbidden" and "fc:InvokeFunction" in str(err.value)


@pytest.mark.parametrize("function, api", [("vpcprobe-probe", "fc3"), ("vpcprobe/legacy-probe", "fc2")])
def test_throttled_invocations_are_retried_then_fail_clearly(cloud, function, api):
    sleeps: list[float] = []
    plane = ControlPlane(settings(retries=2), sleep=sleeps.append)
    cloud.throttle(2, api)
    assert invoke(function, b"", plane=plane).error_type is None
    assert cloud.count(api, 429) == 2 and len(sleeps) == 2
    cloud.throttle(5, api)
    with pytest.raises(CloudError) as err:
        invoke(function, b"", plane=plane)
    assert err.value.kind == "throttled" and "ResourceThrottled" in str(err.value) and "3 attempts" in str(err.value)
    assert cloud.count(api, 429) == 5


def test_fc2_error_logs_do_not_leak_the_sts_token(cloud, caplog):
    caplog.set_level(logging.ERROR)
    with pytest.raises(CloudError):
        invoke("vpcprobe/nope", b"", settings=settings())
    assert "x-fc-security-token" in caplog.text  # fc2 logs its request headers on errors ...
    assert cloud.default_key.token not in caplog.text  # ... but the token is masked


# --- the command ------------------------------------------------------------------------------------


def test_cli_sync_prints_the_response(cloud, capsys):
    assert main(["invoke", "vpcprobe-probe", "--payload", '{"targets": ["x"]}', "--region", REGION]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"ok": 1, "got": '{"targets": ["x"]}'}


def test_cli_async_prints_the_request_id(cloud, capsys):
    assert main(["invoke", "vpcprobe/legacy-probe", "--async", "--region", REGION]) == 0
    assert capsys.readouterr().out.strip() == cloud.invocations[-1]["request_id"]


def test_cli_config_gives_region_and_endpoint(cloud, capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("ALIBABA_CLOUD_ACCOUNT_ID")
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps({
        "region": REGION,
        "cloud": {"fc_endpoint": f"https://{cloud.account_id}.{{region}}.fc.aliyuncs.com"},
        "targets": [{"name": "a", "kind": "dashscope", "endpoint": "http://h.example.com", "credential": "env:K"}],
    }))
    assert main(["invoke", "vpcprobe-probe", "-c", str(path)]) == 0


@pytest.mark.parametrize(
    "argv, code, message",
    [
        (["invoke", "vpcprobe-probe", "--payload", "{not json", "--region", REGION], 2, "not valid JSON"),
        (["invoke", "a/b/c", "--region", REGION], 2, "not a function name"),
        (["invoke", "vpcprobe-probe"], 2, "no region"),
        (["invoke", "broken", "--region", REGION], 1, "the function failed (UnhandledInvocationError)"),
        (["invoke", "nope", "--region", REGION], 1, "FunctionNotFound"),
    ],
)
def test_cli_exit_codes(cloud, capsys, argv, code, message):
    assert main(argv) == code
    assert message in capsys.readouterr().err


def test_cli_without_account_id_or_credentials(cloud, capsys, monkeypatch):
    monkeypatch.delenv("ALIBABA_CLOUD_ACCOUNT_ID")
    assert main(["invoke", "vpcprobe-probe", "--region", REGION]) == 2
    assert "--account-id" in capsys.readouterr().err
    monkeypatch.delenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
    assert main(["invoke", "vpcprobe-probe", "--region", REGION, "--account-id", cloud.account_id]) == 1
    err = capsys.readouterr().err
    assert "ALIBABA_CLOUD_ACCESS_KEY_SECRET is not set" in err and cloud.default_key.secret not in err
    assert cloud.invocations == []


@pytest.mark.parametrize("function", ["vpcprobe-probe", "vpcprobe/legacy-probe"])
def test_an_unresolvable_api_host_fails_within_our_own_retries(monkeypatch, function):
    """Was: FC 2.0 took 92 s (fc2 retried each connection failure 5 times with 1+2+4+8+16 s of backoff,
    inside each of our 3 attempts: 18 lookups). A resolver stub answers for `.invalid`; no real DNS."""
    real = socket.getaddrinfo
    lookups: list[str] = []

    def resolver(host, *args, **kwargs):
        if str(host).endswith(".invalid"):
            lookups.append(host)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    environ = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAIinvoke", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "invoke-secret-1"}
    sleeps: list[float] = []
    plane = ControlPlane(settings(fc_endpoint="http://fc-api.invalid", account_id="1", retries=2), environ,
                         sleep=sleeps.append)
    with pytest.raises(CloudError) as info:
        invoke(function, b"{}", plane=plane)
    assert info.value.kind == "network" and "fc-api.invalid (3 attempts)" in str(info.value)
    assert lookups == ["fc-api.invalid"] * 3  # one per attempt of ours, none of the SDK's own
    assert len(sleeps) == 2 and 0 < sum(sleeps) <= 1.5
