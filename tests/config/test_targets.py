"""Reading one target: each problem names the target's field path and the fix."""

import pytest

from shared.config.reader import Reader
from shared.config.targets import ProbeSettings, read_target

EAS_URL = "http://1.vpc.cn-hangzhou.pai-eas.aliyuncs.com/api/predict/s"


def _problems(item) -> list[str]:
    problems: list[str] = []
    read_target(Reader(item, "targets[0]", problems, "cfg.yaml"), ProbeSettings(), None)
    return problems


def _target(**fields):
    base = {"name": "t", "kind": "dashscope", "endpoint": "http://ep-a.dashscope.cn-beijing.privatelink.aliyuncs.com"}
    base.update(fields)
    return base


@pytest.mark.parametrize(
    "item,expected",
    [
        (
            _target(endpoint="https://ep-a.dashscope.cn-beijing.privatelink.aliyuncs.com"),
            "cfg.yaml: targets[t].endpoint: 'https://ep-a.dashscope.cn-beijing.privatelink.aliyuncs.com': "
            "the endpoint's default domain supports only HTTP",
        ),
        (_target(endpoint="https://my_llm.dashscope.aliyuncs.com"), "targets[t].endpoint: host 'my_llm"),
        (_target(credential="sk-1234567890"), "targets[t].credential: must be a reference"),
        (_target(credential="vault:x"), "unknown reference scheme 'vault:'"),
        (_target(credential="eas:nohyphen"), "malformed eas: reference"),
        (_target(endpont="x"), "targets[t].endpont: unknown field; did you mean 'endpoint'?"),
        (_target(kind="openai"), "targets[t].kind: must be one of dashscope, eas (got 'openai')"),
        (_target(probe={"timeout": "fast"}), "targets[t].probe.timeout: must be a positive duration"),
        (_target(probe={"retries": -1}), "targets[t].probe.retries: must be a whole number >= 0"),
        (_target(probe={"mode": "ping"}), "targets[t].probe.mode: must be one of models, chat, http"),
        (_target(probe={"mode": "http"}), "targets[t].probe.path: http probes need 'path'"),
        (_target(probe={"expect_status": [200, "ok"]}), "targets[t].probe.expect_status: must be an HTTP status"),
        (_target(probe={"expect_body": "(["}), "targets[t].probe.expect_body: is not a valid regular expression"),
        (_target(probe={"headers": {"Authorization": "Bearer x"}}), "must not set Authorization"),
        (_target(service="s"), "targets[t].service: belongs to eas targets"),
        (_target(ca_bundle="/nonexistent/ca.pem"), "targets[t].ca_bundle: file '/nonexistent/ca.pem' does not exist"),
        ({"kind": "eas"}, "targets[0].name: is required"),
        ({"name": "bad name!", "kind": "eas"}, "must be 1-63 letters"),
        (
            {"name": "e", "kind": "eas", "endpoint": EAS_URL, "probe": {"mode": "chat"}},
            "targets[e].probe.model: chat probes of an EAS service need 'model'",
        ),
        (
            {
                "name": "e",
                "kind": "eas",
                "endpoint": EAS_URL,
                "probe": {"mode": "http", "path": "/x", "method": "POST", "body": "x" * (1024 * 1024 + 1)},
            },
            "over 1 MB",
        ),
    ],
)
def test_target_errors_name_field_and_fix(item, expected):
    problems = _problems(item)
    assert any(expected in p for p in problems), problems


def test_all_problems_of_a_target_at_once():
    assert len(_problems(_target(endpont="x", probe={"timeout": "x", "retries": "y"}))) == 3


def test_probe_settings_inherit_the_defaults():
    base = ProbeSettings(timeout_s=0.5, headers={"X-A": "1"})
    target = read_target(
        Reader(_target(probe={"retry_delay": 0.1, "headers": {"X-B": "2"}}), "targets[0]", [], "cfg.yaml"), base, None
    )
    assert target is not None
    assert (target.probe.timeout_s, target.probe.retry_delay_s) == (0.5, 0.1)
    assert target.probe.headers == {"X-A": "1", "X-B": "2"}


def test_a_disabled_target_is_read_but_not_probed():
    problems: list[str] = []
    reader = Reader(_target(enabled=False), "targets[0]", problems, "cfg.yaml")
    assert read_target(reader, ProbeSettings(), None) is None
    assert problems == []




@pytest.mark.parametrize(
    ("url", "base_url"),
    [
        # DescribeService's IntranetEndpoint: the VPC gateway host, the service path added from the reference
        ("http://1234567890.vpc.cn-hangzhou.pai-eas.aliyuncs.com",
         "http://1234567890.vpc.cn-hangzhou.pai-eas.aliyuncs.com/api/predict/llm"),
        # ... or already with its /api/predict/<service> path: kept as given
        ("http://1234567890.vpc.cn-hangzhou.pai-eas.aliyuncs.com/api/predict/other",
         "http://1234567890.vpc.cn-hangzhou.pai-eas.aliyuncs.com/api/predict/other"),
    ],
)
def test_a_deferred_eas_target_takes_the_intranet_endpoint(url, base_url):
    from shared.config.load import parse_config

    config = parse_config({"targets": [{"name": "llm", "kind": "eas", "credential": "eas:cn-hangzhou/llm"}]})
    (deferred,) = config.targets
    assert deferred.endpoint_deferred
    found = deferred.with_intranet_endpoint(url, "cn-hangzhou")
    assert not found.endpoint_deferred and found.endpoint.base_url == base_url
    assert found.name == deferred.name and found.credential == deferred.credential
