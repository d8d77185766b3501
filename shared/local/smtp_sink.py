"""A local SMTP server that accepts mail over TLS and keeps it (tests and the demo).

Two modes, like real submission servers: `ssl` (TLS from the first byte, port 465 style) and
`starttls` (plain greeting, STARTTLS required before AUTH, port 587 style). AUTH PLAIN/LOGIN is
checked against `users`; the certificate comes from a throwaway CA (`ca_path`) so the client
verifies it for real. Callers can make the next DATA fail with an SMTP code, or cut the
connection after the message arrived (the ambiguous case). Needs aiosmtpd (a dev/demo dependency).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import ssl
import tempfile
import threading
import warnings
from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

MODES = ("ssl", "starttls")
logging.getLogger("mail.log").setLevel(logging.ERROR)  # aiosmtpd's per-connection chatter


class _SockController(Controller):
    """aiosmtpd's threaded controller on a socket we bound (port 0 works, and no bind race)."""

    def __init__(self, handler: Any, sock: socket.socket, **kwargs: Any) -> None:
        self._sock = sock
        host, port = sock.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port, **kwargs)

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)

    def factory(self) -> Any:
        # In ssl mode TLS is on from the first byte, which aiosmtpd's AUTH-without-STARTTLS warning can't see.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
            return super().factory()


class SmtpSink:
    def __init__(
        self,
        mode: str = "ssl",
        users: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        *,
        on_message: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.mode, self.users, self.host = mode, dict(users or {}), host
        self.on_message = on_message
        self.port = 0
        self.messages: list[dict[str, Any]] = []
        self.ca_path: str | None = None
        self._faults: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._controller: _SockController | None = None

    def fail_next(self, code: int = 451, text: str = "4.3.0 injected failure", times: int = 1) -> None:
        with self._lock:
            self._faults.append({"reply": f"{code} {text}", "times": times})

    def drop_next(self, times: int = 1) -> None:
        """Keep the next message, then close the connection instead of answering 250."""
        with self._lock:
            self._faults.append({"drop": True, "times": times})

    def start(self) -> SmtpSink:
        ca = trustme.CA()
        cert = ca.issue_cert(self.host, "localhost")
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(server_ctx)
        fd, self.ca_path = tempfile.mkstemp(prefix="smtp-sink-ca-", suffix=".pem")
        with os.fdopen(fd, "wb") as fh:
            fh.write(ca.cert_pem.bytes())
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        common: dict[str, Any] = {
            "server_hostname": "smtp.vpcprobe.test",
            "authenticator": self._authenticate,
            "auth_required": bool(self.users),
            "ready_timeout": 10.0,
        }
        if self.mode == "ssl":
            self._controller = _SockController(
                self, sock, ssl_context=server_ctx, auth_require_tls=False, **common
            )
        else:
            self._controller = _SockController(
                self, sock, tls_context=server_ctx, require_starttls=True, auth_require_tls=True, **common
            )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self.ca_path:
            with contextlib.suppress(OSError):
                os.unlink(self.ca_path)

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            user, password = auth_data.login.decode(), auth_data.password.decode()
            if user in self.users and self.users[user] == password:
                return AuthResult(success=True, auth_data=user)
        return AuthResult(success=False, handled=False)

    def _take_fault(self) -> dict[str, Any] | None:
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            fault["times"] -= 1
            if fault["times"] <= 0:
                self._faults.pop(0)
            return dict(fault)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's hook name)
        fault = self._take_fault()
        if fault and "reply" in fault:
            return fault["reply"]
        raw = envelope.original_content or envelope.content
        data = raw if isinstance(raw, bytes) else raw.encode()
        parsed: EmailMessage = message_from_bytes(data, policy=policy.default)  # type: ignore[assignment]
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "data": data,
            "message": parsed,
            "user": session.auth_data,
            "tls": session.ssl is not None or self.mode == "ssl",
        }
        with self._lock:
            self.messages.append(record)
        if self.on_message is not None:
            self.on_message(record)
        if fault and fault.get("drop"):
            server.transport.abort()
            return "421 connection dropped"
        return "250 2.0.0 Message accepted for delivery"
