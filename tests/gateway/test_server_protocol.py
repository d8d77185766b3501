"""The gateway's uvicorn protocol (shared/gateway/server.py): a head sent with HOLD_HEAD goes out in one write
with the first body bytes, a head without it at once; the disconnect hook calls back when the connection is lost.

Driven with uvicorn's own parser and request cycle on a transport that records writes and closes: how many
writes a response takes is the point, and a socket would not show it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.server import ServerState

from shared.gateway.app import DISCONNECT_HOOK, HOLD_HEAD
from shared.gateway.server import GatewayHttpProtocol, uvicorn_config

GET = b"GET /x HTTP/1.1\r\nHost: gw\r\n\r\n"
GET_CLOSE = b"GET /x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"
BODY = b'{"ok":true}'


class RecordingTransport:
    """What the protocol did to the connection, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, bytes]] = []
        self.closed = False

    @property
    def writes(self) -> list[bytes]:
        return [data for what, data in self.events if what == "write"]

    def write(self, data: bytes) -> None:
        assert not self.closed, "a write after close"
        self.events.append(("write", bytes(data)))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.events.append(("close", b""))

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def start(hold: bool, headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    message = {"type": "http.response.start", "status": 200,
               "headers": headers or [(b"content-length", str(len(BODY)).encode())]}
    if hold:
        message[HOLD_HEAD] = True
    return message


def serve(app: Any, request: bytes, until: Any = None) -> tuple[GatewayHttpProtocol, RecordingTransport]:
    """Feed one request to a fresh connection and run the loop until the app is done (or `until` says stop)."""

    async def main() -> tuple[GatewayHttpProtocol, RecordingTransport]:
        config = uvicorn_config(app, "127.0.0.1", 0, lifespan="off")
        protocol = GatewayHttpProtocol(config=config, server_state=ServerState(), app_state={})
        transport = RecordingTransport()
        protocol.connection_made(transport)  # type: ignore[arg-type]
        protocol.data_received(request)
        if until is not None:
            await until(protocol, transport)
        await asyncio.gather(*protocol.tasks, return_exceptions=True)
        return protocol, transport

    return asyncio.run(main())


def test_a_held_head_goes_out_with_the_body_in_one_write():
    async def app(scope, receive, send):
        await send(start(hold=True))
        await send({"type": "http.response.body", "body": BODY})

    _, transport = serve(app, GET)
    [data] = transport.writes
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"\r\n\r\n" + BODY)
    assert not transport.closed  # keep-alive


def test_a_held_streamed_head_goes_out_with_the_first_chunk_and_the_rest_as_sent():
    async def app(scope, receive, send):
        await send(start(hold=True, headers=[(b"content-type", b"text/event-stream")]))
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"data: 2\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    _, transport = serve(app, GET)
    first, second, last = transport.writes
    assert b"transfer-encoding: chunked\r\n" in first and first.endswith(b"\r\n\r\n9\r\ndata: 1\n\n\r\n")
    assert second == b"9\r\ndata: 2\n\n\r\n" and last == b"0\r\n\r\n"


def test_a_head_without_hold_is_written_at_once():
    """The upstream's headers are in but no body byte is: the client must see the headers now, not later."""
    async def app(scope, receive, send):
        scope["state"]["go"] = go = asyncio.Event()
        await send(start(hold=False))
        await go.wait()
        await send({"type": "http.response.body", "body": BODY})

    async def check_head_alone(protocol, transport):
        while "go" not in protocol.scope["state"]:
            await asyncio.sleep(0)
        await asyncio.sleep(0)
        [head] = transport.writes
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")
        protocol.scope["state"]["go"].set()

    _, transport = serve(app, GET, until=check_head_alone)
    assert transport.writes[1:] == [BODY]


def test_a_held_head_on_a_closing_connection_is_written_before_the_close():
    async def app(scope, receive, send):
        await send(start(hold=True))
        await send({"type": "http.response.body", "body": BODY})

    _, transport = serve(app, GET_CLOSE)
    assert [what for what, _ in transport.events] == ["write", "close"]
    assert b"connection: close\r\n" in transport.writes[0] and transport.writes[0].endswith(BODY)


def test_an_app_failing_after_a_held_head_closes_the_connection_without_writing():
    async def app(scope, receive, send):
        await send(start(hold=True))
        raise RuntimeError("failed before the body")

    _, transport = serve(app, GET)
    assert transport.events == [("close", b"")]


def test_the_disconnect_hook_calls_back_once_when_the_connection_is_lost_and_not_once_unhooked():
    calls: list[str] = []

    async def app(scope, receive, send):
        hook = scope["extensions"][DISCONNECT_HOOK]
        hook(lambda: calls.append("watched"))
        unhook = hook(lambda: calls.append("unhooked"))
        unhook()
        await asyncio.sleep(3600)  # an upstream that never answers: only the disconnect ends this

    async def lose_connection(protocol, transport):
        while not protocol._on_lost:
            await asyncio.sleep(0)
        protocol.connection_lost(None)
        for task in protocol.tasks:
            task.cancel()

    serve(app, GET, until=lose_connection)
    assert calls == ["watched"]
