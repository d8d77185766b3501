"""Email's SMTP session against loopback servers that answer as each test needs (aiosmtpd, or a bare listener
for what aiosmtpd cannot do: say nothing, or refuse at the greeting). Every outcome is checked as the whole
Delivery (ok, error, ambiguous, detail), every stage is named in its error, and the headers are read as they
arrived on the wire: the SMTP dialogue's error paths were tested only through `not d.ok` before."""

from __future__ import annotations

import asyncio
import base64
import smtplib
import socket
import threading
from typing import Any

import pytest

from shared import logs
from shared.alerts.channels import Delivery
from shared.alerts.channels.email import Email
from shared.credentials.provider import TokenProvider
from shared.credentials.refs import CredentialRef
from shared.local.smtp_sink import SmtpSink
from tests.alert_fixtures import firing, message

USER, PASSWORD = "alerts@example.com", "smtp-canary-password-71"
SENDER = "vpcprobe <alerts@example.com>"
FIX = "check security: (ssl on 465, starttls on 587)"
DROP = "drop"  # a scripted reply: cut the connection instead of answering
GUARD_S = 10.0  # how long the bare listener waits for a client that never gives up (a mutant without timeout)


@pytest.fixture(autouse=True)
def empty_registry(monkeypatch):
    """Each test starts with no secret known, so the channel's registration of the login really runs: mutmut's
    workers fork from a process whose clean run already registered these values."""
    monkeypatch.setattr(logs, "_known", set())
    monkeypatch.setattr(logs, "_forms", set())
    monkeypatch.setattr(logs, "_known_re", None)


class Scripted(SmtpSink):
    """The loopback SmtpSink answering as told: `replies` maps MAIL, RCPT:<address>, AUTH or DATA to the reply
    the server gives there (str or raw bytes) or DROP; `hide` takes keywords out of the EHLO answer; the names
    clients give in EHLO are kept."""

    def __init__(
        self, mode: str, users: dict[str, str] | None = None, *, replies: dict[str, Any] | None = None,
        hide: tuple[str, ...] = (),
    ) -> None:
        super().__init__(mode, {USER: PASSWORD} if users is None else users)
        self.replies, self.hide = dict(replies or {}), hide
        self.ehlo_names: list[str] = []

    def _scripted(self, server: Any, key: str) -> Any:
        reply = self.replies.get(key)
        if reply == DROP:
            server.transport.abort()
            return "421 dropped"
        return reply

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802 (aiosmtpd's hook)
        session.host_name = hostname
        self.ehlo_names.append(hostname)
        return [r for r in responses if not r[4:].startswith(self.hide)] if self.hide else responses

    async def handle_MAIL(self, server, session, envelope, address, options):  # noqa: N802
        reply = self._scripted(server, "MAIL")
        if reply is None:
            envelope.mail_from = address
            envelope.mail_options.extend(options)
        return reply or "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: N802
        reply = self._scripted(server, f"RCPT:{address}")
        if reply is None:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(options)
        return reply or "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        reply = self._scripted(server, "DATA")
        return reply if reply is not None else await super().handle_DATA(server, session, envelope)

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        self._scripted(server, "AUTH")
        return super()._authenticate(server, session, envelope, mechanism, auth_data)


class Listener:
    """A bare TCP listener on 127.0.0.1 for one client: sends `greeting` (None: nothing at all, not even a TLS
    handshake), then waits for the client to hang up, at most GUARD_S (so a client without a timeout fails
    instead of hanging)."""

    def __init__(self, greeting: bytes | None = None) -> None:
        self.greeting = greeting
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> Listener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(GUARD_S * 2)
        self.sock.close()

    def _serve(self) -> None:
        self.sock.settimeout(GUARD_S)
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(GUARD_S)
            try:
                if self.greeting:
                    conn.sendall(self.greeting)
                while conn.recv(4096):
                    pass
            except OSError:
                pass


def channel(port: int, mode: str, **kw: Any) -> Email:
    return Email(
        "mail",
        kw.pop("host", "127.0.0.1"),
        kw.pop("sender", SENDER),
        kw.pop("to", ("oncall@example.com",)),
        port=port,
        security=mode,
        username=kw.pop("username", USER),
        password=kw.pop("password", CredentialRef("env", "SMTP_PASSWORD")),
        timeout_s=kw.pop("timeout_s", 5),
        **kw,
    )


def send(ch: Email, tokens: TokenProvider | None = None) -> Delivery:
    tokens = tokens or TokenProvider(environ={"SMTP_PASSWORD": PASSWORD})
    return asyncio.run(ch.send(message(firing(["a"])), tokens))


def definite(d: Delivery) -> str:
    """The error of a definite failure: ok is False (not merely falsy), not ambiguous, nothing else set."""
    assert d == Delivery(False, d.error) and d.ok is False and isinstance(d.error, str), d
    return d.error


@pytest.fixture(scope="module", params=["ssl", "starttls"])
def mode(request) -> str:
    return request.param


# --- the session that works: what the server sees --------------------------------------------------------


def test_the_client_names_itself_vpcprobe_in_ehlo(mode):
    """local_hostname: without it smtplib sends the machine's FQDN (a reverse lookup, and the FC host's name)."""
    with Scripted(mode) as sink:
        assert send(channel(sink.port, mode, ca_bundle=sink.ca_path)) == Delivery(True)
    assert sink.ehlo_names and set(sink.ehlo_names) == {"vpcprobe"}  # starttls says EHLO again after TLS


def test_the_headers_arrive_with_their_names_and_values_as_built():
    """The wire form of the headers (names as written, To and Cc joined with ', ', the HTML part's type)."""
    msg = message(firing(["a"]))
    with Scripted("ssl") as sink:
        ch = channel(
            sink.port, "ssl", ca_bundle=sink.ca_path, to=("oncall@example.com", "second@example.com"),
            cc=("lead@example.com", "deputy@example.com"),
        )
        d = asyncio.run(ch.send(msg, TokenProvider(environ={"SMTP_PASSWORD": PASSWORD})))
    assert d == Delivery(True)
    [got] = sink.messages
    assert got["rcpt_tos"] == ["oncall@example.com", "second@example.com", "lead@example.com", "deputy@example.com"]
    head, _, body = got["data"].partition(b"\r\n\r\n")
    names = [line.split(b":", 1)[0].decode() for line in head.split(b"\r\n") if line[:1] not in (b" ", b"\t")]
    assert names == [
        "Subject", "From", "To", "Cc", "Date", "Message-ID", "Auto-Submitted", "MIME-Version", "Content-Type",
    ]
    mail = got["message"]
    assert mail["Subject"] == "[vpcprobe] CRITICAL: 1 alerting (1 critical) — a"
    assert mail["From"] == SENDER
    assert mail["To"] == "oncall@example.com, second@example.com"
    assert mail["Cc"] == "lead@example.com, deputy@example.com"
    assert mail["Date"] == "Sun, 22 Nov 2026 01:01:00 +0000"
    assert mail["Message-ID"] == f"<vpcprobe.{msg.id}@example.com>"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert b'Content-Type: text/plain; charset="utf-8"' in body
    assert b'Content-Type: text/html; charset="utf-8"' in body


@pytest.mark.parametrize(
    ("sender", "domain"),
    [
        ("vpcprobe <>", "vpcprobe.invalid"),  # the null sender (no domain): a placeholder that is never real
        ('"ops@team"@example.com', "example.com"),  # an @ in the quoted local part: the domain is after the last
        ("Ops <alerts@mail.example.com>", "mail.example.com"),
    ],
)
def test_the_message_id_domain_is_the_senders_or_a_placeholder(sender, domain):
    """The Message-ID needs a domain: the sender's (after the last @), else a name that is never a real one."""
    msg = message(firing(["a"]))
    built = Email("m", "127.0.0.1", sender, ("b@example.com",)).build(msg)
    assert built["Message-ID"] == f"<vpcprobe.{msg.id}@{domain}>"


def test_a_username_without_a_password_reference_logs_in_with_an_empty_password():
    """No password reference: smtplib is given "" (not None, not anything else), which this server accepts."""
    with Scripted("ssl", users={USER: ""}) as sink:
        d = send(channel(sink.port, "ssl", ca_bundle=sink.ca_path, password=None), TokenProvider(environ={}))
    assert d == Delivery(True)
    assert [m["user"] for m in sink.messages] == [USER]


def test_some_recipients_refused_is_a_delivery_naming_them_sorted():
    """A partial refusal delivered to the rest: ok, with the refused addresses (sorted) as the detail."""
    refuse = "550 5.1.1 no such user"
    with Scripted("ssl", replies={"RCPT:zed@example.com": refuse, "RCPT:amy@example.com": refuse}) as sink:
        d = send(
            channel(sink.port, "ssl", ca_bundle=sink.ca_path, to=("zed@example.com", "ok@example.com"),
                    cc=("amy@example.com",))
        )
    assert d == Delivery(True, detail="refused recipients: amy@example.com, zed@example.com")
    assert [m["rcpt_tos"] for m in sink.messages] == [["ok@example.com"]]


def test_a_failure_closing_the_socket_after_the_message_was_accepted_is_still_a_delivery(monkeypatch):
    """Once the server said 250 to DATA the message is delivered, whatever happens while hanging up. No real
    socket's close fails, so close is made to raise here (after closing for real)."""
    close = smtplib.SMTP.close

    def failing_close(self):
        close(self)
        raise OSError("close failed")

    with Scripted("ssl") as sink, monkeypatch.context() as patch:
        patch.setattr(smtplib.SMTP, "close", failing_close)
        d = send(channel(sink.port, "ssl", ca_bundle=sink.ca_path))
    assert d == Delivery(True) and d.ok is True
    assert len(sink.messages) == 1


# --- refusals and failures, stage by stage ---------------------------------------------------------------


def test_a_password_that_cannot_be_read_is_a_definite_failure_naming_the_reference():
    """Nothing is sent, and the error names the reference (the value is not there to show)."""
    ch = channel(1, "ssl", password=CredentialRef("env", "SMTP_MISSING"))
    assert definite(send(ch, TokenProvider(environ={}))) == (
        "credential unavailable: env:SMTP_MISSING: environment variable SMTP_MISSING is not set"
    )


def test_a_non_ascii_password_is_a_definite_failure():
    """ok is False, not merely falsy: the outbox and the state file read it as a bool."""
    d = send(channel(1, "ssl"), TokenProvider(environ={"SMTP_PASSWORD": "pässwörd-canary"}))
    assert definite(d) == (
        "127.0.0.1:1: cannot log in as alerts@example.com: the password (env:SMTP_PASSWORD) holds a non-ASCII "
        "character and SMTP AUTH carries ASCII only; set an ASCII password"
    )


def test_a_host_that_cannot_be_encoded_is_a_definite_failure():
    """smtplib's UnicodeError (IDNA here) is never quoted: its text could hold a secret's characters."""
    assert definite(send(channel(465, "ssl", host="a..b"))) == (
        "a..b:465: a character this step cannot encode during connect (IDNA or ASCII)"
    )


def test_a_server_that_says_nothing_times_out_during_connect(mode):
    """timeout_s bounds the wait for the greeting (starttls) or the TLS handshake (ssl). Without a timeout the
    client would wait until the listener gives up (GUARD_S), and fail differently."""
    with Listener() as silent:
        error = definite(send(channel(silent.port, mode, timeout_s=0.3)))
    where = f"127.0.0.1:{silent.port}"
    if mode == "starttls":
        assert error == f"{where}: SMTPServerDisconnected: Connection unexpectedly closed: timed out during connect"
    else:  # the handshake's timeout: TimeoutError with the ssl module's text
        assert error.startswith(f"{where}: TimeoutError: ") and error.endswith("timed out during connect")


def test_a_refusal_in_the_greeting_is_a_definite_failure_during_connect():
    """A 4xx greeting (aiosmtpd always greets 220, so a bare listener says it)."""
    with Listener(b"421 4.3.2 not accepting mail now\r\n") as busy:
        error = definite(send(channel(busy.port, "starttls")))
    assert error == f"127.0.0.1:{busy.port} answered 421 during connect: 4.3.2 not accepting mail now"


@pytest.mark.parametrize(("mode_", "stage"), [("ssl", "connect"), ("starttls", "starttls")])
def test_an_unverifiable_certificate_fails_tls_during_its_stage(mode_, stage):
    """ssl verifies during connect, starttls after the plain greeting: the error says which."""
    with Scripted(mode_) as sink:
        error = definite(send(channel(sink.port, mode_, ca_bundle=None)))
    prefix = f"127.0.0.1:{sink.port}: TLS failed during {stage}: [SSL: CERTIFICATE_VERIFY_FAILED] "
    assert error.startswith(prefix) and sink.messages == []


def test_a_long_tls_error_is_cut_to_200_characters():
    """The host is quoted in a name-mismatch error: a long numeric spelling of 127.0.0.1 (read by inet_aton,
    never looked up) that the certificate does not name makes the error longer than 200 characters."""
    host = "0" * 60 + "177." + "0" * 60 + ".0.1"
    if socket.inet_aton(host) != socket.inet_aton("127.0.0.1"):  # pragma: no cover (a libc without octal forms)
        pytest.skip("this libc does not read the octal form")
    with Scripted("ssl") as sink:
        error = definite(send(channel(sink.port, "ssl", host=host, ca_bundle=sink.ca_path)))
    prefix = f"{host}:{sink.port}: TLS failed during connect: "
    assert error.startswith(prefix + "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: ")
    assert f"mismatch, certificate is not valid for '{host[:40]}" in error and len(error) - len(prefix) == 200


def test_a_server_without_starttls_is_a_definite_failure_saying_so():
    """A plain server on a starttls channel: the mail is not sent in clear, and the fix is named."""
    with Scripted("starttls", hide=("STARTTLS",)) as sink:
        error = definite(send(channel(sink.port, "starttls", ca_bundle=sink.ca_path)))
    assert error == f"127.0.0.1:{sink.port} does not offer STARTTLS; {FIX}"


def test_a_server_without_auth_is_a_definite_failure_during_login(mode):
    """A configured login is never skipped because the server does not offer AUTH."""
    with Scripted(mode, hide=("AUTH",)) as sink:
        error = definite(send(channel(sink.port, mode, ca_bundle=sink.ca_path)))
    assert error == f"127.0.0.1:{sink.port} does not offer LOGIN; {FIX}"


def test_a_wrong_password_is_a_definite_failure_with_the_code():
    """The server's code, not its text (which may quote the login)."""
    with Scripted("ssl") as sink:
        ch = channel(sink.port, "ssl", ca_bundle=sink.ca_path)
        error = definite(send(ch, TokenProvider(environ={"SMTP_PASSWORD": "not-the-password"})))
    assert error == f"127.0.0.1:{sink.port}: login as {USER} refused (535)"


def test_a_connection_lost_during_login_is_definite():
    """Lost before any mail was given: another channel may take the message."""
    with Scripted("ssl", replies={"AUTH": DROP}) as sink:
        error = definite(send(channel(sink.port, "ssl", ca_bundle=sink.ca_path)))
    assert error.startswith(f"127.0.0.1:{sink.port}: SMTPServerDisconnected: Connection unexpectedly closed")
    assert error.endswith(" during login") and sink.messages == []


def test_a_sender_refused_is_a_definite_failure_with_the_reply():
    """A 4xx at MAIL FROM: the code, the stage and the reply."""
    with Scripted("ssl", replies={"MAIL": "451 4.3.0 try again later"}) as sink:
        error = definite(send(channel(sink.port, "ssl", ca_bundle=sink.ca_path)))
    assert error == f"127.0.0.1:{sink.port} answered 451 during send: 4.3.0 try again later"


def test_every_recipient_refused_is_a_definite_failure_naming_them():
    """No recipient took it: a failure naming them in the order given (to, then cc)."""
    refuse = "550 5.1.1 no such user"
    replies = {"RCPT:oncall@example.com": refuse, "RCPT:lead@example.com": refuse}
    with Scripted("ssl", replies=replies) as sink:
        error = definite(send(channel(sink.port, "ssl", ca_bundle=sink.ca_path, cc=("lead@example.com",))))
    assert error == f"127.0.0.1:{sink.port} refused every recipient: oncall@example.com, lead@example.com"


def test_a_non_ascii_address_to_a_server_without_smtputf8_is_a_definite_failure():
    """smtplib's one refusal during send: said in words, not as 'does not offer SEND'."""
    with Scripted("ssl", hide=("SMTPUTF8",)) as sink:
        error = definite(send(channel(sink.port, "ssl", ca_bundle=sink.ca_path, to=("用户@example.com",))))
    assert error == f"127.0.0.1:{sink.port} does not accept non-ASCII addresses (no SMTPUTF8); use ASCII ones"
    assert sink.messages == []


def test_a_long_reply_is_cut_to_200_characters():
    """A server reply reaches the state file and the logs: bounded, exactly 200 characters of it."""
    text = "5.7.1 " + "".join(chr(ord("a") + i % 26) for i in range(300))
    with Scripted("ssl", replies={"DATA": f"554 {text}"}) as sink:
        error = definite(send(channel(sink.port, "ssl", ca_bundle=sink.ca_path)))
    assert error == f"127.0.0.1:{sink.port} answered 554 during send: {text[:200]}"


def test_a_reply_with_a_byte_that_is_not_utf8_is_shown_with_a_replacement_character():
    """A reply is bytes in any encoding: decoded without failing."""
    with Scripted("ssl", replies={"DATA": b"554 5.7.1 bad \xff byte"}) as sink:
        error = definite(send(channel(sink.port, "ssl", ca_bundle=sink.ca_path)))
    assert error == f"127.0.0.1:{sink.port} answered 554 during send: 5.7.1 bad \ufffd byte"


def test_a_reply_line_too_long_for_smtplib_is_a_definite_failure():
    """smtplib's own refusal of an over-long line carries a str, not the bytes of a reply."""
    with Scripted("ssl", replies={"DATA": "554 " + "x" * 9000}) as sink:
        error = definite(send(channel(sink.port, "ssl", ca_bundle=sink.ca_path)))
    assert error == f"127.0.0.1:{sink.port} answered 500 during send: Line too long."


def test_a_reply_quoting_the_login_blob_shows_it_masked_whole():
    """The AUTH PLAIN blob (base64 of \\0user\\0password) is registered with the redactor before the session: a
    reply quoting it shows *** alone, not a blob with only the password's part masked."""
    blob = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    with Scripted("ssl", replies={"DATA": f"554 5.7.1 seen {blob} here"}) as sink:
        error = definite(send(channel(sink.port, "ssl", ca_bundle=sink.ca_path)))
    assert error == f"127.0.0.1:{sink.port} answered 554 during send: 5.7.1 seen *** here"


def test_a_connection_lost_after_data_is_ambiguous_and_names_the_error():
    """The message may have arrived: ambiguous, so it is retried on this channel with the same Message-ID."""
    with Scripted("ssl", replies={"DATA": DROP}) as sink:
        d = send(channel(sink.port, "ssl", ca_bundle=sink.ca_path))
    assert d.ok is False and d.ambiguous is True and d.retry_after_s is None and d.detail is None
    assert d.error.startswith(f"127.0.0.1:{sink.port}: SMTPServerDisconnected: Connection unexpectedly closed")
    assert d.error.endswith(" during send")


@pytest.mark.parametrize("step", ["MAIL", "RCPT:oncall@example.com"])
def test_a_connection_lost_before_data_is_a_definite_failure(step):
    """Nothing was delivered when the connection breaks at MAIL FROM or RCPT TO: a definite failure, so the
    outbox falls back to another channel instead of retrying this one (was: ambiguous, found by mutation
    testing)."""
    with Scripted("ssl", replies={step: DROP}) as sink:
        error = definite(send(channel(sink.port, "ssl", ca_bundle=sink.ca_path)))
        assert sink.messages == []
    assert error.startswith(f"127.0.0.1:{sink.port}: SMTPServerDisconnected: Connection unexpectedly closed")
    assert error.endswith(" during send")


def test_a_long_connection_error_is_cut_to_200_characters(monkeypatch):
    """No socket error is that long, so the connection attempt is made to fail with one (nothing is sent):
    what reaches the state and the logs stays bounded."""
    reason = "".join(chr(ord("a") + i % 26) for i in range(300))

    def refuse(*args: Any, **kwargs: Any) -> socket.socket:
        raise OSError(reason)

    monkeypatch.setattr(smtplib.socket, "create_connection", refuse)
    error = definite(send(channel(2525, "starttls")))
    assert error == f"127.0.0.1:2525: {f'OSError: {reason}'[:200]} during connect"
