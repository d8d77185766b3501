"""DingTalk's delivery outcomes, byte for byte: what is sent (query, signature, headers, timeouts) and what every
kind of answer or failure becomes, against a loopback endpoint that answers exactly what a test scripts.

Written from the mutation run of issue 11 part 5: the robot receiver (shared/local/dingtalk_receiver.py) decodes
the query and answers only well-formed JSON, so the error paths and the exact encoding needed their own server.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import quote

import httpx
import pytest

from shared.alerts.channels import Delivery
from shared.alerts.channels.dingtalk import THROTTLE_S, DingTalk, _why, sign
from shared.credentials.provider import TokenProvider
from shared.credentials.refs import CredentialRef
from tests.alert_fixtures import at, firing, message

# a token and a secret with the characters URL encoding is about ('/' '+' '=')
TOKEN, SECRET = "robot/mutant+token=51", "SECmutant/signing+secret=52"
TOKENS = TokenProvider(environ={"DT_TOKEN": TOKEN, "DT_SECRET": SECRET})
GUARD_S = 20.0  # a send that hangs fails the test instead of stalling the suite (no outcome depends on it)
OK = b'{"errcode":0,"errmsg":"ok"}'


@dataclass
class Request:
    target: str  # the request target as sent: path and raw (still encoded) query
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


Action = Callable[["Endpoint", socket.socket], None]


def answer(status: int, body: bytes = OK, content_type: str = "application/json") -> Action:
    def act(_: Endpoint, conn: socket.socket) -> None:
        head = f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        conn.sendall(head.encode() + b"Connection: close\r\n\r\n" + body)

    return act


def cut_after(raw: bytes, *, reset: bool = False) -> Action:
    """Send `raw` (part of an answer, or nothing), then close the connection, with a RST if `reset`."""

    def act(_: Endpoint, conn: socket.socket) -> None:
        if raw:
            conn.sendall(raw)
        if reset:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    return act


def hold(endpoint: Endpoint, _: socket.socket) -> None:
    """Read the request and never answer (until the test is over)."""
    endpoint.released.wait()


@dataclass
class Endpoint:
    """One connection at a time: read a whole request, record it, run the next scripted action (default: ok)."""

    script: list[Action] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}/robot/send"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self.requests.append(_read_request(conn))
                (self.script.pop(0) if self.script else answer(200))(self, conn)

    def stop(self) -> None:
        self.released.set()
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.sock.close()
        self.thread.join(timeout=10)


def _read_request(conn: socket.socket) -> Request:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("the client closed before sending a whole request")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    request_line, *lines = head.decode("latin-1").split("\r\n")
    headers = [(k.strip(), v.strip()) for k, v in (line.split(":", 1) for line in lines)]
    length = int(next(v for k, v in headers if k.lower() == "content-length"))
    while len(body) < length:
        body += conn.recv(65536)
    return Request(request_line.split(" ")[1], headers, body)


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    e = Endpoint()
    yield e
    e.stop()


def channel(url: str, **kw) -> DingTalk:
    secret = kw.pop("secret", CredentialRef("env", "DT_SECRET"))
    return DingTalk("ops", CredentialRef("env", kw.pop("token_env", "DT_TOKEN")), secret, url=url, **kw)


def send(ch: DingTalk, msg=None, tokens: TokenProvider = TOKENS) -> Delivery:
    return asyncio.run(asyncio.wait_for(ch.send(msg or message(firing(["a"])), tokens), GUARD_S))


def documented_sign(secret: str, timestamp_ms: str) -> str:
    """DingTalk's algorithm as its documentation gives it, computed here independently of the module."""
    mac = hmac.new(secret.encode("utf-8"), (timestamp_ms + "\n" + secret).encode("utf-8"), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


# --- what is sent ----------------------------------------------------------------------------------------


def test_the_query_carries_the_token_timestamp_and_signature_each_url_encoded_in_full(endpoint):
    """'/', '+' and '=' must all be escaped: a '+' left raw decodes to a space, a raw '/' is not what the
    documentation's urlEncode gives (a signature is found whose base64 has both '/' and '+')."""
    now = next(
        t for t in (at(1) + timedelta(milliseconds=i) for i in range(5000))
        if {"/", "+"} <= set(documented_sign(SECRET, str(int(t.timestamp() * 1000))))
    )
    ts = str(int(now.timestamp() * 1000))
    assert ts.endswith(f"{now.microsecond // 1000:03d}")  # milliseconds, not seconds
    assert sign(SECRET, ts) == documented_sign(SECRET, ts)
    assert send(channel(endpoint.url), message(firing(["a"]), now=now)) == Delivery(True)
    [req] = endpoint.requests
    expected_sign = documented_sign(SECRET, ts).replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
    assert req.target == f"/robot/send?access_token=robot%2Fmutant%2Btoken%3D51&timestamp={ts}&sign={expected_sign}"


def test_an_unsigned_robot_gets_the_encoded_token_alone(endpoint):
    assert send(channel(endpoint.url, secret=None)) == Delivery(True)
    assert endpoint.requests[0].target == "/robot/send?access_token=" + quote(TOKEN, safe="")


def test_the_body_is_the_markdown_json_with_its_content_type(endpoint):
    """The body is the channel's own JSON, sent as DingTalk's documentation sends it: JSON in UTF-8."""
    ch, msg = channel(endpoint.url), message(firing(["a", "b"]))
    assert send(ch, msg) == Delivery(True)
    [req] = endpoint.requests
    assert req.header("Content-Type") == "application/json; charset=utf-8"
    assert req.body == ch.body(msg)[0] and json.loads(req.body)["msgUuid"] == msg.id


def test_the_client_gets_the_channel_timeout_and_a_connect_timeout_of_at_most_5_s(endpoint, monkeypatch):
    """Read/write/pool wait timeout_s; connecting waits min(5 s, timeout_s): an unreachable robot fails fast."""
    clients: list[httpx.AsyncClient] = []

    class Recording(httpx.AsyncClient):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            clients.append(self)

    monkeypatch.setattr(httpx, "AsyncClient", Recording)
    for timeout_s in (7.0, 2.0):
        assert send(channel(endpoint.url, timeout_s=timeout_s)) == Delivery(True)
    assert [c.timeout for c in clients] == [httpx.Timeout(7.0, connect=5.0), httpx.Timeout(2.0, connect=2.0)]


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_a_warm_channel_loads_the_ca_bundle_once_however_many_sends(scheme, monkeypatch):
    """Loading the CAs costs ~60 ms a send: the channel builds its TLS context once (none for http://) and
    hands it to every client."""
    loads: list[object] = []
    load = ssl.SSLContext.load_verify_locations

    def counting(self, *args, **kwargs):
        loads.append(args or kwargs)
        return load(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counting)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, not listening: refused before any TLS
        ch = channel(f"{scheme}://127.0.0.1:{s.getsockname()[1]}/robot/send")
        outcomes = [send(ch) for _ in range(3)]
    assert all(not d.ok and d.error.startswith("cannot connect to 127.0.0.1:") for d in outcomes)
    assert len(loads) == (1 if scheme == "https" else 0)


# --- what each answer becomes ------------------------------------------------------------------------------

HINTED = {
    310000: "check the signing secret (secret:), the robot's keywords and its IP allow-list",
    300001: "the access token is wrong: use only the value after access_token= in the robot's webhook URL",
    300005: "the access token is not valid for this robot (an external group's robot?)",
    460101: "the message is over 20,000 bytes",
}


@pytest.mark.parametrize("status,ambiguous", [(500, True), (503, True), (499, False), (404, False), (201, False)])
def test_an_http_error_is_ambiguous_only_from_500_up(endpoint, status, ambiguous):
    """A 5xx may come after the robot posted (retry the same message); a 4xx never posted anything."""
    endpoint.script.append(answer(status))
    assert send(channel(endpoint.url)) == Delivery(False, f"{endpoint.host} answered HTTP {status}", ambiguous)


@pytest.mark.parametrize("body", [b"<html>bad gateway</html>", b"[0]", b'{"errcode":"x1"}', b'{"errcode":null}', b""])
def test_http_200_without_a_dingtalk_json_body_is_ambiguous(endpoint, body):
    """A proxy's page or a garbled body on 200: the message may have been posted, so it is not final."""
    endpoint.script.append(answer(200, body, "text/html"))
    expected = Delivery(False, f"{endpoint.host} answered HTTP 200 without a DingTalk JSON body", ambiguous=True)
    assert send(channel(endpoint.url)) == expected


@pytest.mark.parametrize("code", sorted(HINTED))
def test_each_known_errcode_names_its_remedy_and_is_final(endpoint, code):
    endpoint.script.append(answer(200, json.dumps({"errcode": code, "errmsg": "refused"}).encode()))
    expected = Delivery(False, f"DingTalk errcode {code}: refused ({HINTED[code]})")
    assert send(channel(endpoint.url)) == expected


def test_the_throttle_errcode_asks_for_a_ten_minute_pause_and_its_neighbour_does_not(endpoint):
    endpoint.script += [
        answer(200, b'{"errcode":130101,"errmsg":"send too fast"}'),
        answer(200, b'{"errcode":130102,"errmsg":"other"}'),
    ]
    hint = "more than 20 messages a minute: DingTalk blocks this robot for 10 minutes"
    assert THROTTLE_S == 600.0
    assert send(channel(endpoint.url)) == Delivery(False, f"DingTalk errcode 130101: send too fast ({hint})",
                                                   retry_after_s=600.0)
    assert send(channel(endpoint.url)) == Delivery(False, "DingTalk errcode 130102: other")


def test_an_unknown_errcode_without_errmsg_is_shown_bare(endpoint):
    endpoint.script.append(answer(200, b'{"errcode":40035}'))
    assert send(channel(endpoint.url)) == Delivery(False, "DingTalk errcode 40035: ")


def test_a_json_answer_without_errcode_is_a_refusal_coded_minus_1(endpoint):
    """Not ok (only errcode 0 is), and not ambiguous: DingTalk answered, in JSON, without success."""
    endpoint.script.append(answer(200, b'{"errmsg":"no code"}'))
    assert send(channel(endpoint.url)) == Delivery(False, "DingTalk errcode -1: no code")


def test_a_long_errmsg_is_cut_at_300_characters(endpoint):
    endpoint.script.append(answer(200, json.dumps({"errcode": 40035, "errmsg": "e" * 299 + "fg" + "h" * 50}).encode()))
    assert send(channel(endpoint.url)) == Delivery(False, "DingTalk errcode 40035: " + "e" * 299 + "f")


def test_errcode_0_is_success_whatever_the_errmsg(endpoint):
    endpoint.script.append(answer(200, b'{"errcode":0,"errmsg":"anything"}'))
    assert send(channel(endpoint.url)) == Delivery(True)


# --- failures before or during the answer ---------------------------------------------------------------------


def test_a_missing_credential_is_a_definite_failure_naming_the_reference(endpoint):
    for tokens, ref in ((TokenProvider(environ={}), "env:DT_TOKEN"), (TokenProvider(environ={"DT_TOKEN": TOKEN}),
                                                                     "env:DT_SECRET")):
        d = send(channel(endpoint.url), tokens=tokens)
        assert d.ok is False and d.ambiguous is False and d.retry_after_s is None
        assert d.error.startswith(f"credential unavailable: {ref}")
    assert endpoint.requests == []


def test_a_refused_connection_is_definite_and_says_why():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        d = send(channel(f"http://127.0.0.1:{port}/robot/send"))
    assert d == Delivery(False, f"cannot connect to 127.0.0.1:{port}: ConnectError: All connection attempts failed")


def test_a_connect_that_never_completes_times_out_as_definite():
    """A listener whose accept queue is full drops the SYN: the connect hangs until the connect timeout."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    fillers = [socket.socket() for _ in range(4)]
    try:
        for f in fillers:
            f.setblocking(False)
            f.connect_ex(("127.0.0.1", port))
        d = send(channel(f"http://127.0.0.1:{port}/robot/send", timeout_s=0.3))
    finally:
        for f in fillers:
            f.close()
        listener.close()
    assert d == Delivery(False, f"cannot connect to 127.0.0.1:{port}: ConnectTimeout")


def test_no_answer_in_time_is_ambiguous(endpoint):
    endpoint.script.append(hold)
    d = send(channel(endpoint.url, timeout_s=0.3))
    assert d == Delivery(False, f"no answer from {endpoint.host}: ReadTimeout", ambiguous=True)


@pytest.mark.parametrize("action,why", [
    (cut_after(b""), "RemoteProtocolError: Server disconnected without sending a response."),
    (cut_after(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"errcode\""),
     "RemoteProtocolError: peer closed connection without sending complete message body "
     "(received 10 bytes, expected 100)"),
])
def test_a_connection_closed_before_the_whole_answer_is_ambiguous(endpoint, action, why):
    """The robot had the whole request: it may have posted the message."""
    endpoint.script.append(action)
    assert send(channel(endpoint.url)) == Delivery(False, f"no answer from {endpoint.host}: {why}", ambiguous=True)


@pytest.mark.parametrize("raw", [b"", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"])
def test_a_connection_reset_before_or_mid_answer_is_ambiguous(endpoint, raw):
    endpoint.script.append(cut_after(raw, reset=True))
    d = send(channel(endpoint.url))
    assert d.ok is False and d.ambiguous is True and d.retry_after_s is None
    prefix = f"no answer from {endpoint.host}: "
    assert d.error.startswith(prefix) and d.error.split(": ", 2)[1] in ("ReadError", "RemoteProtocolError")
    assert TOKEN not in d.error and quote(TOKEN, safe="") not in d.error


# --- what of an httpx error may be shown -------------------------------------------------------------------


def test_why_drops_the_url_and_everything_after_it():
    """httpx's status errors end in ' for url <url>', and the URL carries the access token."""
    exc = httpx.ReadError(f"connection reset by peer for url https://oapi.dingtalk.com/robot/send?access_token={TOKEN}")
    assert _why(exc) == "ReadError: connection reset by peer"


def test_why_is_the_error_type_alone_when_the_error_has_no_text():
    assert _why(httpx.ReadTimeout("")) == "ReadTimeout"


def test_why_is_at_most_200_characters():
    assert _why(httpx.ReadError("x" * 190 + "yz" + "w" * 100)) == "ReadError: " + "x" * 189
