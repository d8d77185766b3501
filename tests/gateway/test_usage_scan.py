"""The token usage the request log reports, read from the end of an answer: JSON, or the SSE frames."""

from __future__ import annotations

import json

import pytest

from shared.gateway.app import _json_usage, _sse_usage


def _frame(obj: object, crlf: bool = False) -> bytes:
    end = b"\r\n\r\n" if crlf else b"\n\n"
    return b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + end


USAGE = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}


@pytest.mark.parametrize("crlf", [False, True])
def test_the_last_frame_with_a_usage_gives_it(crlf):
    tail = (_frame({"choices": [], "usage": {"total_tokens": 1}}, crlf) + _frame({"choices": [{"delta": {}}]}, crlf)
            + _frame({"choices": [], "usage": USAGE}, crlf) + _frame({"choices": []}, crlf) + _frame(b"[DONE]", crlf))
    assert _sse_usage(tail) == USAGE


def test_frames_without_a_usage_give_none_and_text_that_mentions_it_is_no_usage():
    quoted = {"choices": [{"delta": {"content": 'the "usage" word, and usage: 5'}}]}
    assert _sse_usage(_frame({"choices": []}) * 3 + _frame(b"[DONE]")) is None
    assert _sse_usage(_frame(quoted) + _frame(b"[DONE]")) is None
    assert _sse_usage(_frame({"choices": [], "usage": USAGE}) + _frame(quoted)) == USAGE


def test_a_null_or_broken_usage_frame_falls_back_to_an_earlier_one():
    tail = _frame({"usage": USAGE}) + _frame({"usage": None}) + _frame(b'{"usage": {"total_tokens": 3')
    assert _sse_usage(tail) == USAGE


def test_a_json_answer_gives_its_integer_counts_only():
    body = json.dumps({"choices": [], "usage": {**USAGE, "details": {"x": 1}, "flag": True, "text": "t"}}).encode()
    assert _json_usage(body) == USAGE
    assert _json_usage(b'{"object": "list", "data": []}') is None
    assert _json_usage(b'{"usage": ') is None
    assert _json_usage(json.dumps({"note": 'a "usage" in text'}).encode()) is None
