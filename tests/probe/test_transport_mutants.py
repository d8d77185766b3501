"""The exchange's stamps, limits and errors exactly, against loopback servers on both event loops: every
mark of a plain exchange set and in order, a connect that completes at once or is refused (with the OS's
words), a cancelled connect that leaves nothing watched, `body(limit)` at, under and over the limit across
chunk boundaries, a 101 upgrade or a non-HTTP answer as ProtocolViolation at its stage, and bytes that
arrive after the response was complete left alone."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import time

import pytest

from shared.probe import loop
from shared.probe.transport import (
    ConnectFailed,
    Exchange,
    Marks,
    ProtocolViolation,
    Stage,
    _connect,
)
from tests.probe.test_transport import GET, LOOPS, exchange

CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
END = b"0\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


# the marks and the connect --------------------------------------------------------------------------


@pytest.mark.parametrize("which", LOOPS)
def test_every_mark_of_an_exchange_is_a_time_and_in_order(which):
    before = time.perf_counter()
    status, body, ex, _ = exchange(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", GET, which)
    after = time.perf_counter()
    assert (status, body) == (200, b"hello")
    m = ex.marks
    stamps = [m.connect_start, m.connect_end, m.request_start, m.request_written, m.first_byte, m.headers_done]
    stamps.append(m.body_end)
    assert all(isinstance(s, float) for s in stamps), m
    assert before <= m.connect_start <= m.connect_end <= m.request_start <= m.request_written <= m.first_byte
    assert m.first_byte <= m.headers_done <= m.body_end <= after
    assert (m.tls_start, m.tls_end) == (None, None)


@pytest.mark.parametrize("which", LOOPS)
def test_a_connect_that_completes_at_once_is_stamped_there(which, tmp_path):
    # A Unix socket's connect completes inside connect() itself (a loopback TCP one is always in progress).
    path = str(tmp_path / "s")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)

    async def go() -> tuple[bool, Marks, float, float]:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        marks = Marks()
        try:
            before = time.perf_counter()
            done = _connect(asyncio.get_running_loop(), sock, path, marks)
            at_once = done.done()
            await done
            return at_once, marks, before, time.perf_counter()
        finally:
            sock.close()

    try:
        at_once, marks, before, after = loop.run(go(), which)
    finally:
        listener.close()
    assert at_once
    assert isinstance(marks.connect_start, float) and isinstance(marks.connect_end, float)
    assert before <= marks.connect_start <= marks.connect_end <= after
    assert marks.stage() is Stage.RESPONSE


@pytest.mark.parametrize("which", LOOPS)
def test_a_refused_connect_says_so_in_the_os_words(which):
    # bound, never listening: the SYN gets a reset (after connect() said EINPROGRESS)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]

    async def go() -> Exchange:
        ex = Exchange()
        try:
            await ex.open("127.0.0.1", port)
        finally:
            ex.close()
        return ex

    try:
        with pytest.raises(ConnectFailed) as caught:
            loop.run(go(), which)
    finally:
        closed.close()
    err = caught.value
    assert (err.stage, err.errno) == (Stage.CONNECT, errno.ECONNREFUSED)
    assert str(err) == os.strerror(errno.ECONNREFUSED)


def test_a_cancelled_connect_leaves_no_writer_on_the_loop():
    # A listener whose one-place accept queue is taken drops the next SYN: that connect stays in progress.
    # asyncio's loop only: its remove_writer says whether the fd was still watched (uvloop's returns None).
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    addr = listener.getsockname()
    filler = socket.create_connection(addr)

    async def go() -> tuple[bool, list, Marks]:
        running = asyncio.get_running_loop()
        problems: list = []
        running.set_exception_handler(lambda _, context: problems.append(context))
        sock = socket.socket()
        sock.setblocking(False)
        marks = Marks()
        try:
            done = _connect(running, sock, addr, marks)
            assert not done.done()
            called = asyncio.Event()
            done.add_done_callback(lambda _: called.set())  # runs after _connect's own callback
            assert done.cancel()
            await called.wait()
            return running.remove_writer(sock.fileno()), problems, marks
        finally:
            sock.close()

    try:
        still_watched, problems, marks = loop.run(go(), "asyncio")
    finally:
        filler.close()
        listener.close()
    assert marks.connect_end is None  # the connect was still in progress when it was cancelled
    assert still_watched is False
    assert problems == []


# body(limit) ---------------------------------------------------------------------------------------


def stepwise(parts: list[bytes], limit: int | None, which: str) -> tuple[list[bytes], Exchange, bool, float]:
    """A chunked response whose parts are sent one by one, each only after the client took the previous one
    from body(limit): every part is one piece of the body. Nothing is sent after the last part, and the
    connection is held open until the client is done."""

    async def go() -> tuple[list[bytes], Exchange, bool, float]:
        asked: asyncio.Queue[None] = asyncio.Queue()
        handlers: list[asyncio.Task] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            handlers.append(asyncio.current_task())  # type: ignore[arg-type]
            try:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(CHUNKED_HEAD + parts[0])
                for part in parts[1:]:
                    await asked.get()
                    writer.write(part)
                await asyncio.Event().wait()  # held open: the client must not need the close
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        ex = Exchange()
        pieces: list[bytes] = []
        try:
            await ex.open("127.0.0.1", port)
            head = await ex.send(GET)
            assert head.status == 200
            async for piece in ex.body(limit):
                pieces.append(piece)
                asked.put_nowait(None)
            return pieces, ex, ex._reader.finished, time.perf_counter()
        finally:
            ex.close()
            server.close()
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)

    return loop.run(go(), which)


@pytest.mark.parametrize("which", LOOPS)
def test_a_body_over_the_limit_stops_inside_the_chunk_that_crosses_it(which):
    pieces, ex, finished, after = stepwise([chunk(b"abc"), chunk(b"defgh"), END], 5, which)
    assert pieces == [b"abc", b"de"]
    assert not finished  # stopped at the limit, not at the end of the response
    m = ex.marks
    assert isinstance(m.body_end, float) and m.headers_done <= m.body_end <= after


@pytest.mark.parametrize("which", LOOPS)
def test_the_limit_counts_every_chunk_before_the_one_that_crosses_it(which):
    parts = [chunk(b"abc"), chunk(b"def"), chunk(b"ghijkl"), END]
    pieces, ex, finished, after = stepwise(parts, 10, which)
    assert pieces == [b"abc", b"def", b"ghij"]
    assert not finished
    assert isinstance(ex.marks.body_end, float) and ex.marks.headers_done <= ex.marks.body_end <= after


@pytest.mark.parametrize("which", LOOPS)
def test_a_body_exactly_at_the_limit_is_all_read_and_nothing_after_it(which):
    # the bytes after the limit are not HTTP: reading stopped at the limit, so they are never asked for
    pieces, ex, _, after = stepwise([chunk(b"hello") + b"not a chunk\r\n"], 5, which)
    assert pieces == [b"hello"]
    assert isinstance(ex.marks.body_end, float) and ex.marks.headers_done <= ex.marks.body_end <= after


@pytest.mark.parametrize("which", LOOPS)
def test_a_body_under_the_limit_is_read_to_its_end(which):
    pieces, ex, finished, after = stepwise([chunk(b"abc"), chunk(b"de"), END], 6, which)
    assert pieces == [b"abc", b"de"]
    assert finished
    assert ex.marks.headers_done <= ex.marks.body_end <= after


# what is not HTTP/1.1 --------------------------------------------------------------------------------


@pytest.mark.parametrize("which", LOOPS)
def test_an_upgrade_answer_is_a_protocol_violation_before_the_response(which):
    reply = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    with pytest.raises(ProtocolViolation) as caught:
        exchange(reply, GET, which)
    assert caught.value.stage is Stage.RESPONSE
    assert str(caught.value) == "the server switched protocols (upgrade)"


@pytest.mark.parametrize("which", LOOPS)
def test_a_non_http_answer_is_a_protocol_violation_before_the_response(which):
    with pytest.raises(ProtocolViolation) as caught:
        exchange(b"SSH-2.0-OpenSSH_9.6\r\n", GET, which)
    assert caught.value.stage is Stage.RESPONSE
    prefix = "not an HTTP/1.1 response: "
    assert str(caught.value).startswith(prefix) and len(str(caught.value)) > len(prefix)


@pytest.mark.parametrize("which", LOOPS)
def test_a_broken_chunk_is_a_protocol_violation_in_the_body(which):
    with pytest.raises(ProtocolViolation) as caught:
        exchange(CHUNKED_HEAD + chunk(b"ok") + b"not a chunk\r\n", GET, which)
    assert caught.value.stage is Stage.BODY
    assert str(caught.value).startswith("not an HTTP/1.1 response: ")


# after the response ---------------------------------------------------------------------------------


@pytest.mark.parametrize("which", LOOPS)
def test_bytes_after_a_complete_response_are_ignored(which):
    """A second response sent after the first was read in full changes neither the response nor its marks."""

    async def go() -> tuple[Exchange, tuple, tuple]:
        more = asyncio.Event()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await more.wait()
            writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 3\r\n\r\nbad")
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        ex = Exchange()
        try:
            await ex.open("127.0.0.1", server.sockets[0].getsockname()[1])
            head = await ex.send(GET)
            body = b"".join([piece async for piece in ex.body()])
            first = (head.status, body, ex.marks.headers_done, ex.marks.body_end)
            more.set()  # the server writes when this task next yields, which is inside wait():
            await ex._reader.wait()  # until the second response's bytes (or the close after them) came in
            reader = ex._reader
            return ex, first, (reader.response.status, reader.error, ex.marks.headers_done, ex.marks.body_end)
        finally:
            ex.close()
            server.close()

    ex, first, later = loop.run(go(), which)
    assert first[:2] == (200, b"ok")
    assert later == (200, None, *first[2:])
    assert list(ex._reader.chunks) == []


@pytest.mark.parametrize("which", LOOPS)
def test_a_second_response_in_the_same_read_as_the_first_is_ignored(which):
    """The first complete response is the answer even when another follows it in the same packet: the probe
    reported the second one's status (503 with the first one's body) and a headers_done after body_end (a
    negative transfer phase) before on_headers_complete checked `finished` (found by mutation testing)."""
    first = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    second = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 3\r\n\r\nbad"
    status, body, ex, _ = exchange(first + second, GET, which)
    assert (status, body) == (200, b"ok")
    assert ex.marks.first_byte <= ex.marks.headers_done <= ex.marks.body_end
    assert ex._reader.response.headers == {"content-length": "2"}  # not the second one's


@pytest.mark.parametrize("which", LOOPS)
def test_an_upgrade_after_a_complete_response_is_not_the_answers_error(which):
    """A 101 that follows a complete response (same read or later) is ignored like any response after it:
    it used to fail the exchange with "the server switched protocols" and abort it."""
    first = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    upgrade = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"
    status, body, ex, _ = exchange(first + upgrade, GET, which)
    assert (status, body, ex._reader.error) == (200, b"ok", None)
