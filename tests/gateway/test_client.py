"""The upstream HTTP/1.1 client against raw loopback servers: framing, streaming, keep-alive, flow control,
timeouts and every failure type, TLS with SNI. Each test runs on asyncio's loop and on uvloop (production)."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import pytest
import trustme

from shared.gateway.client import (
    BUFFER_LIMIT,
    ConnectFailed,
    ConnectFailure,
    ConnectTimeout,
    Disconnected,
    FirstByteTimeout,
    IdleTimeout,
    InvalidRequest,
    ProtocolError,
    TlsFailed,
    UpstreamConnectionError,
    UpstreamPool,
    UpstreamReply,
)

NAME = "ep-abc.dashscope.cn-beijing.privatelink.aliyuncs.com"  # never resolved: the client connects to the ip
GUARD_S = 20.0  # a hung test fails instead of hanging the suite; no assertion depends on it


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    else:
        factory = asyncio.new_event_loop

    def _run(coro: Coroutine[Any, Any, Any]) -> Any:
        loop = factory()
        try:
            return loop.run_until_complete(asyncio.wait_for(coro, GUARD_S))
        finally:
            loop.close()

    return _run


@dataclass
class Request:
    method: str
    target: str
    head: bytes
    headers: list[tuple[str, str]]
    body: bytes
    connection: int


@dataclass
class Conn:
    number: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    eof: asyncio.Event = field(default_factory=asyncio.Event)

    async def read_request(self) -> Request | None:
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            self.eof.set()
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ")
        headers = [tuple(line.split(": ", 1)) for line in lines[1:] if line]
        length = next((int(v) for k, v in headers if k.lower() == "content-length"), 0)
        body = await self.reader.readexactly(length) if length else b""
        return Request(method, target, head, headers, body, self.number)  # type: ignore[arg-type]

    async def wait_eof(self) -> None:
        """Until the client closes: what the upstream sees when the gateway aborts."""
        try:
            while await self.reader.read(65536):
                pass
        except ConnectionError:
            pass
        self.eof.set()

    def send(self, data: bytes) -> None:
        self.writer.write(data)


Handler = Callable[[Conn, Request], Awaitable[bool]]  # answers one request; False = stop serving this connection


class Upstream:
    """A raw HTTP/1.1 server on 127.0.0.1 whose answers each test writes byte by byte."""

    def __init__(self, handler: Handler, ssl_context: ssl.SSLContext | None = None, raw: bool = False) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.raw = raw
        self.conns: list[Conn] = []
        self.requests: list[Request] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Upstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for conn in self.conns:
            conn.writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = Conn(len(self.conns) + 1, reader, writer)
        self.conns.append(conn)
        try:
            if self.raw:
                await self.handler(conn, None)  # type: ignore[arg-type]
                return
            while True:
                req = await conn.read_request()
                if req is None:
                    return
                self.requests.append(req)
                if not await self.handler(conn, req):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            conn.eof.set()
        finally:
            writer.close()

    @property
    def connections(self) -> int:
        return len(self.conns)


def answer(body: bytes = b"{}", status: bytes = b"200 OK", extra: bytes = b"") -> Handler:
    async def handler(conn: Conn, req: Request) -> bool:
        conn.send(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n" + extra
                  + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        return True

    return handler


async def call(pool: UpstreamPool, up: Upstream, method: str = "GET", target: str = "/v1/models",
               headers: list[tuple[bytes, bytes]] | None = None, body: bytes | None = None, **kw: Any) -> UpstreamReply:
    opts: dict[str, Any] = {"ip": "127.0.0.1", "port": up.port, "server_name": NAME, "connect_timeout": 5.0,
                            "first_byte_timeout": 5.0}
    opts.update(kw)
    return await pool.request(method, target, headers or [], body, **opts)


# -- framing


def test_content_length_body_and_the_exact_request_head(run: Any) -> None:
    async def main() -> None:
        pool = UpstreamPool()
        async with Upstream(answer(b'{"id":"x"}', extra=b"X-Request-Id: r-1\r\n")) as up:
            reply = await call(pool, up, "POST", "/compatible-mode/v1/chat/completions?a=1",
                               [(b"Authorization", b"Bearer k"), (b"Content-Type", b"application/json")], b'{"m":1}',
                               url_port=80)
            assert reply.status == 200
            assert ("x-request-id", "r-1") in reply.headers
            assert (b"X-Request-Id", b"r-1") in reply.raw_headers
            assert await reply.read(1 << 20) == b'{"id":"x"}'
            assert reply.complete
            reply.release()
            req = up.requests[0]
            assert req.head == (
                b"POST /compatible-mode/v1/chat/completions?a=1 HTTP/1.1\r\nHost: " + NAME.encode() + b"\r\n"
                b"Content-Length: 7\r\nAuthorization: Bearer k\r\nContent-Type: application/json\r\n\r\n"
            )
            assert req.body == b'{"m":1}'
        pool.close()

    run(main())


def test_host_names_a_non_default_port_and_empty_post_has_content_length(run: Any) -> None:
    async def main() -> None:
        pool = UpstreamPool()
        async with Upstream(answer()) as up:
            (await call(pool, up, "POST", "/x", body=b"", url_port=8080)).release()
            (await call(pool, up, "GET", "/y", url_port=80)).release()
            first, second = up.requests
            assert ("Host", f"{NAME}:8080") in first.headers
            assert ("Content-Length", "0") in first.headers
            assert ("Host", NAME) in second.headers
            assert [k for k, _ in second.headers] == ["Host"]  # nothing invented for a GET
        pool.close()

    run(main())


def test_framing_headers_from_the_caller_are_not_forwarded_and_injection_is_refused(run: Any) -> None:
    async def main() -> None:
        pool = UpstreamPool()
        async with Upstream(answer()) as up:
            hdrs = [(b"Host", b"evil.example"), (b"Transfer-Encoding", b"chunked"), (b"Content-Length", b"99")]
            (await call(pool, up, "POST", "/x", hdrs, b"abc", url_port=80)).release()
            assert [(k, v) for k, v in up.requests[0].headers] == [("Host", NAME), ("Content-Length", "3")]
            for bad in ([(b"X-A", b"v\r\nX-Injected: 1")], [(b"Bad Name", b"v")]):
                with pytest.raises(InvalidRequest):
                    await call(pool, up, "GET", "/x", bad)
            with pytest.raises(InvalidRequest):
                await call(pool, up, "GET", "/x y")
            with pytest.raises(InvalidRequest):
                await call(pool, up, "GET", "http://other/x")
            assert len(up.requests) == 1  # nothing of the refused requests was sent
        pool.close()

    run(main())


def test_chunked_body_and_the_connection_is_pooled_after_it(run: Any) -> None:
    async def handler(conn: Conn, req: Request) -> bool:
        conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        return True

    async def main() -> None:
        pool = UpstreamPool()
        async with Upstream(handler) as up:
            reply = await call(pool, up)
            assert await reply.read(1 << 20) == b"hello world"
            reply.release()
            assert pool.idle_count == 1
        pool.close()

    run(main())


def test_body_until_close_is_complete_and_not_pooled(run: Any) -> None:
    async def handler(conn: Conn, req: Request) -> bool:
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it")
        return False  # closes: the end of the body

    async def main() -> None:
        pool = UpstreamPool()
        async with Upstream(handler) as up:
            reply = await call(pool, up)
            assert await reply.read(1 << 20) == b"all of it"
            assert reply.complete
            reply.release()
            assert pool.idle_count == 0
        pool.close()

    run(main())


def test_head_answer_ends_at_the_headers(run: Any) -> None:
    async def main() -> None:
        pool = UpstreamPool()
        async with Upstream(answer(b"")) as up:
            async def head_answer(conn: Conn, req: Request) -> bool:
                conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
                return True

            up.handler = head_answer
            reply = await call(pool, up, "HEAD", "/x")
            assert reply.status == 200
            assert await reply.read(100) == b""
            reply.release()
        pool.close()

    run(main())


def test_informational_answer_is_skipped(run: Any) -> None:
    async def handler(conn: Conn, req: Request) -> bool:
        conn.send(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
        return True

    async def main() -> None:
        pool = UpstreamPool()
        async with Upstream(handler) as up:
            reply = await call(pool, up, "POST", "/x", body=b"1")
            assert reply.status == 201
            assert reply.raw_headers == [(b"Content-Length", b"2")]
            assert await reply.read(10) == b"ok"
            reply.release()
            assert pool.idle_count == 1
        pool.close()

    run(main())


# -- streaming and flow control


def test_chunks_arrive_one_by_one(run: Any) -> None:
    """The first frame reaches the consumer while the upstream still holds the second."""

    async def main() -> None:
        pool = UpstreamPool()
        go_on = asyncio.Event()

        async def handler(conn: Conn, req: Request) -> bool:
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"9\r\ndata: 1\n\n\r\n")
            await go_on.wait()
            conn.send(b"9\r\ndata: 2\n\n\r\n0\r\n\r\n")
            return True

        async with Upstream(handler) as up:
            reply = await call(pool, up, "POST", "/x", body=b"{}")
            got = []
            async for chunk in reply.chunks(5.0):
                got.append(chunk)
                go_on.set()  # only now may the upstream send the second frame
            assert got == [b"data: 1\n\n", b"data: 2\n\n"]
            reply.release()
            assert pool.idle_count == 1
        pool.close()

    run(main())


def test_a_slow_consumer_pauses_reading_instead_of_buffering_the_stream(run: Any) -> None:
    total = 48 * 1024 * 1024
    piece = b"x" * 65536

    async def main() -> None:
        pool = UpstreamPool()
        sent = [0]

        async def handler(conn: Conn, req: Request) -> bool:
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: " + str(total).encode() + b"\r\n\r\n")
            while sent[0] < total:
                conn.send(piece)
                sent[0] += len(piece)
                await conn.writer.drain()
            return True

        async with Upstream(handler) as up:
            reply = await call(pool, up)
            for _ in range(100_000):
                if reply.reading_paused:
                    break
                await asyncio.sleep(0)
            assert reply.reading_paused
            for _ in range(200):  # the loop keeps running; nothing more is read while paused
                await asyncio.sleep(0)
            assert BUFFER_LIMIT < reply.buffered <= BUFFER_LIMIT + 2 * 1024 * 1024
            assert sent[0] < total  # the upstream is held back too (kernel buffers, not our memory)
            got = 0
            async for chunk in reply.chunks(5.0):
                got += len(chunk)
                assert len(chunk) <= BUFFER_LIMIT + 2 * 1024 * 1024
            assert got == total
            reply.release()
            assert pool.idle_count == 1
        pool.close()

    run(main())


# -- keep-alive


def test_sequential_requests_share_one_connection(run: Any) -> None:
    async def main() -> None:
        pool = UpstreamPool()
        async with Upstream(answer(b"[1]")) as up:
            for _ in range(3):
                reply = await call(pool, up)
                assert await reply.read(100) == b"[1]"
                reply.release()
            assert up.connections == 1
            assert [r.connection for r in up.requests] == [1, 1, 1]
            assert pool.connections_opened == 1
        pool.close()

    run(main())


def test_an_abandoned_response_closes_its_connection(run: Any) -> None:
    async def main() -> None:
        pool = UpstreamPool()
        hold = asyncio.Event()

        async def handler(conn: Conn, req: Request) -> bool:
            if conn.number == 1:
                conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345")
                await hold.wait()
                return True
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            return True

        async with Upstream(handler) as up:
            reply = await call(pool, up)
            async for chunk in reply.chunks(5.0):
                assert chunk == b"12345"
                break
            reply.release()  # not complete: closed, never pooled
            assert pool.idle_count == 0
            await up.conns[0].wait_eof()
            reply = await call(pool, up)
            assert await reply.read(10) == b"ok"
            reply.release()
            assert up.connections == 2
        pool.close()

    run(main())


def test_abort_closes_the_connection_and_the_upstream_sees_eof(run: Any) -> None:
    async def main() -> None:
        pool = UpstreamPool()
        never = asyncio.Event()

        async def handler(conn: Conn, req: Request) -> bool:
            conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
            await never.wait()
            return True

        async with Upstream(handler) as up:
            reply = await call(pool, up)
            async for chunk in reply.chunks(5.0):
                assert chunk == b"first"
                reply.abort()
                break
            await up.conns[0].wait_eof()
            assert up.conns[0].eof.is_set()
            assert pool.idle_count == 0
            reply.abort()  # idempotent
            reply.release()
        pool.close()

    run(main())


def test_cancelling_a_request_closes_its_connection(run: Any) -> None:
    async def main() -> None:
        pool = UpstreamPool()
        asked = asyncio.Event()

        async def handler(conn: Conn, req: Request) -> bool:
            asked.set()
            await conn.wait_eof()
            return False

        async with Upstream(handler) as up:
            task = asyncio.ensure_future(call(pool, up))
            await asked.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            for _ in range(1000):
                if up.conns[0].eof.is_set():
                    break
                await asyncio.sleep(0)
            assert up.conns[0].eof.is_set()
            assert pool.idle_count == 0
        pool.close()

    run(main())


def test_idle_connections_are_bounded_per_key_and_expire(run: Any) -> None:
    async def main() -> None:
        pool = UpstreamPool(max_idle_per_key=2)
        async with Upstream(answer()) as up:
            replies = await asyncio.gather(*(call(pool, up) for _ in range(3)))
            for reply in replies:
                await reply.read(10)
                reply.release()
            assert pool.idle_count == 2
            assert up.connections == 3
            waits = [asyncio.ensure_future(c.eof.wait()) for c in up.conns]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)  # the oldest idle one was closed
            for w in waits:
                w.cancel()
            assert sum(c.eof.is_set() for c in up.conns) == 1
        pool.close()
        expiring = UpstreamPool(idle_expiry_s=0.0)
        async with Upstream(answer()) as up:
            for _ in range(2):
                reply = await call(expiring, up)
                await reply.read(10)
                reply.release()
            assert up.connections == 2  # the first had expired: not reused but closed
            await up.conns[0].eof.wait()
        expiring.close()

    run(main())


def test_a_stale_pooled_connection_is_retried_once_on_a_fresh_one(run: Any) -> None:
    async def main() -> None:
        pool = UpstreamPool()

        async def handler(conn: Conn, req: Request) -> bool:
            if conn.number == 1 and len([r for r in up.requests if r.connection == 1]) == 2:
                return False  # the classic race: keep-alive said yes, then the upstream closed it unanswered
            await answer(b"fine")(conn, req)
            return True

        async with Upstream(handler) as up:
            reply = await call(pool, up)
            await reply.read(10)
            reply.release()
            assert pool.idle_count == 1
            reply = await call(pool, up, "POST", "/x", body=b"again")
            assert await reply.read(10) == b"fine"
            reply.release()
            assert up.connections == 2
            assert [(r.connection, r.body) for r in up.requests[-2:]] == [(1, b"again"), (2, b"again")]
        pool.close()

    run(main())


def test_the_stale_retry_happens_only_once(run: Any) -> None:
    async def main() -> None:
        pool = UpstreamPool()

        async def handler(conn: Conn, req: Request) -> bool:
            if len(up.requests) == 1:
                await answer()(conn, req)
                return True
            return False  # every later request: closed unanswered

        async with Upstream(handler) as up:
            reply = await call(pool, up)
            await reply.read(10)
            reply.release()
            with pytest.raises(Disconnected) as caught:
                await call(pool, up)
            assert "before the response headers" in str(caught.value)
            assert up.connections == 2  # the pooled one, then one fresh try: no third
        pool.close()

    run(main())


def test_no_retry_when_part_of_the_response_arrived(run: Any) -> None:
    async def main() -> None:
        pool = UpstreamPool()

        async def handler(conn: Conn, req: Request) -> bool:
            if len(up.requests) == 1:
                await answer()(conn, req)
                return True
            conn.send(b"HTTP/1.1 2")
            return False

        async with Upstream(handler) as up:
            reply = await call(pool, up)
            await reply.read(10)
            reply.release()
            with pytest.raises(Disconnected):
                await call(pool, up, "POST", "/x", body=b"once")
            assert up.connections == 1
            assert len(up.requests) == 2
        pool.close()

    run(main())


# -- failures


def test_connect_refused_keeps_the_errno(run: Any) -> None:
    async def main() -> None:
        with socket.socket() as closed_port:
            closed_port.bind(("127.0.0.1", 0))  # bound, never listening: the kernel refuses
            port = closed_port.getsockname()[1]
            with pytest.raises(ConnectFailed) as caught:
                await UpstreamPool().request("GET", "/", [], None, ip="127.0.0.1", port=port, server_name=NAME,
                                             connect_timeout=5.0, first_byte_timeout=5.0)
        assert caught.value.errno == errno.ECONNREFUSED
        assert caught.value.reason is ConnectFailure.REFUSED
        assert isinstance(caught.value, UpstreamConnectionError)

    run(main())


def test_connect_timeout_when_syns_go_unanswered(run: Any) -> None:
    """A listener whose accept queue is full drops new SYNs, like a security group would."""

    async def main() -> None:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        try:
            for _ in range(8):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
                fillers.append(s)
            with pytest.raises(ConnectTimeout) as caught:
                await UpstreamPool().request("GET", "/", [], None, ip="127.0.0.1", port=port, server_name=NAME,
                                             connect_timeout=0.3, first_byte_timeout=5.0)
            assert "0.3s" in str(caught.value)
        finally:
            for s in fillers:
                s.close()
            listener.close()

    run(main())


def test_first_byte_timeout_closes_the_connection(run: Any) -> None:
    async def main() -> None:
        pool = UpstreamPool()

        async def handler(conn: Conn, req: Request) -> bool:
            await conn.wait_eof()  # reads the request, never answers
            return False

        async with Upstream(handler) as up:
            with pytest.raises(FirstByteTimeout):
                await call(pool, up, first_byte_timeout=0.2)
            await up.conns[0].eof.wait()
            assert pool.idle_count == 0
        pool.close()

    run(main())


def test_idle_timeout_between_chunks(run: Any) -> None:
    async def main() -> None:
        pool = UpstreamPool()

        async def handler(conn: Conn, req: Request) -> bool:
            conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\none\r\n")
            await conn.wait_eof()
            return False

        async with Upstream(handler) as up:
            reply = await call(pool, up)
            got = []
            with pytest.raises(IdleTimeout):
                async for chunk in reply.chunks(0.2):
                    got.append(chunk)
            assert got == [b"one"]
            await up.conns[0].eof.wait()
            reply.release()
            assert pool.idle_count == 0
        pool.close()

    run(main())


def test_disconnect_mid_body(run: Any) -> None:
    async def handler(conn: Conn, req: Request) -> bool:
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
        return False

    async def main() -> None:
        pool = UpstreamPool()
        async with Upstream(handler) as up:
            reply = await call(pool, up)
            with pytest.raises(Disconnected) as caught:
                await reply.read(1000)
            assert "before the response body ended" in str(caught.value)
            reply.release()
            assert pool.idle_count == 0
        pool.close()

    run(main())


def test_fresh_connection_closed_unanswered_is_disconnected_without_retry(run: Any) -> None:
    async def handler(conn: Conn, req: Request) -> bool:
        return False

    async def main() -> None:
        pool = UpstreamPool()
        async with Upstream(handler) as up:
            with pytest.raises(Disconnected):
                await call(pool, up)
            assert up.connections == 1
        pool.close()

    run(main())


@pytest.mark.parametrize(
    "garbage", [b"SSH-2.0-OpenSSH_9.0\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n"]
)
def test_protocol_error(run: Any, garbage: bytes) -> None:
    async def handler(conn: Conn, req: Request) -> bool:
        conn.send(garbage)
        await conn.wait_eof()
        return False

    async def main() -> None:
        pool = UpstreamPool()
        async with Upstream(handler) as up:
            with pytest.raises(ProtocolError):
                await call(pool, up)
            await up.conns[0].eof.wait()
        pool.close()

    run(main())


def test_oversized_response_head_is_a_protocol_error(run: Any) -> None:
    async def handler(conn: Conn, req: Request) -> bool:
        conn.send(b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 70_000 + b"\r\n\r\n")
        await conn.wait_eof()
        return False

    async def main() -> None:
        pool = UpstreamPool()
        async with Upstream(handler) as up:
            with pytest.raises(ProtocolError, match="headers over"):
                await call(pool, up)
        pool.close()

    run(main())


# -- TLS


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _server_ctx(ca: trustme.CA, seen: list[str | None]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(NAME).configure_cert(ctx)

    def sni(sock: Any, name: str | None, _ctx: Any) -> None:
        seen.append(name)

    ctx.sni_callback = sni
    return ctx


def test_tls_with_sni_and_keep_alive(run: Any, ca: trustme.CA) -> None:
    async def main() -> None:
        seen: list[str | None] = []
        client_ctx = ssl.create_default_context()
        ca.configure_trust(client_ctx)
        pool = UpstreamPool()
        async with Upstream(answer(b"secure"), ssl_context=_server_ctx(ca, seen)) as up:
            for _ in range(2):
                reply = await call(pool, up, ssl_context=client_ctx, url_port=443)
                assert await reply.read(100) == b"secure"
                reply.release()
            assert seen == [NAME]  # one handshake, SNI = the real name though we dialled 127.0.0.1
            assert up.connections == 1
            assert ("Host", NAME) in up.requests[0].headers
        pool.close()

    run(main())


def test_tls_certificate_for_another_name_fails(run: Any, ca: trustme.CA) -> None:
    async def main() -> None:
        client_ctx = ssl.create_default_context()
        ca.configure_trust(client_ctx)
        async with Upstream(answer(), ssl_context=_server_ctx(ca, [])) as up:
            with pytest.raises(TlsFailed) as caught:
                await call(UpstreamPool(), up, ssl_context=client_ctx, server_name="other.example.internal")
            assert caught.value.reason == "CERTIFICATE_VERIFY_FAILED"

    run(main())


def test_plain_http_on_a_tls_connection_is_tls_failed(run: Any) -> None:
    """What PrivateLink's HTTP-only default domain does to an https URL."""

    async def handler(conn: Conn, _req: Request) -> bool:
        await conn.reader.read(1)
        conn.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await conn.writer.drain()
        return False

    async def main() -> None:
        async with Upstream(handler, raw=True) as up:
            with pytest.raises(TlsFailed) as caught:
                await call(UpstreamPool(), up, ssl_context=ssl.create_default_context())
            assert caught.value.reason == "WRONG_VERSION_NUMBER"

    run(main())
