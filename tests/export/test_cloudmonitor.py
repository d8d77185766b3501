"""The CloudMonitor export on the fake control plane: PutCustomMetric signed and checked as the API documents it,
batches of at most 21 entries, throttling retried within the deadline, never failing the round."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml

from shared import logs
from shared.config.load import parse_config
from shared.config.reader import ConfigError
from shared.export.cloudmonitor import BATCH_SIZE, export, metric_entries
from shared.export.settings import CloudMonitorSettings
from tests.alert_fixtures import at, result
from tests.fakecloud import FakeCloud

REGION = "ap-southeast-1"
SETTINGS = CloudMonitorSettings(region=REGION)


class Clock:
    """A monotonic clock that moves only when the exporter sleeps (or a call takes `per_call_s`)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def cloud():
    with FakeCloud() as fake:
        yield fake


@pytest.fixture
def captured():
    stream = io.StringIO()
    logs.configure(stream=stream)
    yield stream
    logs._configured = False
    logs.configure()


def round_of(n: int, status: str = "up") -> list:
    return [result(f"target-{i:04d}", status, at(0)) for i in range(n)]


def test_fifty_targets_make_ten_calls_of_at_most_21_entries(cloud):
    summary = export(SETTINGS, round_of(50), environ=cloud.env())
    assert {k: summary[k] for k in ("entries", "sent", "calls", "retries")} == {
        "entries": 200, "sent": 200, "calls": 10, "retries": 0}
    assert "error" not in summary and 0 <= summary["ms"] < 60_000
    assert [len(b) for b in cloud.metric_batches] == [21] * 9 + [11]
    assert cloud.count("cms", 200) == 10 and cloud.count("cms") == 10  # every call signed and accepted
    entries = [e for batch in cloud.metric_batches for e in batch]
    first = [e for e in entries if e["dimensions"] == {"target": "target-0000", "kind": "dashscope"}]
    assert {e["metric"]: e["values"]["value"] for e in first} == {
        "vpcprobe_availability": 1, "vpcprobe_total_ms": 5.0, "vpcprobe_ttfb_ms": 3.0, "vpcprobe_zones_up": 2}
    assert {(e["type"], e["group_id"], e["time_ms"]) for e in entries} == {(0, 0, int(at(0).timestamp() * 1000))}


def test_the_host_is_cms_vpc_inside_fc_and_metrics_outside(cloud):
    inside = {**cloud.env(), "FC_FUNCTION_NAME": "vpcprobe-probe"}
    export(SETTINGS, round_of(1), environ=inside)
    export(SETTINGS, round_of(1), environ=cloud.env())
    assert [c.host for c in cloud.calls] == [f"cms-vpc.{REGION}.aliyuncs.com", f"metrics.{REGION}.aliyuncs.com"]
    assert SETTINGS.host({}) != "cms.aliyuncs.com"  # the SDK's own default, a public host


def test_a_down_target_reports_only_availability_and_an_unknown_one_nothing():
    rows = metric_entries([result("a", "down", at(0)), result("b", "degraded", at(0))], SETTINGS)
    by = {(json.loads(r["Dimensions"])["target"], r["MetricName"]): json.loads(r["Values"])["value"] for r in rows}
    assert by == {("a", "vpcprobe_availability"): 0, ("b", "vpcprobe_availability"): 1,
                  ("b", "vpcprobe_total_ms"): 5.0, ("b", "vpcprobe_ttfb_ms"): 3.0, ("b", "vpcprobe_zones_up"): 1}
    unknown = result("c", "up", at(0))
    unknown.status = "unknown"
    assert metric_entries([unknown], SETTINGS) == []


def test_throttling_is_retried_with_growing_backoff_within_the_deadline(cloud):
    clock = Clock()
    cloud.throttle(3, "cms")
    summary = export(SETTINGS, round_of(5), environ=cloud.env(), clock=clock, sleep=clock.sleep)
    assert (summary["sent"], summary["calls"], summary["retries"], "error" in summary) == (20, 4, 3, False)
    assert cloud.count("cms", 400) == 3 and len(cloud.metric_batches) == 1
    assert len(clock.slept) == 3 and 0.1 <= clock.slept[0] <= 0.2 and 0.4 <= clock.slept[2] <= 0.8


def test_endless_throttling_is_reported_once_the_deadline_would_pass(cloud, captured):
    clock = Clock()
    cloud.throttle(1000, "cms")
    settings = CloudMonitorSettings(region=REGION, deadline_s=5.0)
    summary = export(settings, round_of(30), environ=cloud.env(), clock=clock, sleep=clock.sleep)
    assert summary["sent"] == 0 and "throttled by the CloudMonitor API" in summary["error"]
    assert 3 <= summary["calls"] <= 8 and clock.now - 100.0 < 5.0  # gave up before the deadline, not after
    assert sum(clock.slept) < 5.0
    line = json.loads(captured.getvalue().splitlines()[-1])
    assert (line["event"], line["level"], line["sent"]) == ("cloudmonitor_export_failed", "error", 0)


def test_a_slow_cloudmonitor_stops_at_the_deadline_with_what_was_sent(cloud):
    clock = Clock()

    def slow(request):  # every call costs 4 s of the 10 s deadline
        clock.now += 4.0

    cloud.before_request = slow
    summary = export(SETTINGS, round_of(30), environ=cloud.env(), clock=clock, sleep=clock.sleep)
    assert summary["sent"] == 3 * BATCH_SIZE and summary["calls"] == 3
    assert "10s export deadline passed" in summary["error"]


def test_refusals_are_reported_not_raised_and_nothing_secret_is_logged(cloud, captured):
    denied = cloud.add_key(allow={"kms:GetSecretValue"})
    summary = export(SETTINGS, round_of(2), environ=cloud.env(denied))
    assert summary["sent"] == 0 and summary["calls"] == 1 and "cms:PutCustomMetric" in summary["error"]
    summary = export(SETTINGS, round_of(2), environ={})  # no credentials at all
    assert summary["calls"] == 0 and "ALIBABA_CLOUD_ACCESS_KEY_ID" in summary["error"]
    wrong = {**cloud.env(), "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "not-the-secret-5f1e"}
    summary = export(SETTINGS, round_of(2), environ=wrong)
    assert "SignatureDoesNotMatch" in summary["error"]
    text = captured.getvalue() + json.dumps(summary)
    for secret in (cloud.default_key.secret, cloud.default_key.token, denied.secret, denied.token,
                   "not-the-secret-5f1e"):
        assert secret not in text


# --- config and the probe function -----------------------------------------------------------------


def config(tmp_path: Path, metrics: dict | None, port: int = 9) -> Path:
    data = {
        "region": REGION,
        "targets": [{"name": "closed", "kind": "eas", "endpoint": f"http://127.0.0.1:{port}", "service": "svc",
                     "credential": "env:EAS_TOKEN", "probe": {"retries": 0, "timeout": "2s"}}],
    }
    if metrics is not None:
        data["metrics"] = metrics
    path = tmp_path / "vpcprobe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_probe_function_exports_after_the_round_only_when_enabled(cloud, tmp_path, monkeypatch):
    from shared.fc.probe_function import handle

    for name, value in {**cloud.env(), "EAS_TOKEN": "t", "FC_FUNCTION_NAME": "vpcprobe-probe"}.items():
        monkeypatch.setenv(name, value)
    for section in (None, {"cloudmonitor": {"enabled": False, "group_id": 7}}):
        summary = json.loads(handle(b"{}", config_path=str(config(tmp_path, section))))
        assert summary["down"] == 1 and "cloudmonitor" not in summary
    assert cloud.calls == []
    summary = json.loads(handle(b"{}", config_path=str(config(tmp_path, {"cloudmonitor": {"group_id": 7}}))))
    assert summary["down"] == 1 and summary["cloudmonitor"]["sent"] == 1
    (entry,) = cloud.metric_batches[0]
    assert (entry["metric"], entry["values"], entry["group_id"]) == ("vpcprobe_availability", {"value": 0.0}, 7)
    assert cloud.calls[0].host == f"cms-vpc.{REGION}.aliyuncs.com"


def test_an_unreachable_cloudmonitor_never_fails_the_round(tmp_path, monkeypatch):
    from shared.fc.probe_function import handle

    monkeypatch.setenv("EAS_TOKEN", "t")
    with FakeCloud() as cloud:
        for name, value in cloud.env().items():
            monkeypatch.setenv(name, value)
        metrics = {"cloudmonitor": {"endpoint": "http://127.0.0.1:9", "deadline": "2s", "timeout": "1s"}}
        summary = json.loads(handle(b"{}", config_path=str(config(tmp_path, metrics))))
    assert summary["targets"] == 1 and summary["cloudmonitor"]["sent"] == 0
    assert "metrics.cloudmonitor.endpoint" in summary["cloudmonitor"]["error"]


@pytest.mark.parametrize(
    "section,problem",
    [({"cloudmonitor": {"prefix": "9bad"}}, "metrics.cloudmonitor.prefix: must be 1-40 letters"),
     ({"cloudmonitor": {"deadline": "2m"}}, "metrics.cloudmonitor.deadline: must be at most 60s"),
     ({"cloudmonitor": {"group": 1}}, "metrics.cloudmonitor.group: unknown field; did you mean 'group_id'?"),
     ({"cloudmonitor": {"endpoint": "cms-vpc.{zone}.aliyuncs.com"}}, "metrics.cloudmonitor.endpoint: must be"),
     ({"prometheus": {}}, "metrics.prometheus: unknown field"),
     ({"cloudmonitor": {"group_id": -1}}, "metrics.cloudmonitor.group_id: must be a whole number >= 0")],
)
def test_config_errors_name_the_field(section, problem):
    data = {"targets": [{"name": "a", "kind": "eas", "endpoint": "http://127.0.0.1:9", "service": "s"}],
            "region": REGION, "metrics": section}
    with pytest.raises(ConfigError) as caught:
        parse_config(data, path="m.yaml")
    assert any(problem in p for p in caught.value.problems), caught.value.problems


def test_enabled_without_a_region_is_a_config_error(monkeypatch):
    monkeypatch.delenv("FC_REGION", raising=False)
    data = {"targets": [{"name": "a", "kind": "eas", "endpoint": "http://127.0.0.1:9", "service": "s"}],
            "metrics": {"cloudmonitor": {}}}
    with pytest.raises(ConfigError) as caught:
        parse_config(data, path="m.yaml")
    assert any("metrics.cloudmonitor: needs the region" in p for p in caught.value.problems)
    loaded = parse_config({**data, "region": REGION}, path="m.yaml")
    assert loaded.cloudmonitor == CloudMonitorSettings(region=REGION)


def test_the_examples_metrics_section_uncommented_is_a_valid_config(tmp_path):
    from shared.config.load import load_config

    example = (Path(__file__).resolve().parents[2] / "vpcprobe.example.yaml").read_text()
    block = example[example.index("# metrics:") : example.index("# The gateway")].splitlines()
    path = tmp_path / "vpcprobe.yaml"
    path.write_text(example + "\n" + "\n".join(line[2:] for line in block if line.startswith("# ")) + "\n")
    assert load_config(str(path)).cloudmonitor == CloudMonitorSettings(region=REGION)
