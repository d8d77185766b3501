"""Email: the channel against a loopback SMTP server over real TLS (465-style SSL and STARTTLS), with AUTH."""

from __future__ import annotations

import asyncio
import base64
import socket

import pytest

from shared.alerts.channels.email import Email, from_config
from shared.config.reader import Reader
from shared.credentials.provider import TokenProvider
from shared.credentials.refs import CredentialRef
from shared.local.smtp_sink import SmtpSink
from tests.alert_fixtures import firing, message

USER, PASSWORD = "alerts@example.com", "smtp-canary-password-5"
TOKENS = TokenProvider(environ={"SMTP_PASSWORD": PASSWORD, "WRONG": "not-the-password"})


@pytest.fixture(scope="module", params=["ssl", "starttls"])
def sink(request):
    s = SmtpSink(request.param, users={USER: PASSWORD}).start()
    yield s
    s.stop()


def channel(sink: SmtpSink, **kw) -> Email:
    return Email(
        "mail",
        "127.0.0.1",
        "vpcprobe <alerts@example.com>",
        ("oncall@example.com",),
        port=sink.port,
        security=kw.pop("security", sink.mode),
        username=USER,
        password=CredentialRef("env", kw.pop("password_env", "SMTP_PASSWORD")),
        cc=("lead@example.com",),
        ca_bundle=kw.pop("ca_bundle", sink.ca_path),
        timeout_s=5,
        **kw,
    )


def send(ch: Email, msg):
    return asyncio.run(ch.send(msg, TOKENS))


def test_multipart_mail_with_login_over_tls(sink):
    sink.messages.clear()
    msg = message(firing(["qwen-a", "llm-<eas>"]), status_page_url="https://status.example.com/?a=1&b=2")
    d = send(channel(sink), msg)
    assert d.ok, d.error
    [got] = sink.messages
    assert got["tls"] and got["user"] == USER
    assert got["rcpt_tos"] == ["oncall@example.com", "lead@example.com"]  # to + cc
    mail = got["message"]
    assert mail["From"] == "vpcprobe <alerts@example.com>" and mail["Cc"] == "lead@example.com"
    assert mail["Subject"] == "[vpcprobe] CRITICAL: 2 alerting (2 critical) — llm-<eas>, qwen-a"
    assert mail["Message-ID"] == f"<vpcprobe.{msg.id}@example.com>"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert [p.get_content_type() for p in mail.iter_parts()] == ["text/plain", "text/html"]
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert "🔴 FIRING · CRITICAL — qwen-a (dashscope)" in text and "failed addresses: 127.0.0.2:80" in text
    assert "llm-&lt;eas&gt;" in html and "llm-<eas>" not in html  # escaped
    assert 'href="https://status.example.com/?a=1&amp;b=2"' in html


def test_message_id_is_stable_for_the_same_notifications(sink):
    notes = firing(["a", "b"])
    first = channel(sink).build(message(notes))
    again = channel(sink).build(message(list(reversed(notes))))
    other = channel(sink).build(message(notes[:1]))
    assert first["Message-ID"] == again["Message-ID"] != other["Message-ID"]


def test_wrong_password_is_refused_without_showing_it(sink):
    d = send(channel(sink, password_env="WRONG"), message(firing(["a"])))
    assert not d.ok and not d.ambiguous
    assert d.error == f"127.0.0.1:{sink.port}: login as {USER} refused (535)"


def test_certificate_is_verified(sink):
    d = send(channel(sink, ca_bundle=None), message(firing(["a"])))
    assert not d.ok and not d.ambiguous and "TLS failed" in d.error and "CERTIFICATE_VERIFY_FAILED" in d.error


def test_server_reply_on_data_is_a_definite_failure(sink):
    sink.fail_next(554, "5.7.1 message rejected")
    d = send(channel(sink), message(firing(["a"])))
    assert not d.ok and not d.ambiguous and "answered 554 during send: 5.7.1 message rejected" in d.error


def test_connection_lost_after_data_is_ambiguous(sink):
    sink.messages.clear()
    sink.drop_next()
    d = send(channel(sink), message(firing(["a"])))
    assert not d.ok and d.ambiguous and "during send" in d.error
    assert len(sink.messages) == 1  # it did arrive: that is why the retry keeps the Message-ID


def test_ssl_against_a_starttls_port_fails_fast():
    with SmtpSink("starttls", users={USER: PASSWORD}) as sink:
        d = send(channel(sink, security="ssl"), message(firing(["a"])))
    assert not d.ok and not d.ambiguous and "TLS failed during connect" in d.error


def test_refused_port_is_definite():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        ch = Email("m", "127.0.0.1", "a@example.com", ("b@example.com",), port=s.getsockname()[1], timeout_s=2)
        d = asyncio.run(ch.send(message(firing(["a"])), TOKENS))
    assert not d.ok and not d.ambiguous and "during connect" in d.error


def test_a_reply_quoting_the_auth_plain_blob_is_masked(sink):
    """Was: an SMTP reply quoting the AUTH PLAIN base64 blob reached the logs, stderr and state.json."""
    blob = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    login = base64.b64encode(PASSWORD.encode()).decode()
    sink.fail_next(554, f"5.7.1 rejected; your AUTH PLAIN {blob} / AUTH LOGIN {login} / {PASSWORD}")
    d = send(channel(sink), message(firing(["a"])))
    assert not d.ok
    assert "answered 554 during send: 5.7.1 rejected; your AUTH PLAIN *** / AUTH LOGIN *** / ***" in d.error
    assert blob not in d.error and login not in d.error and PASSWORD not in d.error


def test_a_non_ascii_password_is_a_clear_delivery_failure(sink):
    """smtplib raises UnicodeEncodeError building AUTH PLAIN from a non-ASCII password: the channel says why
    (naming the reference, not the value) and sends nothing."""
    sink.messages.clear()
    tokens = TokenProvider(environ={"SMTP_PASSWORD": "pässwörd-canary"})
    d = asyncio.run(channel(sink).send(message(firing(["a"])), tokens))
    assert not d.ok and not d.ambiguous
    assert d.error == (
        f"127.0.0.1:{sink.port}: cannot log in as {USER}: the password (env:SMTP_PASSWORD) holds a non-ASCII "
        "character and SMTP AUTH carries ASCII only; set an ASCII password"
    )
    assert sink.messages == []


def test_a_host_the_resolver_cannot_encode_is_a_delivery_failure():
    """The config refuses such a host; built directly, the channel still fails cleanly (no lookup is made)."""
    ch = Email("m", "a..b", "a@example.com", ("b@example.com",), port=465, timeout_s=2)
    d = asyncio.run(ch.send(message(firing(["a"])), TOKENS))
    assert not d.ok and not d.ambiguous
    assert d.error == "a..b:465: a character this step cannot encode during connect (IDNA or ASCII)"


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"username": "alérts@example.com"}, "cfg.yaml: mail.username: must be ASCII: SMTP AUTH carries nothing else"),
        ({"host": "smtp..example.com"}, "cfg.yaml: mail.host: 'smtp..example.com' is not a host name"),
        ({"host": "x" * 64 + ".example.com"}, "cfg.yaml: mail.host: 'xxxxxxxx"),
    ],
)
def test_config_refuses_what_smtp_cannot_carry(fields, problem):
    problems: list[str] = []
    data = {
        "host": "smtp.example.com",
        "from": "a@example.com",
        "to": "b@example.com",
        "username": USER,
        "password": "env:SMTP_PASSWORD",
        **fields,
    }
    from_config(Reader(data, "mail", problems, "cfg.yaml"), "mail")
    assert len(problems) == 1 and problems[0].startswith(problem)
