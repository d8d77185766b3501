"""kms: and eas: credentials against the fake cloud (control plane) and the simulator (data plane).

The real SDK clients talk to tests/fakecloud.py through `responses`; probes talk to the simulator
on 127.0.0.2 over real sockets (httpx, which `responses` does not touch).
"""

from __future__ import annotations

import asyncio
import io
import json
import time
import types

import pytest

from shared import logs
from shared.config.load import parse_config
from shared.credentials.cloud import CloudError, CloudSettings, ControlPlane, resolve_access_key
from shared.credentials.tokens import CredentialError, TokenProvider, parse_ref
from shared.local.simulator import Simulator
from shared.probe.engine import Prober
from tests.fakecloud import FakeCloud

REGION = "ap-southeast-1"
PL = "ep-tok01.dashscope.ap-southeast-1.privatelink.aliyuncs.com"
DS_KEY = "sk-canary-kms-7f3a9b2c"
EAS_TOKEN = "canary-eas-token-51d0e8"


@pytest.fixture(scope="module")
def sim():
    s = Simulator(hosts=("127.0.0.2",), api_keys={DS_KEY: REGION}, eas_services={"llm": EAS_TOKEN}).start()
    yield s
    s.stop()


_since = {"t": 0.0}


@pytest.fixture
def log_stream():
    """The JSON log lines of this test (structlog may still be bound to another test's stream)."""
    stream = io.StringIO()
    logs.configure(stream=stream)
    yield stream
    logs._configured = False
    logs.configure()  # back to whatever sys.stdout is at each call


@pytest.fixture
def cloud(sim):
    sim.clear()
    _since["t"] = time.time()
    sim.api_keys.clear()
    sim.api_keys[DS_KEY] = REGION
    sim.set_eas_service("llm", token=EAS_TOKEN, state="running")
    with FakeCloud() as fake:
        fake.add_kms_secret("dashscope-key", DS_KEY)
        fake.add_eas_service("llm", token=EAS_TOKEN)
        yield fake


class Clock:
    """A monotonic clock the test moves; each reading also ticks 1 ms, as time does."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


def eas_host(fake: FakeCloud) -> str:
    return f"{fake.account_id}.vpc.{REGION}.pai-eas.aliyuncs.com"


def make_config(sim, fake, *targets, **cloud):
    return parse_config(
        {
            "region": REGION,
            "defaults": {"timeout": "2s", "retries": 0},
            "resolve": {PL: f"127.0.0.2:{sim.port}", eas_host(fake): f"127.0.0.2:{sim.port}"},
            "cloud": {"retries": 2, **cloud},
            "targets": list(targets),
        }
    )


def kms_target(name="qwen", ref="kms:dashscope-key"):
    return {"name": name, "kind": "dashscope", "endpoint": f"http://{PL}", "credential": ref}


def eas_target(name="llm", fake=None, **fields):
    target = {"name": name, "kind": "eas", "credential": f"eas:{REGION}/llm"}
    if fake is not None:  # an explicit endpoint; without it the endpoint comes from DescribeService
        target["endpoint"] = f"http://{eas_host(fake)}/api/predict/llm"
    return {**target, **fields}


def provider(fake, config=None, *, env=None, clock=None, sleeps=None):
    settings = config.cloud if config is not None else CloudSettings(region=REGION, retries=2)
    env = fake.env() if env is None else env
    plane = ControlPlane(settings, env, sleep=(sleeps.append if sleeps is not None else _no_sleep))
    return TokenProvider(env, settings, plane=plane, clock=clock or Clock())


def _no_sleep(_seconds: float) -> None:
    raise AssertionError("unexpected retry sleep")


def run(config, tokens, names=None):
    return asyncio.run(Prober(config, tokens).run_round(names))


def sim_requests(sim, path_part=""):
    """This test's requests to the simulator (it is shared by the module)."""
    return [r for r in sim.requests if path_part in r["path"] and r["time"] >= _since["t"]]


# --- end to end ------------------------------------------------------------------------------------


def test_round_with_kms_and_eas_credentials_end_to_end(sim, cloud):
    config = make_config(sim, cloud, kms_target(), eas_target("llm-describe"), eas_target("llm-url", cloud))
    tokens = provider(cloud, config)
    results = {r.target: r for r in run(config, tokens)}
    assert {n: r.status for n, r in results.items()} == {"qwen": "up", "llm-describe": "up", "llm-url": "up"}
    # The endpoint came from DescribeService's IntranetEndpoint, under the usual URL rules.
    assert results["llm-describe"].url == f"http://{eas_host(cloud)}/api/predict/llm/v1/models"
    assert results["llm-describe"].form == "eas-shared-vpc"
    assert results["llm-describe"].to_dict()["eas_service"] == {"status": "Running", "running": 1, "total": 1}
    assert results["qwen"].to_dict()["eas_service"] is None
    # The tokens reached the data plane in each API's header style.
    auth = {r["path"]: r["headers"].get("Authorization") for r in sim_requests(sim)}
    assert auth["/compatible-mode/v1/models"] == f"Bearer {DS_KEY}"
    assert auth["/api/predict/llm/v1/models"] == EAS_TOKEN
    # One GetSecretValue, and one DescribeService shared by both targets of the same reference.
    assert (cloud.count("kms"), cloud.count("eas")) == (1, 1)
    assert all(c.access_key_id == cloud.default_key.access_key_id for c in cloud.calls)


def test_cached_values_until_the_ttl(sim, cloud):
    clock = Clock()
    config = make_config(sim, cloud, kms_target(), eas_target(), cache_ttl="5m")
    tokens = provider(cloud, config, clock=clock)
    run(config, tokens)
    clock.now += 299
    assert all(r.status == "up" for r in run(config, tokens))
    assert (cloud.count("kms"), cloud.count("eas")) == (1, 1)
    clock.now += 2
    run(config, tokens)
    assert (cloud.count("kms"), cloud.count("eas")) == (2, 2)


def test_concurrent_probes_of_a_round_share_one_fetch(sim, cloud):
    config = make_config(sim, cloud, *(kms_target(f"t{i}") for i in range(8)))
    tokens = provider(cloud, config)
    assert [r.status for r in run(config, tokens)] == ["up"] * 8
    assert cloud.count("kms") == 1 and tokens.fetches == 1

    async def many():
        tokens.invalidate(parse_ref("kms:dashscope-key"))
        return await asyncio.gather(*(tokens.get(parse_ref("kms:dashscope-key")) for _ in range(20)))

    assert asyncio.run(many()) == [DS_KEY] * 20
    assert cloud.count("kms") == 2


def test_kms_version_stage_and_binary_secrets(cloud):
    cloud.rotate_kms_secret("dashscope-key", "sk-rotated-value-1")
    cloud.add_kms_secret("bin", "sk-binary-value-2", binary=True)
    tokens = provider(cloud)

    async def get(text):
        return await tokens.get(parse_ref(text))

    assert asyncio.run(get("kms:dashscope-key")) == "sk-rotated-value-1"
    assert asyncio.run(get("kms:dashscope-key@ACSPrevious")) == DS_KEY
    assert asyncio.run(get("kms:bin")) == "sk-binary-value-2"


# --- EAS service state ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, running, total",
    [("Stopped", 0, 0), ("Running", 0, 2), ("Failed", 0, 1), ("Waiting", 1, 1)],
)
def test_eas_service_not_running_is_diagnosed_before_any_http(sim, cloud, status, running, total):
    cloud.set_eas_service("llm", status=status, running=running, total=total, reason="instances not ready")
    config = make_config(sim, cloud, eas_target(), eas_target("llm-url", cloud))
    for result in run(config, provider(cloud, config)):
        assert result.status == "down"
        assert result.diagnosis.code == "eas_service_not_running"
        assert f"status {status}, {running} of {total} instances running" in result.diagnosis.message
        assert result.to_dict()["eas_service"] == {"status": status, "running": running, "total": total}
        assert result.addresses == []
        assert result.url == f"http://{eas_host(cloud)}/api/predict/llm"  # the discovered endpoint
    assert sim_requests(sim, "/api/predict/") == []


def test_a_scaling_service_with_running_instances_is_probed(sim, cloud):
    cloud.set_eas_service("llm", status="Scaling", running=1, total=3)
    config = make_config(sim, cloud, eas_target())
    (result,) = run(config, provider(cloud, config))
    assert result.status == "up" and result.eas_service == {"status": "Scaling", "running": 1, "total": 3}


def test_a_service_that_stopped_since_it_was_cached_is_seen_at_once(sim, cloud):
    config = make_config(sim, cloud, eas_target())
    tokens = provider(cloud, config)
    assert run(config, tokens)[0].status == "up"
    sim.set_eas_service("llm", state="unready")  # the gateway now answers 503
    cloud.set_eas_service("llm", status="Stopped", running=0)
    (result,) = run(config, tokens)
    assert result.diagnosis.code == "eas_service_not_running"
    assert cloud.count("eas") == 2  # the cached Running was refreshed because the probe failed


def test_describe_service_without_intranet_endpoint(sim, cloud):
    cloud.set_eas_service("llm", intranet_endpoint="")
    config = make_config(sim, cloud, eas_target())
    (result,) = run(config, provider(cloud, config))
    assert result.diagnosis.code == "eas_service_not_found"
    assert "no IntranetEndpoint" in result.diagnosis.message


def test_targets_output_for_a_describe_service_endpoint(sim, cloud, tmp_path, capsys):
    from shared.local.cli import main

    path = tmp_path / "c.yaml"
    path.write_text(json.dumps({"region": REGION, "targets": [eas_target(), kms_target()]}))
    assert main(["targets", "-c", str(path), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["url"] == f"<IntranetEndpoint from DescribeService eas:{REGION}/llm>/v1/models"
    assert rows[1]["auth"] == "bearer (kms:dashscope-key)"
    assert cloud.calls == []  # `targets` sends nothing, not even to the control plane


# --- rotation: a 401 invalidates the cached value ---------------------------------------------------


def test_rotated_eas_token_recovers_after_a_401(sim, cloud):
    config = make_config(sim, cloud, eas_target())
    tokens = provider(cloud, config)
    assert run(config, tokens)[0].status == "up"
    sim.set_eas_service("llm", token="canary-eas-token-rotated")
    cloud.set_eas_service("llm", token="canary-eas-token-rotated")
    (result,) = run(config, tokens)
    assert result.status == "up" and result.credential_refreshed
    statuses = [r["status"] for r in sim_requests(sim, "/api/predict/llm")]
    assert statuses == [200, 401, 200]
    assert cloud.count("eas") == 2


def test_rotated_kms_secret_recovers_after_a_401(sim, cloud):
    config = make_config(sim, cloud, kms_target("a"), kms_target("b"))
    tokens = provider(cloud, config)
    run(config, tokens)
    sim.api_keys.clear()
    sim.api_keys["sk-canary-kms-rotated"] = REGION
    cloud.rotate_kms_secret("dashscope-key", "sk-canary-kms-rotated")
    results = run(config, tokens)
    assert [(r.status, r.credential_refreshed) for r in results] == [("up", True), ("up", True)]
    assert cloud.count("kms") == 2  # both targets saw the 401; one refetch served both


def test_a_401_with_an_unchanged_token_is_not_retried(sim, cloud):
    sim.api_keys.clear()
    sim.api_keys["sk-some-other-key"] = REGION
    config = make_config(sim, cloud, kms_target())
    tokens = provider(cloud, config)
    run(config, tokens)  # fresh fetch, 401: no refresh (nothing cached was stale)
    (result,) = run(config, tokens)  # cached value, 401: one refetch, same value -> no second request
    assert result.diagnosis.code == "unauthorized" and not result.credential_refreshed
    assert len(sim_requests(sim, "/compatible-mode/")) == 2
    assert cloud.count("kms") == 2


# --- credentials of the function itself --------------------------------------------------------------


def test_missing_credentials_in_fc_names_the_role_setting(tmp_path):
    with pytest.raises(CloudError) as err:
        resolve_access_key({"FC_FUNCTION_NAME": "vpcprobe-probe", "HOME": str(tmp_path)})
    text = str(err.value)
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in text and "role:" in text and "s.yaml" in text


@pytest.mark.parametrize(
    "env, missing",
    [
        ({"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAIabc"}, "ALIBABA_CLOUD_ACCESS_KEY_SECRET is not set"),
        ({"ALIBABA_CLOUD_ACCESS_KEY_SECRET": "s3cr3t-value"}, "ALIBABA_CLOUD_ACCESS_KEY_ID is not set"),
        (
            {"ALIBABA_CLOUD_ACCESS_KEY_ID": "STS.abc", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "s3cr3t-value"},
            "ALIBABA_CLOUD_SECURITY_TOKEN is not set",
        ),
    ],
)
def test_partial_credentials_name_the_missing_variable(env, missing):
    with pytest.raises(CloudError, match=missing):
        resolve_access_key(env)


def test_laptop_without_any_credentials_says_what_was_tried(tmp_path):
    with pytest.raises(CloudError) as err:
        resolve_access_key({"HOME": str(tmp_path)})
    text = str(err.value)
    assert ".aliyun/config.json" in text and "aliyun configure" in text and "ALIBABA_CLOUD_ACCESS_KEY_ID" in text


def test_laptop_aliyun_cli_profile_is_used(cloud, tmp_path):
    key = cloud.add_key(sts=False)
    (tmp_path / ".aliyun").mkdir()
    profile = {"mode": "AK", "name": "default", "access_key_id": key.access_key_id,
               "access_key_secret": key.secret, "region_id": REGION}
    (tmp_path / ".aliyun" / "config.json").write_text(json.dumps({"current": "default", "profiles": [profile]}))
    tokens = provider(cloud, env={"HOME": str(tmp_path)})
    assert asyncio.run(tokens.get(parse_ref("kms:dashscope-key"))) == DS_KEY
    assert cloud.calls[-1].access_key_id == key.access_key_id


def test_fc_context_credentials_win_over_the_environment(cloud):
    key = cloud.add_key()
    context = types.SimpleNamespace(
        credentials=types.SimpleNamespace(
            access_key_id=key.access_key_id, access_key_secret=key.secret, security_token=key.token
        )
    )
    stale = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "STS.stale", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "x-stale",
             "ALIBABA_CLOUD_SECURITY_TOKEN": "stale-token", "FC_FUNCTION_NAME": "vpcprobe-probe"}
    tokens = provider(cloud, env=stale)
    tokens.set_context(context)
    assert asyncio.run(tokens.get(parse_ref("kms:dashscope-key"))) == DS_KEY
    assert cloud.calls[-1].access_key_id == key.access_key_id


def test_missing_credentials_make_the_target_credential_unavailable(sim, cloud, tmp_path):
    config = make_config(sim, cloud, kms_target())
    tokens = provider(cloud, config, env={"FC_FUNCTION_NAME": "vpcprobe-probe", "HOME": str(tmp_path)})
    (result,) = run(config, tokens)
    assert result.diagnosis.code == "credential_unavailable"
    assert result.diagnosis.message.count("kms:dashscope-key") == 1 and "s.yaml" in result.diagnosis.message
    assert cloud.calls == [] and sim_requests(sim) == []


@pytest.mark.parametrize(
    "case, code, words",
    [
        ("no-permission", "Forbidden.RAM", ["kms:GetSecretValue", "HTTP 403"]),
        ("unknown-key", "InvalidAccessKeyId.NotFound", ["were rejected", "from environment"]),
        ("wrong-secret", "SignatureDoesNotMatch", ["were rejected"]),
        ("wrong-token", "InvalidSecurityToken.MismatchWithAccessKey", ["were rejected"]),
        ("expired-token", "InvalidSecurityToken.Expired", ["were rejected"]),
        ("no-secret", "Forbidden.ResourceNotFound", ["not found", "HTTP 404"]),
    ],
)
def test_insufficient_credentials_give_clear_errors(cloud, case, code, words):
    key = cloud.default_key
    env = cloud.env()
    ref = "kms:dashscope-key"
    if case == "no-permission":
        env = cloud.env(cloud.add_key(allow={"eas:DescribeService"}))
    elif case == "unknown-key":
        env["ALIBABA_CLOUD_ACCESS_KEY_ID"] = "STS.unknown0000"
    elif case == "wrong-secret":
        env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] = "not-the-secret"
    elif case == "wrong-token":
        env["ALIBABA_CLOUD_SECURITY_TOKEN"] = "CAISnot-the-token"
    elif case == "expired-token":
        key.expired = True
    else:
        ref = "kms:no-such-secret"
    tokens = provider(cloud, env=env)
    with pytest.raises(CredentialError) as err:
        asyncio.run(tokens.get(parse_ref(ref)))
    text = str(err.value)
    assert text.startswith(f"{ref}: KMS GetSecretValue") and code in text
    for word in words:
        assert word in text
    assert cloud.count("kms") == 1  # not retried


def test_eas_errors_name_the_permission_and_the_service(cloud):
    tokens = provider(cloud, env=cloud.env(cloud.add_key(allow={"kms:GetSecretValue"})))
    with pytest.raises(CredentialError, match="eas:DescribeService"):
        asyncio.run(tokens.get(parse_ref(f"eas:{REGION}/llm")))
    tokens = provider(cloud)
    with pytest.raises(CredentialError, match=r"DescribeService\(ap-southeast-1/nope\): not found"):
        asyncio.run(tokens.get(parse_ref(f"eas:{REGION}/nope")))


def test_fake_checks_the_sts_token_and_rpc_signatures(cloud):
    """The fake itself: a missing token is refused; the older RPC signature (SecurityToken) works."""
    from alibabacloud_kms20160120 import models
    from alibabacloud_kms20160120.client import Client
    from alibabacloud_tea_openapi.models import Config

    key = cloud.default_key
    base = {"access_key_id": key.access_key_id, "access_key_secret": key.secret}
    base["endpoint"] = f"kms.{REGION}.aliyuncs.com"
    request = models.GetSecretValueRequest(secret_name="dashscope-key")
    with pytest.raises(Exception, match="MissingSecurityToken"):
        Client(Config(**base)).get_secret_value(request)
    rpc = Client(Config(**base, security_token=key.token, signature_algorithm="v2"))
    assert rpc.get_secret_value(request).body.secret_data == DS_KEY
    with pytest.raises(Exception, match="InvalidSecurityToken"):
        Client(Config(**base, security_token="CAISwrong", signature_algorithm="v2")).get_secret_value(request)


# --- throttling -----------------------------------------------------------------------------------


def test_throttled_control_plane_is_retried_a_bounded_number_of_times(cloud):
    sleeps: list[float] = []
    tokens = provider(cloud, sleeps=sleeps)
    cloud.throttle(2, "kms")
    assert asyncio.run(tokens.get(parse_ref("kms:dashscope-key"))) == DS_KEY
    assert cloud.count("kms", 400) == 2 and cloud.count("kms", 200) == 1
    assert len(sleeps) == 2 and 0 < sleeps[0] < sleeps[1]  # backing off

    cloud.throttle(10, "eas")
    with pytest.raises(CredentialError) as err:
        asyncio.run(tokens.get(parse_ref(f"eas:{REGION}/llm")))
    assert cloud.count("eas") == 3  # retries: 2 -> three attempts, then a clear error
    text = str(err.value)
    assert "throttled by the PAI-EAS API (Throttling.User, HTTP 400" in text and "3 attempts" in text
    assert "cache_ttl" in text


def test_throttled_round_reports_credential_unavailable(sim, cloud):
    cloud.throttle(100)
    config = make_config(sim, cloud, kms_target(), retries=1, retry_delay="10ms")
    tokens = provider(cloud, config, sleeps=[])
    (result,) = run(config, tokens)
    assert result.diagnosis.code == "credential_unavailable" and "throttled" in result.diagnosis.message
    assert cloud.count("kms") == 2 and sim_requests(sim) == []


def test_unreachable_control_plane_endpoint(cloud):
    settings = CloudSettings(region=REGION, retries=0, kms_endpoint="kms.nowhere.example")
    plane = ControlPlane(settings, cloud.env(), sleep=_no_sleep)
    tokens = TokenProvider(cloud.env(), settings, plane=plane)
    with pytest.raises(CredentialError, match="cannot reach the KMS API at kms.nowhere.example"):
        asyncio.run(tokens.get(parse_ref("kms:dashscope-key")))


def test_vpc_endpoints_inside_fc_public_elsewhere(cloud):
    in_fc = {**cloud.env(), "FC_FUNCTION_NAME": "vpcprobe-probe"}
    asyncio.run(provider(cloud, env=in_fc).get(parse_ref("kms:dashscope-key")))
    asyncio.run(provider(cloud, env=in_fc).get(parse_ref(f"eas:{REGION}/llm")))
    asyncio.run(provider(cloud).get(parse_ref("kms:dashscope-key")))
    hosts = [c.host for c in cloud.calls]
    assert hosts == [f"kms-vpc.{REGION}.aliyuncs.com", f"pai-eas-manage-vpc.{REGION}.aliyuncs.com",
                     f"kms.{REGION}.aliyuncs.com"]


# --- no secret anywhere -------------------------------------------------------------------------------


def test_no_secret_in_logs_results_errors_or_targets_output(
    sim, cloud, tmp_path, monkeypatch, capsys, caplog, log_stream
):
    """Canary: every secret value involved must never appear in any output."""
    from shared.credentials import tokens
    from shared.fc import probe_function
    from shared.local.cli import main

    key = cloud.default_key
    canaries = [DS_KEY, EAS_TOKEN, key.secret, key.token, "sk-canary-kms-rotated"]
    config_data = {
        "region": REGION,
        "defaults": {"timeout": "2s", "retries": 0},
        "resolve": {PL: f"127.0.0.2:{sim.port}", eas_host(cloud): f"127.0.0.2:{sim.port}"},
        "cloud": {"retries": 0},
        "targets": [kms_target(), eas_target(), kms_target("missing", "kms:missing-secret")],
    }
    path = tmp_path / "vpcprobe.yaml"
    path.write_text(json.dumps(config_data))
    for k, v in cloud.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(tokens, "_shared", None)
    monkeypatch.setattr(probe_function, "_cache", {})
    stream_out = []

    summary, results = probe_function.run_probe_event(b"", None, config_path=str(path))
    stream_out += [json.dumps(summary)] + [json.dumps(r.to_dict()) for r in results]
    # A rotated key upstream (401 with the old one) and a failed refresh path.
    sim.api_keys.clear()
    sim.api_keys["sk-canary-kms-rotated"] = REGION
    cloud.rotate_kms_secret("dashscope-key", "sk-canary-kms-rotated")
    summary, results = probe_function.run_probe_event(b"", None, config_path=str(path))
    stream_out += [json.dumps(summary)] + [json.dumps(r.to_dict()) for r in results]
    assert {r.target: r.status for r in results} == {"qwen": "up", "llm": "up", "missing": "down"}
    assert main(["targets", "-c", str(path)]) == 0
    assert main(["check", "-c", str(path), "--json"]) == 1
    captured = capsys.readouterr()
    everything = "\n".join(stream_out + [captured.out, captured.err, caplog.text, log_stream.getvalue()])
    assert '"event": "probe"' in log_stream.getvalue() and '"event": "round"' in log_stream.getvalue()
    assert "credential_unavailable" in everything and "Forbidden.ResourceNotFound" in everything
    for canary in canaries:
        assert canary not in everything, canary
        assert logs.redact_text(f"x {canary} y") == "x *** y"  # registered: masked wherever it turns up
    assert logs.redact_text(f"token={key.token}") == "token=***"


def test_probe_function_uses_fc_context_credentials_and_a_warm_cache(sim, cloud, tmp_path, monkeypatch, log_stream):
    """The FC python3.10 path: no ALIBABA_CLOUD_* variables, credentials in context.credentials."""
    from shared.credentials import tokens
    from shared.fc import probe_function

    path = tmp_path / "vpcprobe.yaml"
    path.write_text(json.dumps({
        "region": REGION,
        "defaults": {"timeout": "2s", "retries": 0},
        "resolve": {PL: f"127.0.0.2:{sim.port}", eas_host(cloud): f"127.0.0.2:{sim.port}"},
        "targets": [kms_target(), eas_target()],
    }))
    for name in ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FC_FUNCTION_NAME", "vpcprobe-probe")
    monkeypatch.setattr(tokens, "_shared", None)
    monkeypatch.setattr(probe_function, "_cache", {})
    key = cloud.default_key
    creds = types.SimpleNamespace(access_key_id=key.access_key_id, access_key_secret=key.secret,
                                  security_token=key.token)
    context = types.SimpleNamespace(request_id="req-1", credentials=creds)
    for _ in range(2):
        summary, _results = probe_function.run_probe_event(b"", context, config_path=str(path))
        assert (summary["ok"], summary["up"]) == (True, 2)
    assert (cloud.count("kms"), cloud.count("eas")) == (1, 1)  # the second invocation used the warm cache
    vpc_hosts = {f"kms-vpc.{REGION}.aliyuncs.com", f"pai-eas-manage-vpc.{REGION}.aliyuncs.com"}
    assert {c.host for c in cloud.calls} == vpc_hosts
    lines = [json.loads(x) for x in log_stream.getvalue().splitlines()]
    eas_line = next(x for x in lines if x.get("event") == "probe" and x["target"] == "llm")
    assert eas_line["eas_service"] == {"status": "Running", "running": 1, "total": 1}
