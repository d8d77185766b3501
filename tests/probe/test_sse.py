"""Server-sent events: a 200 stream that fails in an error frame is down, not up."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from shared.local.simulator import Fault
from shared.probe.sse import read_stream
from tests.probe.loopback import code_of, ds, make_config, probe_one


def frames(text: str) -> str | None:
    response = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=text.encode())
    return asyncio.run(read_stream(response))


def test_a_clean_stream_has_no_error():
    assert frames('data: {"choices": []}\n\ndata: {"output": {"text": "p"}}\n\ndata: [DONE]\n\n') is None


def test_openai_style_error_object():
    text = 'data: {"choices": []}\n\ndata: {"error": {"code": "overloaded", "message": "try later"}}\n\n'
    assert frames(text) == "overloaded: try later"


def test_dashscope_style_error_frame():
    assert frames('event: error\ndata: {"code": "Throttling", "message": "slow down"}\n\n') == "Throttling: slow down"


def test_frames_after_done_and_non_json_data_are_ignored():
    assert frames('data: not json\n\ndata: [DONE]\n\ndata: {"error": {"code": "late"}}\n\n') is None


@pytest.mark.parametrize("api", ["compatible", "native"])
def test_error_frame_inside_200_stream(sim, api):
    sim.inject(Fault(stream_error=True))
    r = probe_one(make_config(sim, ds(api=api, probe={"mode": "chat", "stream": True})))
    assert (r.status, r.http_status, code_of(r)) == ("down", 200, "stream_error_frame")
