"""A local DingTalk custom-robot endpoint that checks what the real one checks (tests and the demo).

`POST /robot/send?access_token=..[&timestamp=<ms>&sign=..]` answers like oapi.dingtalk.com: HTTP
200 with `{"errcode": 0, "errmsg": "ok"}`, or with the real error codes — 300001 unknown token,
310000 bad signature / stale timestamp (more than an hour off) / missing keyword, 460101 body over
20,000 bytes, 130101 more than 20 messages a minute (the robot then stays throttled for 10
minutes). A repeated `msgUuid` is acknowledged without posting again. Callers can inject errcodes,
HTTP errors, or a dropped connection after posting (the ambiguous case a retry must survive).

aiohttp on its own event loop in a daemon thread, like the simulator::

    with DingTalkReceiver({"tok": "SECsecret"}) as robot:
        ...  # point a dingtalk channel's url at robot.url
        robot.messages  # what was posted
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

MAX_BODY = 20_000
LIMIT_PER_MINUTE = 20
THROTTLE_S = 600.0
_SIGN_DOC = "sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]"


class DingTalkReceiver:
    """Robots by access token -> signing secret (None = an unsigned robot)."""

    def __init__(
        self,
        robots: dict[str, str | None],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Callable[[], float] = time.time,
        on_message: Callable[[dict[str, Any]], None] | None = None,
        keywords: tuple[str, ...] = (),
    ) -> None:
        self.robots = dict(robots)
        self.host, self.port = host, port
        self.clock = clock  # seconds; tests align it with the rounds' injected `now`
        self.on_message = on_message
        self.keywords = keywords
        self.messages: list[dict[str, Any]] = []  # posted to the group
        self.requests: list[dict[str, Any]] = []  # every request with its answer
        self._lock = threading.Lock()
        self._injected: list[dict[str, Any]] = []
        self._sends: dict[str, list[float]] = {}
        self._throttled: dict[str, float] = {}
        self._uuids: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/robot/send"

    # --- fault injection ------------------------------------------------------------------------------

    def fail_next(self, errcode: int, errmsg: str = "injected failure", times: int = 1) -> None:
        """The next `times` authenticated requests get this errcode (HTTP 200), and nothing is posted."""
        with self._lock:
            self._injected.append({"errcode": errcode, "errmsg": errmsg, "times": times})

    def http_error_next(self, status: int, times: int = 1) -> None:
        with self._lock:
            self._injected.append({"status": status, "times": times})

    def drop_next(self, times: int = 1) -> None:
        """Post the next message, then cut the connection before answering (the sender can't know)."""
        with self._lock:
            self._injected.append({"drop": True, "times": times})

    # --- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> DingTalkReceiver:
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="dingtalk-receiver", daemon=True)
        self._thread.start()
        ready.result(timeout=30)
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            asyncio.run_coroutine_threadsafe(self._astop(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._loop = self._thread = None

    def __enter__(self) -> DingTalkReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, ready: concurrent.futures.Future[None]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._astart())
        except BaseException as exc:
            ready.set_exception(exc)
            loop.close()
            return
        ready.set_result(None)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _astart(self) -> None:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post("/robot/send", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def _astop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # --- the robot ------------------------------------------------------------------------------------

    def _answer(self, rec: dict[str, Any], errcode: int, errmsg: str) -> web.Response:
        rec.update(errcode=errcode, errmsg=errmsg)
        return web.json_response({"errcode": errcode, "errmsg": errmsg})

    def _take_injected(self) -> dict[str, Any] | None:
        with self._lock:
            if not self._injected:
                return None
            fault = self._injected[0]
            fault["times"] -= 1
            if fault["times"] <= 0:
                self._injected.pop(0)
            return dict(fault)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        now = self.clock()
        token = request.query.get("access_token", "")
        rec: dict[str, Any] = {"token": token, "bytes": len(body), "at": now}
        with self._lock:
            self.requests.append(rec)
        if token not in self.robots:
            return self._answer(rec, 300001, "token is not exist")
        secret = self.robots[token]
        if secret is not None:
            problem = self._check_sign(secret, request.query.get("timestamp"), request.query.get("sign"), now)
            if problem:
                return self._answer(rec, 310000, problem)
        with self._lock:
            if self._throttled.get(token, 0) > now:
                return self._answer(rec, 130101, "send too fast, exceed 20 times per minute")
            recent = [t for t in self._sends.get(token, []) if t > now - 60]
            if len(recent) >= LIMIT_PER_MINUTE:
                self._throttled[token] = now + THROTTLE_S
                return self._answer(rec, 130101, "send too fast, exceed 20 times per minute")
            self._sends[token] = recent + [now]
        fault = self._take_injected()
        if fault and "errcode" in fault:
            return self._answer(rec, fault["errcode"], fault["errmsg"])
        if fault and "status" in fault:
            rec.update(status=fault["status"])
            return web.Response(status=fault["status"], text="injected")
        if len(body) > MAX_BODY:
            return self._answer(rec, 460101, "message too long, exceed 20000 bytes")
        try:
            payload = json.loads(body)
            kind = payload["msgtype"]
            content = payload[kind]
            text = content["content"] if kind == "text" else content["text"]
            if kind == "markdown" and not content.get("title"):
                raise KeyError("title")
        except (ValueError, KeyError, TypeError):
            return self._answer(rec, 40035, "missing or invalid parameter (msgtype and its content)")
        if self.keywords and not any(k in text for k in self.keywords):
            return self._answer(rec, 310000, "keywords not in content")
        uuid = payload.get("msgUuid")
        with self._lock:
            duplicate = bool(uuid) and uuid in self._uuids
            if uuid:
                self._uuids.add(uuid)
        if duplicate:
            rec.update(duplicate=True)
            return self._answer(rec, 0, "ok")
        at = payload.get("at") or {}
        mentioned = [*(at.get("atMobiles") or []), *(at.get("atUserIds") or [])]
        message = {
            "token": token,
            "msgtype": kind,
            "title": content.get("title"),
            "text": text,
            "at": at,
            # a mention notifies only when "@<mobile>" (or "@<userId>") is also in the text
            "notified": [m for m in mentioned if f"@{m}" in text],
            "msgUuid": uuid,
            "bytes": len(body),
            "signed": secret is not None,
            "at_time": now,
        }
        with self._lock:
            self.messages.append(message)
        if self.on_message is not None:
            self.on_message(message)
        if fault and fault.get("drop"):
            rec.update(dropped=True)
            if request.transport is not None:
                request.transport.abort()  # no answer: the connection is gone
            return web.Response(status=200)
        return self._answer(rec, 0, "ok")

    @staticmethod
    def _check_sign(secret: str, timestamp: str | None, sign: str | None, now: float) -> str | None:
        if not timestamp or not timestamp.isdigit():
            return "invalid timestamp"
        if abs(now * 1000 - int(timestamp)) > 3600 * 1000:
            return "invalid timestamp"  # more than an hour away from the robot's clock
        digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
        expected = base64.b64encode(digest).decode()
        # the query arrives URL-decoded: an unencoded '+' in the signature would have become a space
        if not sign or not hmac.compare_digest(sign, expected):
            return _SIGN_DOC
        return None
