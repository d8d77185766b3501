"""Serving the gateway app with uvicorn (uvloop + httptools): in FC, in `vpcprobe serve`, in tests.

FC's web functions need the server on 0.0.0.0 and keep-alive of 15 minutes or more; the response
must carry neither Date nor Server (FC forbids both). Absolute-form request targets
(`GET http://host/ HTTP/1.1`) are flagged by the protocol below, because uvicorn keeps only their
path, so the app can refuse them instead of serving a path whose host part it never saw.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from shared import logs
from shared.gateway.app import DISCONNECT_HOOK, HOLD_HEAD
from shared.gateway.errors import ResponseAborted
from shared.gateway.upstream import StreamBroken

FC_PORT = 9000
KEEP_ALIVE_S = 900  # FC: "the timeout value must be 15 minutes or more at the server side"
STARTUP_WAIT_S = 30.0


class GatewayHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, except that a request target not starting with '/' reaches the app as
    its raw_path (absolute-form, authority-form, '*'), which the gateway's routing refuses with 400; and that
    the app learns of a lost connection from a callback (the app's DISCONNECT_HOOK) instead of a task per
    request waiting for http.disconnect, and that a head sent with HOLD_HEAD goes out in one write with the
    first body bytes (one syscall and one TCP segment fewer per response; the first SSE frame is not behind
    a segment of its own)."""

    def connection_made(self, transport: Any) -> None:
        self._on_lost: list[Callable[[], None]] = []
        super().connection_made(transport)

    def on_headers_complete(self) -> None:
        url = bytes(getattr(self, "url", b"/"))
        before = self.cycle
        super().on_headers_complete()
        if self.cycle is before:
            return  # an upgrade: no request cycle
        # The ASGI task is created but has not run yet: the scope and the cycle's send can still be changed.
        if not url.startswith(b"/"):
            self.scope["raw_path"] = url.partition(b"?")[0]
        self.scope.setdefault("extensions", {})[DISCONNECT_HOOK] = self._hook
        self.cycle.send = _head_holding_send(self.cycle)  # type: ignore[method-assign]

    def _hook(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` if the connection is lost; returns the unhook. Reading resumes, as a pending
        receive() would make it, so that a client's leaving is seen even while a pipelined request waits."""
        on_lost = self._on_lost
        on_lost.append(callback)
        self.flow.resume_reading()

        def unhook() -> None:
            if callback in on_lost:
                on_lost.remove(callback)

        return unhook

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        callbacks, self._on_lost = self._on_lost, []
        for callback in callbacks:
            callback()


class _HeldWrites:
    """The cycle's transport while a held response head waits for the first body message: its writes are
    collected and go out as one when that message has been sent. Closing (an aborted response) is at once,
    except while the body message is being sent (a `Connection: close` answer closes after its last write)."""

    __slots__ = ("transport", "parts", "sending", "close_after")

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.parts: list[bytes] = []
        self.sending = False
        self.close_after = False

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def is_closing(self) -> bool:
        return bool(self.transport.is_closing())

    def close(self) -> None:
        if self.sending:
            self.close_after = True
        else:
            self.parts.clear()
            self.transport.close()

    def flush(self) -> None:
        if self.parts and not self.transport.is_closing():
            self.transport.write(b"".join(self.parts))
        self.parts.clear()
        if self.close_after:
            self.transport.close()


def _head_holding_send(cycle: Any) -> Callable[[Any], Any]:
    """uvicorn's send for one request, except that a start message with HOLD_HEAD is written with the next one."""
    send = cycle.send

    async def head_holding_send(message: Any) -> None:
        held = cycle.transport
        if type(held) is _HeldWrites:
            held.sending = True
            try:
                await send(message)
            finally:
                cycle.transport = held.transport
                held.sending = False
                held.flush()
        elif message.get(HOLD_HEAD) and message["type"] == "http.response.start":
            cycle.transport = _HeldWrites(held)
            await send(message)
        else:
            await send(message)

    return head_holding_send


class _DropStreamAborts(logging.Filter):
    """uvicorn logs an app exception with a traceback; a stream the upstream broke, or a response aborted after
    an unexpected error, is already in our request log line, and raising is only how the client's connection
    gets aborted."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, (StreamBroken, ResponseAborted))


def uvicorn_config(app: Any, host: str, port: int, **overrides: Any) -> uvicorn.Config:
    """The one server configuration, for FC and local runs alike."""
    error_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DropStreamAborts) for f in error_log.filters):
        error_log.addFilter(_DropStreamAborts())
    logs.guard_stdlib_logging("uvicorn", "uvicorn.error")
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": GatewayHttpProtocol,
        "interface": "asgi3",
        "lifespan": "on",
        "timeout_keep_alive": KEEP_ALIVE_S,
        "server_header": False,
        "date_header": False,
        "access_log": False,
        "proxy_headers": False,
        "log_config": None,
        "log_level": "warning",
        "ws": "none",
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)


# Python's default is 700 allocations; a proxy allocating ~100 objects per request collects every few
# requests with it.
GC_YOUNG_THRESHOLD = 10_000


def fc_port() -> int:
    """FC passes the port it expects in FC_SERVER_PORT; 9000 is its default."""
    value = os.environ.get("FC_SERVER_PORT", "")
    return int(value) if value.isdigit() else FC_PORT


def tune_gc() -> None:
    """Every request allocates many short-lived objects: collect the young generation less often, and freeze
    what startup built (modules, config, pools) so full collections stop rescanning it."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def run(app: Any, host: str = "0.0.0.0", port: int | None = None) -> None:
    """Serve in the foreground until a signal (FC's instance lifecycle)."""
    tune_gc()
    uvicorn.Server(uvicorn_config(app, host, port if port is not None else fc_port(),
                                  timeout_graceful_shutdown=30)).run()


def main() -> None:
    """The gateway function's entry point: the config from VPCPROBE_CONFIG (or /code), then serve."""
    from shared.config.load import load_config
    from shared.config.reader import ConfigError
    from shared.gateway.app import create_app

    logs.configure()
    try:
        app = create_app(load_config())
    except ConfigError as exc:
        logs.get_logger("vpcprobe.gateway").error("gateway_config_error", problems=exc.problems)
        sys.exit(2)
    run(app)


@dataclass
class RunningServer:
    """A gateway served from a background thread (tests, `vpcprobe serve`, the benchmark)."""

    host: str
    port: int
    _server: uvicorn.Server
    _thread: threading.Thread

    @property
    def url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}"

    def stop(self, timeout_s: float = 30.0) -> None:
        """Shut down (lifespan shutdown closes the upstream pools) and join the thread. Idempotent."""
        self._server.should_exit = True
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)


class _ThreadedServer(uvicorn.Server):
    """Signals startup to the starting thread; signal handlers stay the main thread's."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.ready.set()


def start_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0, **overrides: Any) -> RunningServer:
    """Serve `app` on host:port (0 = any free port) from a daemon thread with its own event loop;
    returns once it accepts connections, or raises when startup failed. `overrides`: uvicorn.Config options."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    bound = sock.getsockname()[1]
    server = _ThreadedServer(uvicorn_config(app, host, bound, **{"timeout_graceful_shutdown": 5, **overrides}))

    def serve() -> None:
        try:
            server.run(sockets=[sock])
        finally:
            sock.close()

    thread = threading.Thread(target=serve, name=f"gateway-{bound}", daemon=True)
    thread.start()
    if not server.ready.wait(STARTUP_WAIT_S) or not server.started:
        server.should_exit = True
        thread.join(STARTUP_WAIT_S)
        raise RuntimeError(f"the gateway did not start on {host}:{bound} (see the log above)")
    return RunningServer(host, bound, server, thread)
