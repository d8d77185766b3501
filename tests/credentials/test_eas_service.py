"""eas: references: what DescribeService says about the service is judged before any HTTP is sent."""

from __future__ import annotations

import json

import pytest

from tests.credentials.rounds import REGION, eas_host, eas_target, kms_target, make_config, provider, run, sim_requests


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
