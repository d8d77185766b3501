"""The function's own access key: FC's context, the environment, the laptop's CLI profile, and clear errors."""

from __future__ import annotations

import asyncio
import json
import types

import pytest

from shared.credentials.access_key import resolve_access_key
from shared.credentials.errors import CloudError
from shared.credentials.refs import parse_ref
from tests.credentials.rounds import DS_KEY, REGION, provider


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
