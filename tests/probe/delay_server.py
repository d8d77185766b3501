"""A loopback HTTP/1.1 server whose delays are known, to check the probe's phase arithmetic against them.

asyncio on raw sockets, on a thread of its own: it accepts, waits `before_tls` before the TLS handshake
(nothing is read before it, so the client's ClientHello waits in the socket), waits `before_headers`
after the request head, then sends a chunked body with `between_chunks` between the chunks.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Delays:
    before_tls_s: float = 0.0
    before_headers_s: float = 0.0
    between_chunks_s: float = 0.0
    chunks: tuple[bytes, ...] = (b"ok",)


class DelayServer:
    """Listens on each of `hosts` (one port for all); `accepted` holds perf_counter() at each accept,
    `peak_in_flight` the most requests that were waiting for their answer at once."""

    def __init__(self, hosts: tuple[str, ...], delays: Delays, tls: ssl.SSLContext | None = None) -> None:
        self.hosts, self.delays, self.tls = hosts, delays, tls
        self.port = 0
        self.accepted: list[float] = []
        self.in_flight = self.peak_in_flight = 0  # requests read and not yet answered
        self._loop = asyncio.new_event_loop()
        self._listeners: list[socket.socket] = []
        self._tasks: set[asyncio.Task] = set()  # the loop holds tasks weakly
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> DelayServer:
        for host in self.hosts:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, self.port))
            self.port = sock.getsockname()[1]
            sock.listen(1024)
            sock.setblocking(False)
            self._listeners.append(sock)
        self._thread.start()
        for sock in self._listeners:
            self._loop.call_soon_threadsafe(self._spawn, self._accept_loop(sock))
        return self

    def _spawn(self, coro) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def __exit__(self, *exc: object) -> None:
        async def shutdown() -> None:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        for sock in self._listeners:
            sock.close()
        self._loop.close()

    async def _accept_loop(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(listener)
            self.accepted.append(time.perf_counter())
            self._spawn(self._serve(conn))

    async def _serve(self, conn: socket.socket) -> None:
        loop, d = asyncio.get_running_loop(), self.delays
        if self.tls is not None and d.before_tls_s:
            await asyncio.sleep(d.before_tls_s)
        reader = asyncio.StreamReader()
        protocol = asyncio.StreamReaderProtocol(reader)
        try:
            transport, _ = await loop.connect_accepted_socket(lambda: protocol, conn, ssl=self.tls)
        except (OSError, ssl.SSLError):
            conn.close()
            return
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        try:
            await reader.readuntil(b"\r\n\r\n")
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            try:
                await asyncio.sleep(d.before_headers_s)
            finally:
                self.in_flight -= 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
            for i, chunk in enumerate(d.chunks):
                if i:
                    await asyncio.sleep(d.between_chunks_s)
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
