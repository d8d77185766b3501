"""KMS and EAS calls against the fake cloud: errors that name the fix, bounded retries, VPC or public endpoints."""

from __future__ import annotations

import asyncio

import pytest

from shared.credentials.control_plane import ControlPlane
from shared.credentials.errors import CredentialError
from shared.credentials.provider import TokenProvider
from shared.credentials.refs import parse_ref
from shared.credentials.settings import CloudSettings
from tests.credentials.rounds import DS_KEY, REGION, no_sleep, provider


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


# --- throttling and reachability ------------------------------------------------------------------


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


def test_unreachable_control_plane_endpoint(cloud):
    settings = CloudSettings(region=REGION, retries=0, kms_endpoint="kms.nowhere.example")
    plane = ControlPlane(settings, cloud.env(), sleep=no_sleep)
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
