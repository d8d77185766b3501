"""The probe's HTTP/1.1 exchange against canned bytes from a loopback socket, on both event loops:
the response framings httptools leaves to us (HEAD, close-delimited, 1xx) and the request's bytes."""

from __future__ import annotations

import importlib.util
import socket
import threading

import pytest

from shared.probe import loop
from shared.probe.transport import ConnectionLost, Exchange, Request, Stage

NO_UVLOOP = importlib.util.find_spec("uvloop") is None
LOOPS = ["asyncio", pytest.param("uvloop", marks=pytest.mark.skipif(NO_UVLOOP, reason="no uvloop"))]


class Canned:
    """Accepts one connection, reads the request head, sends `reply`, then closes or holds it open."""

    def __init__(self, reply: bytes, close: bool = True) -> None:
        self.reply, self.close, self.request = reply, close, b""
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            while b"\r\n\r\n" not in self.request:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                self.request += chunk
            conn.sendall(self.reply)
            if not self.close:
                self.release.wait(30)  # until the test is done: the client must not need the close

    def stop(self) -> None:
        self.release.set()
        self.thread.join(30)
        self.sock.close()


def exchange(reply: bytes, request: Request, which: str, close: bool = True) -> tuple[int, bytes, Exchange, bytes]:
    server = Canned(reply, close)

    async def go() -> tuple[int, bytes, Exchange]:
        ex = Exchange()
        try:
            await ex.open("127.0.0.1", server.port)
            head = await ex.send(request)
            body = b"".join([chunk async for chunk in ex.body()])
            return head.status, body, ex
        finally:
            ex.close()

    try:
        status, body, ex = loop.run(go(), which)
    finally:
        server.stop()
    return status, body, ex, server.request


GET = Request("GET", "/v1/models", [("Host", "example.test"), ("Authorization", "Bearer k")])


@pytest.mark.parametrize("which", LOOPS)
def test_request_bytes_and_a_content_length_body(which):
    status, body, ex, sent = exchange(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", GET, which)
    assert (status, body) == (200, b"hello")
    assert sent == b"GET /v1/models HTTP/1.1\r\nHost: example.test\r\nAuthorization: Bearer k\r\n\r\n"
    m = ex.marks
    assert m.connect_start <= m.connect_end <= m.request_start <= m.first_byte <= m.headers_done <= m.body_end


@pytest.mark.parametrize("which", LOOPS)
def test_a_head_response_ends_at_its_headers_though_it_names_a_length(which):
    head = Request("HEAD", "/", [("Host", "example.test")])
    status, body, ex, _ = exchange(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", head, which, close=False)
    assert (status, body) == (200, b"")
    assert ex.marks.body_end == ex.marks.headers_done


@pytest.mark.parametrize("which", LOOPS)
def test_a_body_without_length_ends_with_the_connection(which):
    status, body, _, _ = exchange(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close", GET, which)
    assert (status, body) == (200, b"until close")


@pytest.mark.parametrize("which", LOOPS)
def test_a_close_before_the_named_length_is_connection_lost_mid_body(which):
    with pytest.raises(ConnectionLost) as caught:
        exchange(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", GET, which)
    assert caught.value.stage is Stage.BODY


@pytest.mark.parametrize("which", LOOPS)
def test_an_informational_response_is_skipped(which):
    reply = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
    status, body, ex, _ = exchange(reply, GET, which)
    assert (status, body) == (201, b"ok")


def test_a_body_gets_its_content_length():
    post = Request("POST", "/chat", [("Host", "h")], b'{"a": 1}')
    assert post.wire() == b'POST /chat HTTP/1.1\r\nHost: h\r\nContent-Length: 8\r\n\r\n{"a": 1}'


@pytest.mark.parametrize(
    "request_",
    [
        Request("GET", "/", [("Host", "h"), ("X-Token", "a\r\nInjected: 1")]),
        Request("GET", "/ HTTP/1.0", [("Host", "h")]),
        Request("GET", "/", [("Bad Name", "v")]),
        Request("GET", "/", [("Host", "h\0")]),
    ],
)
def test_a_request_that_would_split_or_change_meaning_is_refused(request_):
    with pytest.raises(ValueError):
        request_.wire()
