"""The provider: kms: and eas: values fetched once, cached for the TTL, shared by a round, refreshed after a 401,
and never printed anywhere."""

from __future__ import annotations

import asyncio
import json

import pytest

from shared import logs
from shared.credentials.errors import CredentialError
from shared.credentials.provider import TokenProvider
from shared.credentials.refs import parse_ref
from tests.credentials.rounds import (
    DS_KEY,
    EAS_TOKEN,
    PL,
    REGION,
    Clock,
    eas_host,
    eas_target,
    kms_target,
    make_config,
    provider,
    run,
    sim_requests,
)


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
    assert cloud.count("kms") == 1

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


# --- rotation: a 401 invalidates the cached value -------------------------------------------------


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


# --- no value, no request -------------------------------------------------------------------------


def test_missing_credentials_make_the_target_credential_unavailable(sim, cloud, tmp_path):
    config = make_config(sim, cloud, kms_target())
    tokens = provider(cloud, config, env={"FC_FUNCTION_NAME": "vpcprobe-probe", "HOME": str(tmp_path)})
    (result,) = run(config, tokens)
    assert result.diagnosis.code == "credential_unavailable"
    assert result.diagnosis.message.count("kms:dashscope-key") == 1 and "s.yaml" in result.diagnosis.message
    assert cloud.calls == [] and sim_requests(sim) == []


def test_throttled_round_reports_credential_unavailable(sim, cloud):
    cloud.throttle(100)
    config = make_config(sim, cloud, kms_target(), retries=1, retry_delay="10ms")
    tokens = provider(cloud, config, sleeps=[])
    (result,) = run(config, tokens)
    assert result.diagnosis.code == "credential_unavailable" and "throttled" in result.diagnosis.message
    assert cloud.count("kms") == 2 and sim_requests(sim) == []


# --- no secret anywhere ---------------------------------------------------------------------------


def test_no_secret_in_logs_results_errors_or_targets_output(
    sim, cloud, tmp_path, monkeypatch, capsys, caplog, log_stream
):
    """Canary: every secret value involved must never appear in any output."""
    from shared.credentials import provider as provider_module
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
    monkeypatch.setattr(provider_module, "_shared", None)
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


# --- values as secret stores hand them out (issue 11) --------------------------------------------------


def _resolve(tokens, text):
    async def get():
        return await tokens.get(parse_ref(text))

    return asyncio.run(get())


@pytest.mark.parametrize("raw", ["sk-trailing-newline-1\n", "  sk-trailing-newline-1\r\n", "\tsk-trailing-newline-1 "])
def test_surrounding_whitespace_is_stripped_from_env_values(raw):
    tokens = TokenProvider(environ={"DS_KEY": raw})
    assert _resolve(tokens, "env:DS_KEY") == "sk-trailing-newline-1"


@pytest.mark.parametrize("raw, words", [(" \n", "only whitespace"), ("sk-two\nlines-key", "line break")])
def test_a_value_that_cannot_be_sent_is_refused_naming_the_reference_not_the_value(raw, words):
    with pytest.raises(CredentialError) as info:
        _resolve(TokenProvider(environ={"DS_KEY": raw}), "env:DS_KEY")
    message = str(info.value)
    assert message.startswith("env:DS_KEY: ") and words in message
    assert "sk-two" not in message and "lines-key" not in message


def test_kms_and_eas_values_are_stripped_too(sim, cloud):
    cloud.add_kms_secret("with-newline", "sk-kms-newline-value-3\n")
    cloud.set_eas_service("llm", token="eas-newline-token-4\n")
    tokens = provider(cloud)
    assert _resolve(tokens, "kms:with-newline") == "sk-kms-newline-value-3"
    assert _resolve(tokens, f"eas:{REGION}/llm") == "eas-newline-token-4"


def test_an_empty_kms_secret_is_credential_unavailable(sim, cloud):
    cloud.add_kms_secret("blank", "   ")
    with pytest.raises(CredentialError) as info:
        _resolve(provider(cloud), "kms:blank")
    assert str(info.value) == "kms:blank: the value is only whitespace; set the secret itself"


def test_a_key_with_a_trailing_newline_probes_up_and_never_reaches_output(sim, cloud, log_stream, monkeypatch):
    """Was: the key went out as `Bearer sk-…\\n`, the client refused it quoting the header, key and all."""
    config = make_config(sim, cloud, {"name": "ds", "kind": "dashscope", "endpoint": f"http://{PL}",
                                      "credential": "env:DS_NEWLINE"})
    tokens = TokenProvider({"DS_NEWLINE": DS_KEY + "\n"}, config.cloud)
    [result] = run(config, tokens)
    assert result.status == "up", result.to_dict()
    assert sim_requests(sim)[-1]["headers"]["Authorization"] == f"Bearer {DS_KEY}"


def test_at_hand_gives_a_checked_env_value_until_the_variable_changes():
    environ = {"DS_KEY": " sk-at-hand-value-1 "}
    tokens = TokenProvider(environ=environ)
    ref = parse_ref("env:DS_KEY")
    assert tokens.at_hand(ref) is None  # never checked yet: resolve() checks it
    first = asyncio.run(tokens.resolve(ref))
    assert first.value == "sk-at-hand-value-1"
    assert tokens.at_hand(ref) is first and asyncio.run(tokens.resolve(ref)) is first
    environ["DS_KEY"] = "sk-at-hand-value-2"
    assert tokens.at_hand(ref) is None  # read at every use: the change counts at once
    assert asyncio.run(tokens.resolve(ref)).value == "sk-at-hand-value-2"
    assert tokens.at_hand(ref).value == "sk-at-hand-value-2"
    del environ["DS_KEY"]
    assert tokens.at_hand(ref) is None
    with pytest.raises(CredentialError):
        asyncio.run(tokens.resolve(ref))
    assert tokens.at_hand(parse_ref("env:OTHER_KEY")) is None


def test_at_hand_gives_a_cached_kms_value_while_it_is_fresh(sim, cloud):
    clock = Clock()
    config = make_config(sim, cloud, kms_target(), cache_ttl="5m")
    tokens = provider(cloud, config, clock=clock)
    ref = config.targets[0].credential
    assert tokens.at_hand(ref) is None
    fetched = asyncio.run(tokens.resolve(ref))
    assert tokens.at_hand(ref) is fetched and cloud.count("kms") == 1
    clock.now += 299
    assert tokens.at_hand(ref) is fetched
    clock.now += 2
    assert tokens.at_hand(ref) is None and cloud.count("kms") == 1  # stale: resolve() fetches, at_hand never does
