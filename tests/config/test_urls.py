"""The seed documents' URL rules, table-driven: every endpoint form, every refusal."""

import pytest

from shared.config import urls
from shared.config.urls import UrlError, dashscope_endpoint, eas_endpoint, join_url

DASHSCOPE_OK = [
    # (kwargs, form, base_url, region, implied api mode)
    (
        {"url": "http://ep-abc123.dashscope.ap-southeast-1.privatelink.aliyuncs.com"},
        "privatelink-default",
        "http://ep-abc123.dashscope.ap-southeast-1.privatelink.aliyuncs.com",
        "ap-southeast-1",
        None,
    ),
    (
        {"url": "http://ep-abc123.dashscope.cn-beijing.privatelink.aliyuncs.com/compatible-mode/v1"},
        "privatelink-default",
        "http://ep-abc123.dashscope.cn-beijing.privatelink.aliyuncs.com",
        "cn-beijing",
        "compatible",
    ),
    (
        {"url": "http://ep-abc123.dashscope.ap-southeast-1.privatelink.aliyuncs.com/api/v1/"},
        "privatelink-default",
        "http://ep-abc123.dashscope.ap-southeast-1.privatelink.aliyuncs.com",
        "ap-southeast-1",
        "native",
    ),
    (
        {"url": "https://vpc-ap-southeast-1.dashscope.aliyuncs.com"},
        "privatelink-custom",
        "https://vpc-ap-southeast-1.dashscope.aliyuncs.com",
        "ap-southeast-1",
        None,
    ),
    (
        {"region": "ap-southeast-1", "endpoint_id": "ep-xyz"},
        "privatelink-default",
        "http://ep-xyz.dashscope.ap-southeast-1.privatelink.aliyuncs.com",
        "ap-southeast-1",
        None,
    ),
    (
        {"region": "cn-beijing", "domain": "custom"},
        "privatelink-custom",
        "https://vpc-cn-beijing.dashscope.aliyuncs.com",
        "cn-beijing",
        None,
    ),
    (
        {"region": "ap-southeast-1", "domain": "public"},
        "dashscope-public",
        "https://dashscope-intl.aliyuncs.com",
        "ap-southeast-1",
        None,
    ),
    (
        {"url": "https://dashscope.aliyuncs.com/compatible-mode/v1"},
        "dashscope-public",
        "https://dashscope.aliyuncs.com",
        "cn-beijing",
        "compatible",
    ),
    (
        {"url": "https://dashscope-us.aliyuncs.com"},
        "dashscope-public",
        "https://dashscope-us.aliyuncs.com",
        "us-east-1",
        None,
    ),
    (
        {"url": "https://cn-hongkong.dashscope.aliyuncs.com"},
        "dashscope-public",
        "https://cn-hongkong.dashscope.aliyuncs.com",
        "cn-hongkong",
        None,
    ),
    (
        {"url": "https://llm-ws1.ap-southeast-1.maas.aliyuncs.com"},
        "dashscope-public",
        "https://llm-ws1.ap-southeast-1.maas.aliyuncs.com",
        "ap-southeast-1",
        None,
    ),
    (
        {"url": "https://test-for-dns-right.dashscope.aliyuncs.com"},
        "custom",
        "https://test-for-dns-right.dashscope.aliyuncs.com",
        None,
        None,
    ),
    (
        {"url": "http://ep-abc.dashscope.ap-southeast-1.privatelink.aliyuncs.com:8080"},
        "privatelink-default",
        "http://ep-abc.dashscope.ap-southeast-1.privatelink.aliyuncs.com:8080",
        "ap-southeast-1",
        None,
    ),
]


@pytest.mark.parametrize("kwargs,form,base,region,mode", DASHSCOPE_OK)
def test_dashscope_forms(kwargs, form, base, region, mode):
    ep, implied = dashscope_endpoint(**kwargs)
    assert (ep.form, ep.base_url, ep.region, implied) == (form, base, region, mode)
    assert ep.kind == "dashscope"


DASHSCOPE_BAD = [
    ({"url": "https://ep-abc.dashscope.ap-southeast-1.privatelink.aliyuncs.com"}, "supports only HTTP"),
    ({"url": "https://ep-abc.dashscope.ap-southeast-1.privatelink.aliyuncs.com"}, "https://vpc-ap-southeast-1"),
    ({"url": "https://test_for_dns_wrong.dashscope.aliyuncs.com/api/v1"}, "underscore"),
    ({"url": "http://ep-abc.dashscope.us-east-1.privatelink.aliyuncs.com"}, "not supported in US (Virginia)"),
    ({"url": "https://vpc-us-east-1.dashscope.aliyuncs.com"}, "not supported"),
    ({"url": "ep-abc.dashscope.ap-southeast-1.privatelink.aliyuncs.com"}, "not a URL"),
    ({"url": "ftp://dashscope.aliyuncs.com"}, "scheme must be http or https"),
    ({"url": "http://[::1"}, "is not a valid URL"),
    ({"url": "https://dashscope.aliyuncs.com/compatible-mode/v1/chat/completions"}, "belongs in the probe path"),
    ({"url": "https://dashscope.aliyuncs.com?x=1"}, "no query string"),
    ({"region": "ap-southeast-1"}, "domain must be one of"),
    ({"region": "ap-southeast-1", "domain": "default"}, "needs 'endpoint_id'"),
    ({"region": "eu-central-1", "domain": "public"}, "no public Model Studio endpoint"),
    ({}, "give either 'endpoint'"),
    ({"url": "http://ep-abc.dashscope.cn-beijing.privatelink.aliyuncs.com", "region": "ap-southeast-1"}, "region"),
]


@pytest.mark.parametrize("kwargs,message", DASHSCOPE_BAD)
def test_dashscope_refusals(kwargs, message):
    with pytest.raises(UrlError, match=message.replace("(", r"\(").replace(")", r"\)")):
        dashscope_endpoint(**kwargs)


def test_unknown_privatelink_region_warns():
    ep, _ = dashscope_endpoint("http://ep-abc.dashscope.eu-central-1.privatelink.aliyuncs.com")
    assert any("not in the documented PrivateLink regions" in w for w in ep.warnings)
    ep, _ = dashscope_endpoint("http://ep-abc.dashscope.ap-southeast-1.privatelink.aliyuncs.com")
    assert ep.warnings == ()


EAS_OK = [
    # (args, kwargs, form, base_url, service, api_path)
    (
        ("http://1234567.vpc.cn-hangzhou.pai-eas.aliyuncs.com/api/predict/test",),
        {},
        "eas-shared-vpc",
        "http://1234567.vpc.cn-hangzhou.pai-eas.aliyuncs.com/api/predict/test",
        "test",
        None,
    ),
    (
        ("http://1234567.cn-hangzhou.pai-eas.aliyuncs.com/api/predict/test/v1/chat/completions",),
        {},
        "eas-shared-public",
        "http://1234567.cn-hangzhou.pai-eas.aliyuncs.com/api/predict/test",
        "test",
        "/v1/chat/completions",
    ),
    (
        ("http://1234567.vpc.cn-hangzhou.pai-eas.aliyuncs.com",),
        {"service": "grp.llm"},
        "eas-shared-vpc",
        "http://1234567.vpc.cn-hangzhou.pai-eas.aliyuncs.com/api/predict/grp.llm",
        "grp.llm",
        None,
    ),
    (
        (None,),
        {"region": "cn-shanghai", "uid": "1234567", "service": "llm"},
        "eas-shared-vpc",
        "http://1234567.vpc.cn-shanghai.pai-eas.aliyuncs.com/api/predict/llm",
        "llm",
        None,
    ),
    (
        (None,),
        {"region": "cn-shanghai", "uid": "1234567", "service": "llm", "network": "public"},
        "eas-shared-public",
        "http://1234567.cn-shanghai.pai-eas.aliyuncs.com/api/predict/llm",
        "llm",
        None,
    ),
    (
        (None,),
        {"region": "cn-shanghai", "uid": "1234567", "gateway": "gw-abc1", "service": "llm"},
        "eas-dedicated-vpc",
        "http://gw-abc1-1234567-vpc.cn-shanghai.pai-eas.aliyuncs.com/api/predict/llm",
        "llm",
        None,
    ),
    (
        ("http://gw-abc1-1234567.cn-shanghai.pai-eas.aliyuncs.com/api/predict/llm",),
        {},
        "eas-dedicated",
        "http://gw-abc1-1234567.cn-shanghai.pai-eas.aliyuncs.com/api/predict/llm",
        "llm",
        None,
    ),
    ((None,), {"instance": "10.0.3.7:8000"}, "eas-instance", "http://10.0.3.7:8000", None, None),
    (
        ("http://10.0.3.7:8000/v1/chat/completions",),
        {},
        "eas-instance",
        "http://10.0.3.7:8000",
        None,
        "/v1/chat/completions",
    ),
]


@pytest.mark.parametrize("args,kwargs,form,base,service,api_path", EAS_OK)
def test_eas_forms(args, kwargs, form, base, service, api_path):
    ep, found = eas_endpoint(*args, **kwargs)
    assert (ep.form, ep.base_url, ep.service, found) == (form, base, service, api_path)


EAS_BAD = [
    (("http://1234567.vpc.cn-hangzhou.pai-eas.aliyuncs.com/v1/chat/completions",), {}, "lacks /api/predict/<service>"),
    (("http://1234567.vpc.cn-hangzhou.pai-eas.aliyuncs.com",), {}, "say which service"),
    (("http://1234567.vpc.cn-hangzhou.pai-eas.aliyuncs.com/api/predict/",), {}, "followed by the service name"),
    (("http://1234567.vpc.cn-hangzhou.pai-eas.aliyuncs.com/api/predict/a",), {"service": "b"}, "names service 'a'"),
    (("http://my_gw.example.com/api/predict/a",), {}, "underscore"),
    ((None,), {"instance": "host:80"}, "must be ip:port"),
    ((None,), {"region": "cn-hangzhou"}, "give either 'endpoint'"),
    ((None,), {"region": "cn-hangzhou", "uid": "1", "network": "internet"}, "network must be"),
    ((None,), {"service": "a/b", "region": "cn-hangzhou", "uid": "1"}, "not an EAS service name"),
]


@pytest.mark.parametrize("args,kwargs,message", EAS_BAD)
def test_eas_refusals(args, kwargs, message):
    with pytest.raises(UrlError, match=message.replace("(", r"\(").replace(")", r"\)")):
        eas_endpoint(*args, **kwargs)


def test_eas_vpc_address_in_other_region_warns():
    url = "http://1234567.vpc.cn-hangzhou.pai-eas.aliyuncs.com/api/predict/test"
    ep, _ = eas_endpoint(url, function_region="cn-shanghai")
    assert any("same region (cn-hangzhou)" in w and "cn-shanghai" in w for w in ep.warnings)
    ep, _ = eas_endpoint(url, function_region="cn-hangzhou")
    assert ep.warnings == ()


@pytest.mark.parametrize(
    "base,path,expected",
    [
        ("http://h/api/predict/test", "/v1/chat/completions", "http://h/api/predict/test/v1/chat/completions"),
        ("http://h/api/predict/test/", "v1/models", "http://h/api/predict/test/v1/models"),
        ("http://h", "", "http://h"),
    ],
)
def test_join_url(base, path, expected):
    assert join_url(base, path) == expected


@pytest.mark.parametrize(
    "base,path",
    [
        ("http://h/api/predict/test/v1", "/v1/chat/completions"),
        ("http://h/compatible-mode/v1", "/v1/models"),
        ("http://h/api", "/api/predict/x"),
    ],
)
def test_join_url_catches_doubled_segments(base, path):
    with pytest.raises(UrlError, match="repeats"):
        join_url(base, path)


def test_private_forms():
    assert dashscope_endpoint("http://ep-a.dashscope.cn-beijing.privatelink.aliyuncs.com")[0].expect_private
    assert not dashscope_endpoint("https://dashscope.aliyuncs.com")[0].expect_private
    assert urls.eas_endpoint("http://1.vpc.cn-hangzhou.pai-eas.aliyuncs.com/api/predict/s")[0].expect_private
    assert not urls.eas_endpoint("http://1.cn-hangzhou.pai-eas.aliyuncs.com/api/predict/s")[0].expect_private
