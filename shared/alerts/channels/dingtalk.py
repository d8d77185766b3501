"""DingTalk custom robot: signed webhook, one markdown message per round, errcode checked.

Facts this module is built on: `POST .../robot/send?access_token=..&timestamp=<ms>&sign=<...>`
where sign = urlencode(base64(HmacSHA256(key=secret, msg=f"{timestamp}\\n{secret}"))) and the
timestamp must be within an hour of DingTalk's clock; errors arrive as HTTP 200 with a non-zero
`errcode` (310000 sign/keyword/IP, 300001 bad token, 130101 too fast, 460101 body over 20,000
bytes); 20 messages a minute per robot, then 10 minutes throttled; `msgUuid` makes a retry
idempotent; a mention notifies only if `@<mobile>` is also in the text.

The access token and the URL that carries it are never logged or put in an error.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import ssl
from urllib.parse import quote, urlsplit

import httpx

from shared import logs
from shared.alerts.channels import Channel, Delivery, Message, read_ref, read_str_list, read_url, render
from shared.alerts.policy import Notification, iso
from shared.config.reader import Reader
from shared.credentials.errors import CredentialError
from shared.credentials.provider import TokenProvider
from shared.credentials.refs import CredentialRef

DEFAULT_URL = "https://oapi.dingtalk.com/robot/send"
MAX_BODY = 20_000  # bytes; DingTalk answers 460101 above this
THROTTLE_S = 600.0  # after 130101 the robot is blocked for 10 minutes
_MOBILE = re.compile(r"^\+?[0-9][0-9-]{4,19}\Z")
_HINTS = {
    310000: "check the signing secret (secret:), the robot's keywords and its IP allow-list",
    300001: "the access token is wrong: use only the value after access_token= in the robot's webhook URL",
    300005: "the access token is not valid for this robot (an external group's robot?)",
    130101: "more than 20 messages a minute: DingTalk blocks this robot for 10 minutes",
    460101: "the message is over 20,000 bytes",
}


# httpx logs every request URL at INFO ("HTTP Request: POST https://...?access_token=..."), and FC's
# runtime logs INFO: redact on the httpx logger itself, whatever handlers exist later.
logs.guard_stdlib_logging("httpx")


def sign(secret: str, timestamp_ms: str) -> str:
    """DingTalk's signature (before URL encoding): base64(HmacSHA256(secret, "<ts>\\n<secret>"))."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class DingTalk(Channel):
    rate_limit = (19, 60.0)  # stay under DingTalk's 20 a minute, counted across rounds and instances

    def __init__(
        self,
        name: str,
        access_token: CredentialRef,
        secret: CredentialRef | None = None,
        *,
        url: str = DEFAULT_URL,
        at_mobiles: tuple[str, ...] = (),
        at_user_ids: tuple[str, ...] = (),
        at_all: bool = False,
        send_resolved: bool = True,
        timeout_s: float = 10.0,
        max_bytes: int = MAX_BODY,
    ) -> None:
        self.name, self.access_token, self.secret, self.url = name, access_token, secret, url
        self.at_mobiles, self.at_user_ids, self.at_all = at_mobiles, at_user_ids, at_all
        self.send_resolved, self.timeout_s, self.max_bytes = send_resolved, timeout_s, max_bytes
        self._tls: ssl.SSLContext | None = None  # built once per warm instance: loading CAs costs ~60 ms

    def _verify(self) -> ssl.SSLContext | bool:
        if not self.url.startswith("https://"):
            return False
        if self._tls is None:
            self._tls = httpx.create_ssl_context()
        return self._tls

    async def send(self, message: Message, tokens: TokenProvider) -> Delivery:
        try:
            token = await tokens.get(self.access_token)
            secret = await tokens.get(self.secret) if self.secret else None
        except CredentialError as exc:
            return Delivery(False, f"credential unavailable: {exc}")
        query = "access_token=" + quote(token, safe="")
        if secret:
            ts = str(int(message.now.timestamp() * 1000))
            query += f"&timestamp={ts}&sign={quote(sign(secret, ts), safe='')}"
        body, dropped = self.body(message)
        host = urlsplit(self.url).netloc
        detail = f"{dropped} entries summarized to fit {self.max_bytes} bytes" if dropped else None
        timeout = httpx.Timeout(self.timeout_s, connect=min(5.0, self.timeout_s))
        try:
            async with httpx.AsyncClient(timeout=timeout, verify=self._verify()) as client:
                resp = await client.post(
                    f"{self.url}?{query}", content=body, headers={"Content-Type": "application/json; charset=utf-8"}
                )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            return Delivery(False, f"cannot connect to {host}: {_why(exc)}")
        except httpx.HTTPError as exc:  # sent, but no answer: it may have been posted
            return Delivery(False, f"no answer from {host}: {_why(exc)}", ambiguous=True)
        if resp.status_code != 200:
            return Delivery(False, f"{host} answered HTTP {resp.status_code}", ambiguous=resp.status_code >= 500)
        try:
            data = resp.json()
            code = int(data.get("errcode", -1))
        except (ValueError, TypeError, AttributeError):
            return Delivery(False, f"{host} answered HTTP 200 without a DingTalk JSON body", ambiguous=True)
        if code == 0:
            return Delivery(True, detail=detail)
        errmsg = render.clean(str(data.get("errmsg", "")))[:300]
        hint = _HINTS.get(code)
        return Delivery(
            False,
            f"DingTalk errcode {code}: {errmsg}" + (f" ({hint})" if hint else ""),
            retry_after_s=THROTTLE_S if code == 130101 else None,
        )

    # --- the message -------------------------------------------------------------------------------

    def body(self, message: Message) -> tuple[bytes, int]:
        """The JSON body, under max_bytes: entries that don't fit are named in a closing note (never a
        second message: a burst is what gets a robot throttled). Returns (body, entries summarized)."""
        notes = list(message.notifications)
        alerting = any(not n.kind.clears for n in notes)
        mentions = [f"@{m}" for m in (*self.at_mobiles, *self.at_user_ids)] if alerting else []
        head = f"#### {render.title(message)}\n" + ("\n" + " ".join(mentions) + "\n" if mentions else "")
        foot = "\n---\n" + (f"[Status page]({message.status_page_url}) · " if message.status_page_url else "")
        foot += f"sent by vpcprobe at {render.when(iso(message.now), message.timezone)}"
        shown: set[str] = set()
        blocks = [self._entry(n, message, shown) for n in notes]
        at = {
            "atMobiles": list(self.at_mobiles) if alerting else [],
            "atUserIds": list(self.at_user_ids) if alerting else [],
            "isAtAll": self.at_all and alerting,
        }

        def encode(k: int) -> bytes:
            rest = notes[k:]
            note = _more(rest, 1500) if rest else ""
            text = head + "".join(blocks[:k]) + note + foot
            payload = {
                "msgtype": "markdown",
                "markdown": {"title": render.title(message)[:100], "text": text},
                "at": at,
                "msgUuid": message.id,
            }
            return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()

        # Grow while it fits (sizes are additive enough to estimate), then confirm on the real bytes.
        base = len(encode(0))
        k, size = 0, base
        for block in blocks:
            grow = len(json.dumps(block, ensure_ascii=False).encode()) - 2
            if size + grow > self.max_bytes:
                break
            size += grow
            k += 1
        body = encode(k)
        while len(body) > self.max_bytes and k > 0:
            k -= 1
            body = encode(k)
        return body, len(notes) - k

    def _entry(self, n: Notification, message: Message, shown: set[str]) -> str:
        lines = [f"\n##### {render.heading(n)}\n"]
        lines += [f"- **{k}**: {v}" for k, v in render.facts(n, message, shown)]
        return "\n".join(lines) + "\n"


def _more(rest: list[Notification], budget: int) -> str:
    names, used = [], 0
    for n in rest:
        used += len(n.target) + 2
        if used > budget:
            break
        names.append(n.target)
    tail = f", … ({len(rest) - len(names)} more)" if len(names) < len(rest) else ""
    return (
        f"\n> **{len(rest)} more not shown** (DingTalk's 20,000-byte limit; see the logs or the status page): "
        + ", ".join(names)
        + tail
        + "\n"
    )


def _why(exc: Exception) -> str:
    """An httpx error without its URL (the URL carries the access token)."""
    text = str(exc).split(" for url ")[0]
    return render.clean(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)[:200]


def from_config(r: Reader, name: str) -> DingTalk | None:
    """Validate an `alerts.channels[]` entry of type dingtalk."""
    token = read_ref(r, "access_token", required=True)
    secret = read_ref(r, "secret", required=False)
    url = read_url(r, "url", DEFAULT_URL)
    mobiles = read_str_list(r, "at_mobiles")
    for m in mobiles:
        if not _MOBILE.match(m):
            r.error(f"'{m}' is not a mobile number (digits, optional leading + and dashes)", "at_mobiles")
    user_ids = read_str_list(r, "at_user_ids")
    at_all = r.bool("at_all", False)
    send_resolved = r.bool("send_resolved", True)
    timeout = r.seconds("timeout", 10.0) or 10.0
    if token is None:
        return None
    return DingTalk(
        name,
        token,
        secret,
        url=url,
        at_mobiles=mobiles,
        at_user_ids=user_ids,
        at_all=at_all,
        send_resolved=send_resolved,
        timeout_s=timeout,
    )
