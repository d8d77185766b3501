"""Email: SMTP over SSL (465) or STARTTLS (587), login by reference, multipart text + HTML.

Standard library `smtplib`, run in a worker thread: one message per round needs no async
client, it costs nothing at cold start and adds no dependency. Port 25 is blocked on Alibaba
Cloud, so it is refused at config load; Alibaba DirectMail's host is smtpdm.aliyun.com.

The Message-ID is derived from the notifications it carries: a retry of the same message (after
an ambiguous failure) has the same Message-ID, which is the best dedup email offers.
"""

from __future__ import annotations

import asyncio
import html
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, parseaddr
from pathlib import Path

from shared import logs
from shared.alerts.channels import Channel, Delivery, Message, read_ref, read_str_list, render
from shared.alerts.policy import Severity, iso
from shared.config.reader import Reader
from shared.credentials.errors import CredentialError
from shared.credentials.provider import TokenProvider
from shared.credentials.refs import CredentialRef
from shared.errors import excerpt

SECURITY = ("ssl", "starttls")
DEFAULT_PORT = {"ssl": 465, "starttls": 587}
_COLOR = {Severity.CRITICAL: "#d93026", Severity.WARNING: "#e37400"}
_RESOLVED_COLOR = "#188038"


class Email(Channel):
    def __init__(
        self,
        name: str,
        host: str,
        sender: str,
        to: tuple[str, ...],
        *,
        port: int = 465,
        security: str = "ssl",
        username: str | None = None,
        password: CredentialRef | None = None,
        cc: tuple[str, ...] = (),
        ca_bundle: str | None = None,
        send_resolved: bool = True,
        timeout_s: float = 20.0,
    ) -> None:
        self.name, self.host, self.port, self.security = name, host, port, security
        self.sender, self.to, self.cc = sender, to, cc
        self.username, self.password, self.ca_bundle = username, password, ca_bundle
        self.send_resolved, self.timeout_s = send_resolved, timeout_s
        self._tls: ssl.SSLContext | None = None  # built once per warm instance: loading CAs costs ~60 ms

    def _context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context(cafile=self.ca_bundle)
        return self._tls

    async def send(self, message: Message, tokens: TokenProvider) -> Delivery:
        try:
            password = await tokens.get(self.password) if self.password else None
        except CredentialError as exc:
            return Delivery(False, f"credential unavailable: {exc}")
        if self.username and password:
            logs.register_login(self.username, password)  # a server's reply may quote the AUTH PLAIN blob back
            if not password.isascii():  # smtplib would raise UnicodeEncodeError building AUTH PLAIN
                return Delivery(
                    False,
                    f"{self.host}:{self.port}: cannot log in as {self.username}: the password ({self.password}) "
                    "holds a non-ASCII character and SMTP AUTH carries ASCII only; set an ASCII password",
                )
        return await asyncio.to_thread(self._send, self.build(message), password)

    def build(self, message: Message) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = render.title(message)
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        if self.cc:
            msg["Cc"] = ", ".join(self.cc)
        msg["Date"] = format_datetime(message.now)
        domain = parseaddr(self.sender)[1].rpartition("@")[2] or "vpcprobe.invalid"
        msg["Message-ID"] = f"<vpcprobe.{message.id}@{domain}>"
        msg["Auto-Submitted"] = "auto-generated"
        rows = render.all_facts(message)
        msg.set_content(render.plain(message, rows))
        msg.add_alternative(self.html(message, rows), subtype="html")
        return msg

    def html(self, message: Message, rows: list[render.Entry]) -> str:
        e = html.escape
        worst, text = render.counts(message.notifications)
        parts = [
            "<html><body style=\"font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;font-size:14px\">",
            f"<h2 style=\"margin:0 0 12px\">vpcprobe — {e(worst)}: {e(text)}</h2>",
        ]
        for n, pairs in rows:
            color = _RESOLVED_COLOR if n.kind.clears else _COLOR.get(n.severity, "#5f6368")
            parts.append(
                f"<h3 style=\"margin:16px 0 4px;color:{color}\">{e(render.heading(n))}</h3>"
                "<table style=\"border-collapse:collapse\">"
            )
            for key, value in pairs:
                parts.append(
                    f"<tr><td style=\"padding:2px 12px 2px 0;color:#5f6368;vertical-align:top\">{e(key)}</td>"
                    f"<td style=\"padding:2px 0\">{e(value)}</td></tr>"
                )
            parts.append("</table>")
        if message.status_page_url:
            url = e(message.status_page_url, quote=True)
            parts.append(f"<p><a href=\"{url}\">Status page</a></p>")
        parts.append(
            f"<p style=\"color:#5f6368\">Sent by vpcprobe at {e(render.when(iso(message.now), message.timezone))}.</p>"
        )
        parts.append("</body></html>")
        return "\n".join(parts)

    def _send(self, msg: EmailMessage, password: str | None) -> Delivery:
        """Blocking SMTP session. `ambiguous` only when the connection broke after DATA was sent."""
        where = f"{self.host}:{self.port}"
        stage = "connect"
        data_sent = False  # a break at MAIL FROM or RCPT TO delivered nothing: a definite failure
        try:
            context = self._context()
            if self.security == "ssl":
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, local_hostname="vpcprobe", timeout=self.timeout_s, context=context
                )
            else:
                client = smtplib.SMTP(self.host, self.port, local_hostname="vpcprobe", timeout=self.timeout_s)
            try:
                if self.security == "starttls":
                    stage = "starttls"
                    client.starttls(context=context)
                if self.username:
                    stage = "login"
                    client.login(self.username, password or "")
                stage = "send"
                send_data = client.data

                def data(content: bytes) -> tuple[int, bytes]:
                    nonlocal data_sent
                    data_sent = True
                    return send_data(content)

                client.data = data  # type: ignore[method-assign]  # send_message's DATA step, marked
                refused = client.send_message(msg)
                stage = "sent"
            finally:
                try:
                    client.quit()
                except (smtplib.SMTPException, OSError):
                    client.close()
        except smtplib.SMTPAuthenticationError as exc:
            return Delivery(False, f"{where}: login as {self.username} refused ({exc.smtp_code})")
        except smtplib.SMTPNotSupportedError:
            if stage == "send":  # smtplib's one refusal there: non-ASCII addresses need SMTPUTF8
                return Delivery(False, f"{where} does not accept non-ASCII addresses (no SMTPUTF8); use ASCII ones")
            fix = "check security: (ssl on 465, starttls on 587)"
            return Delivery(False, f"{where} does not offer {stage.upper()}; {fix}")
        except UnicodeError:  # never quoted: its text holds the offending characters, maybe a secret's
            return Delivery(False, f"{where}: a character this step cannot encode during {stage} (IDNA or ASCII)")
        except smtplib.SMTPRecipientsRefused as exc:
            return Delivery(False, f"{where} refused every recipient: {', '.join(exc.recipients)}")
        except smtplib.SMTPResponseException as exc:
            raw = exc.smtp_error
            reply = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
            return Delivery(False, f"{where} answered {exc.smtp_code} during {stage}: {render.clean(reply)[:200]}")
        except (ssl.SSLError, ssl.CertificateError) as exc:
            return Delivery(False, f"{where}: TLS failed during {stage}: {render.clean(str(exc))[:200]}")
        except (smtplib.SMTPException, OSError) as exc:
            if stage == "sent":
                return Delivery(True)
            text = render.clean(f"{type(exc).__name__}: {exc}")[:200]
            return Delivery(False, f"{where}: {text} during {stage}", ambiguous=stage == "send" and data_sent)
        if refused:
            return Delivery(True, detail=f"refused recipients: {', '.join(sorted(refused))}")
        return Delivery(True)


def _addresses(r: Reader, key: str, *, required: bool) -> tuple[str, ...]:
    values = read_str_list(r, key)
    if required and not values:
        r.error("is required: one or more email addresses", key)
    for value in values:
        pairs = getaddresses([value])
        if len(pairs) != 1 or "@" not in pairs[0][1] or " " in pairs[0][1]:
            r.error(f"'{value}' is not an email address", key)
    return values


def from_config(r: Reader, name: str) -> Email | None:
    """Validate an `alerts.channels[]` entry of type email."""
    host = r.str("host", required=True)
    if host is not None and not _dns_encodable(host):
        r.error(f"{excerpt(host)} is not a host name (a label is empty or over 63 characters)", "host")
        host = None
    port = r.get("port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
        r.error(f"must be a port number (got {port!r})", "port")
        port = None
    security = r.choice("security", SECURITY, None)
    if security is None:
        security = "starttls" if port == 587 else "ssl"
    if port is None:
        port = DEFAULT_PORT[security]
    if port == 25:
        r.error("port 25 is blocked on Alibaba Cloud; use 465 (security: ssl) or 587 (security: starttls)", "port")
    elif (port, security) in ((465, "starttls"), (587, "ssl")):
        fix = "ssl" if port == 465 else "starttls"
        r.error(f"port {port} expects security: {fix} (465 = SSL from the first byte, 587 = STARTTLS)", "security")
    username = r.str("username")
    if username is not None and not username.isascii():
        r.error("must be ASCII: SMTP AUTH carries nothing else", "username")
    password = read_ref(r, "password", required=False)
    if password is not None and not username:
        r.error("is required with password (the SMTP login name)", "username")
    if username and password is None and "password" not in r.data:
        r.error("is required with username: a reference such as env:SMTP_PASSWORD", "password")
    sender = r.str("from", required=True)
    if sender is not None:
        _check_sender(r, sender)
    to = _addresses(r, "to", required=True)
    cc = _addresses(r, "cc", required=False)
    ca_bundle = r.str("ca_bundle")
    if ca_bundle and not Path(ca_bundle).is_file():
        r.error(f"file '{ca_bundle}' does not exist", "ca_bundle")
    send_resolved = r.bool("send_resolved", True)
    timeout = r.seconds("timeout", 20.0) or 20.0
    if host is None or sender is None or not to:
        return None
    return Email(
        name,
        host,
        sender,
        to,
        port=port,
        security=security,
        username=username,
        password=password,
        cc=cc,
        ca_bundle=ca_bundle,
        send_resolved=send_resolved,
        timeout_s=timeout,
    )


def _dns_encodable(host: str) -> bool:
    """Whether the resolver can be asked about `host` (socket encodes it with IDNA, which refuses bad labels)."""
    try:
        host.encode("idna")
    except UnicodeError:
        return False
    return True


def _check_sender(r: Reader, sender: str) -> None:
    addr = parseaddr(sender)[1]
    if "@" not in addr:
        r.error(f"'{sender}' is not an email address", "from")

