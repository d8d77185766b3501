"""The gateway's request log (issue 8): one JSON line per request with the key's name, route, targets and
addresses tried, failovers, status, timings, bytes and the upstream's token usage — never the key, the
prompt or the completion.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.local.simulator import REPLY_TEXT, Fault
from tests.gateway.harness import ZONE_A, ZONE_B

PROMPT = "okapi canary prompt words"
ASK = [{"role": "user", "content": PROMPT}]


def request_lines(stream: Any) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    return [line for line in lines if line.get("event") == "gateway_request"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_one_line_per_request_with_usage(gw, gw_logs, stream):
    client = gw.openai("v1")
    if stream:
        chunks = list(client.chat.completions.create(model="deepseek", messages=ASK, stream=True,
                                                     stream_options={"include_usage": True}))
        usage = chunks[-1].usage
    else:
        usage = client.chat.completions.create(model="deepseek", messages=ASK).usage
    [line] = request_lines(gw_logs)
    assert line["key_name"] == "all-access"
    assert line["status"] == 200
    assert line["targets"] == ["llm-eas"]
    assert line["failovers"] == 0
    assert line["usage"]["total_tokens"] == usage.total_tokens
    assert line["usage"]["completion_tokens"] == len(REPLY_TEXT.split())
    assert 0 <= line["ttfb_ms"] <= line["total_ms"]
    assert line["bytes_in"] > 0 and line["bytes_out"] > 0
    text = gw_logs.getvalue()
    assert PROMPT not in text and REPLY_TEXT not in text
    assert "Hello" not in text  # not even one streamed token


def test_a_zone_failover_is_logged(gw, gw_logs):
    """Addresses are tried in order (zone A first): A's 503 makes B answer, and the line says so."""
    gw.sim.inject(Fault(route="/compatible-mode/*", host=ZONE_A, status=503))
    reply = gw.openai("qwen-pl/compatible-mode/v1").chat.completions.create(model="qwen-plus", messages=ASK)
    assert reply.choices[0].message.content == REPLY_TEXT
    assert [(r["listen"], r["status"]) for r in gw.arrived()] == [(ZONE_A, 503), (ZONE_B, 200)]
    [line] = request_lines(gw_logs)
    assert line["status"] == 200 and line["failovers"] == 1
    assert [ZONE_A in a for a in line["addresses"]] == [True, False]
    assert ZONE_B in line["addresses"][1]


def test_a_route_failover_is_logged(gw, gw_logs):
    reply = gw.openai("v1").chat.completions.create(model="qwen-ha", messages=ASK)
    assert reply.model == "qwen-max"
    [line] = request_lines(gw_logs)
    assert line["targets"] == ["qwen-dead", "qwen-pl"]
    assert line["failovers"] >= 1


def test_refusals_are_logged_without_a_key_name(gw, gw_logs):
    import httpx

    with httpx.Client(timeout=10) as client:
        r = client.get(f"{gw.url}/qwen-pl/compatible-mode/v1/models", headers={"Authorization": "Bearer nope-x"})
    assert r.status_code == 401
    [line] = request_lines(gw_logs)
    assert line["status"] == 401 and line["key_name"] is None
    assert line["code"] == "invalid_api_key"
