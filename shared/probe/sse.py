"""Reading a server-sent-events stream: a 200 stream can still fail, in an error frame."""

from __future__ import annotations

import json

import httpx


async def read_stream(response: httpx.Response) -> str | None:
    """Read SSE frames to the end; an error frame inside a 200 stream is returned as text."""
    from httpx_sse import EventSource

    async for event in EventSource(response).aiter_sse():
        if event.data == "[DONE]":
            break
        try:
            data = json.loads(event.data) if event.data else {}
        except ValueError:
            continue
        if not isinstance(data, dict):
            continue
        if isinstance(data.get("error"), dict):
            err = data["error"]
            return f"{err.get('code') or err.get('type')}: {err.get('message', '')}"[:300]
        if event.event == "error" or (data.get("code") and "output" not in data):
            return f"{data.get('code')}: {data.get('message', '')}"[:300]
    return None
