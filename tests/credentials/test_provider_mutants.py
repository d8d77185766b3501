"""An empty environment variable is no credential: refused by name (never sent as `Bearer `), and a
probe of a target that uses it is diagnosed `credential_unavailable`."""

from __future__ import annotations

import asyncio
import socket

import pytest

from shared.config.load import parse_config
from shared.credentials.errors import CredentialError
from shared.credentials.provider import TokenProvider
from shared.credentials.refs import CredentialRef
from shared.probe.engine import Prober

HOST = "ep-empty01.dashscope.ap-southeast-1.privatelink.aliyuncs.com"


@pytest.mark.parametrize("environ", [{}, {"DS_KEY": ""}])
def test_unset_or_empty_variable_is_refused_by_name(environ):
    with pytest.raises(CredentialError) as info:
        asyncio.run(TokenProvider(environ=environ).get(CredentialRef("env", "DS_KEY")))
    assert str(info.value) == "env:DS_KEY: environment variable DS_KEY is not set"


def test_a_set_variable_is_returned_as_is():
    assert asyncio.run(TokenProvider(environ={"DS_KEY": "sk-1"}).get(CredentialRef("env", "DS_KEY"))) == "sk-1"


def test_env_values_have_no_fetch_budget_and_others_the_cloud_one():
    tokens = TokenProvider(environ={})
    assert tokens.fetch_budget_s(CredentialRef("env", "X")) == 0.0
    assert tokens.fetch_budget_s(CredentialRef("kms", "x")) > 0.0


def test_probe_with_an_empty_variable_is_credential_unavailable():
    with socket.socket() as listener:  # bound, never listening: nothing may be sent to it anyway
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        config = parse_config(
            {
                "defaults": {"timeout": "2s", "retries": 0},
                "resolve": {HOST: f"127.0.0.1:{port}"},
                "targets": [
                    {"name": "ds", "kind": "dashscope", "endpoint": f"http://{HOST}", "credential": "env:DS_KEY"}
                ],
            }
        )
        [result] = asyncio.run(Prober(config, TokenProvider(environ={"DS_KEY": ""})).run_round())
    assert (result.status, result.diagnosis.code) == ("down", "credential_unavailable"), result.to_dict()
    assert "DS_KEY" in result.diagnosis.message
