"""Server-sent events: a 200 stream that fails in an error frame is down, not up."""

from __future__ import annotations

import asyncio

import pytest

from shared.local.simulator import Fault
from shared.probe.sse import read_stream
from tests.probe.loopback import code_of, ds, make_config, probe_one


def frames(text: str, size: int | None = None) -> str | None:
    """The error read_stream finds in `text`, delivered in `size`-byte chunks (all at once by default)."""
    raw = text.encode()
    step = size or len(raw) or 1

    async def chunks():
        for i in range(0, len(raw), step):
            yield raw[i : i + step]

    return asyncio.run(read_stream(chunks()))


def test_a_clean_stream_has_no_error():
    assert frames('data: {"choices": []}\n\ndata: {"output": {"text": "p"}}\n\ndata: [DONE]\n\n') is None


def test_openai_style_error_object():
    text = 'data: {"choices": []}\n\ndata: {"error": {"code": "overloaded", "message": "try later"}}\n\n'
    assert frames(text) == "overloaded: try later"


def test_dashscope_style_error_frame():
    assert frames('event: error\ndata: {"code": "Throttling", "message": "slow down"}\n\n') == "Throttling: slow down"


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_frames_split_anywhere_across_chunks(size):
    """Chunk boundaries fall mid-line, mid-CRLF and mid-character: the frames come out the same."""
    text = 'data: {"choices": ["ü"]}\r\n\r\nevent: error\r\ndata: {"code": "Throttling", "message": "é"}\r\n\r\n'
    assert frames(text, size) == "Throttling: é"
    assert frames('data: {"output": {}}\r\rdata: [DONE]\r\r', size) is None


def test_frames_after_done_and_non_json_data_are_ignored():
    assert frames('data: not json\n\ndata: [DONE]\n\ndata: {"error": {"code": "late"}}\n\n') is None


@pytest.mark.parametrize("api", ["compatible", "native"])
def test_error_frame_inside_200_stream(sim, api):
    sim.inject(Fault(stream_error=True))
    r = probe_one(make_config(sim, ds(api=api, probe={"mode": "chat", "stream": True})))
    assert (r.status, r.http_status, code_of(r)) == ("down", 200, "stream_error_frame")
