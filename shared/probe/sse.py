"""Reading a server-sent-events stream: a 200 stream can still fail, in an error frame.

The frames are parsed from the raw body as it arrives (the WHATWG event-stream rules that matter
here: lines end in CRLF, LF or CR; `event:` and `data:` fields; a blank line ends a frame).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import AsyncIterable, Iterator
from dataclasses import dataclass

_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass
class Frame:
    event: str
    data: str


class FrameParser:
    """Bytes in, complete frames out; a frame split across chunks waits for its end."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")  # a character may span chunks
        self._pending = ""
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> Iterator[Frame]:
        text = self._pending + self._decoder.decode(chunk)
        held = ""
        if text.endswith("\r"):  # maybe the first half of a CRLF: decide with the next chunk
            text, held = text[:-1], "\r"
        lines = _LINE_END.split(text)
        self._pending = lines.pop() + held  # the last line has no end yet
        for line in lines:
            if not line:
                if self._data or self._event:
                    yield Frame(self._event or "message", "\n".join(self._data))
                self._event, self._data = "", []
                continue
            if line.startswith(":"):
                continue  # a comment (keep-alive)
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                self._event = value
            elif name == "data":
                self._data.append(value)


async def read_stream(chunks: AsyncIterable[bytes]) -> str | None:
    """Read SSE frames to the end; an error frame inside a 200 stream is returned as text."""
    parser = FrameParser()
    async for chunk in chunks:
        for frame in parser.feed(chunk):
            error = _frame_error(frame)
            if error is not None:
                return error or None
    return None


def _frame_error(frame: Frame) -> str | None:
    """The error a frame carries; "" for [DONE] (the stream's clean end); None to keep reading."""
    if frame.data == "[DONE]":
        return ""
    try:
        data = json.loads(frame.data) if frame.data else {}
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("error"), dict):
        err = data["error"]
        return f"{err.get('code') or err.get('type')}: {err.get('message', '')}"[:300]
    if frame.event == "error" or (data.get("code") and "output" not in data):
        return f"{data.get('code')}: {data.get('message', '')}"[:300]
    return None
