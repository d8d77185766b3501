"""Redaction: no secret reaches a log line, by field name or by value."""

import asyncio
import base64
import io
import json
import re
from urllib.parse import quote, quote_plus

import pytest

from shared import logs
from shared.credentials.provider import TokenProvider
from shared.gateway.errors import GatewayError
from shared.gateway.keys import KeyRing


def _capture(**fields) -> str:
    stream = io.StringIO()
    logs.configure(stream=stream)
    logs.get_logger().info("evt", **fields)
    logs.configure(stream=None)
    return stream.getvalue()


def test_secret_named_fields_are_masked():
    line = json.loads(_capture(authorization="Bearer abc", api_key="k1", headers={"X-Token": "t0k"}, plain="ok"))
    assert line["authorization"] == "***" and line["api_key"] == "***" and line["headers"]["X-Token"] == "***"
    assert line["plain"] == "ok"


def test_patterns_inside_text_are_masked():
    text = _capture(
        msg="POST https://oapi.dingtalk.com/robot/send?access_token=abcdef123&timestamp=1&sign=xyz%3D failed",
        other="header Authorization: Bearer sk-live-123456789 and Authorization: rawtoken123",
    )
    for secret in ("abcdef123", "xyz%3D", "sk-live-123456789", "rawtoken123"):
        assert secret not in text
    assert "timestamp=1" in text


def test_registered_values_are_masked_anywhere():
    logs.register_secret("canary-VALUE-42")
    text = _capture(msg="upstream said: bad key canary-VALUE-42 (x)", nested=[{"a": "canary-VALUE-42"}])
    assert "canary-VALUE-42" not in text and text.count("***") >= 2


def test_exceptions_are_rendered_redacted():
    logs.register_secret("hunter2-secret")
    text = _capture(error=RuntimeError("login failed for hunter2-secret"))
    assert "hunter2-secret" not in text and "RuntimeError" in text


# --- secrets in every form (issue 11) --------------------------------------------------------------------

# Written out here, independently of shared/logs.py, so a form the redactor forgot makes these fail.
def encoded_forms(secret: str) -> dict[str, str]:
    data = secret.encode()
    b64 = base64.b64encode(data).decode()
    return {
        "exact": secret,
        "quote": quote(secret, safe=""),
        "quote-slash-safe": quote(secret),
        "quote_plus": quote_plus(secret),
        "quote-lowercase": re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(secret, safe="")),
        "json": json.dumps(secret)[1:-1],
        "json-ascii-off": json.dumps(secret, ensure_ascii=False)[1:-1],
        "json-slash-escaped": json.dumps(secret)[1:-1].replace("/", "\\/"),
        "base64": b64,
        "base64-unpadded": b64.rstrip("="),
        "base64-urlsafe": base64.urlsafe_b64encode(data).decode(),
        "base64-urlsafe-unpadded": base64.urlsafe_b64encode(data).decode().rstrip("="),
        "hex": data.hex(),
        "HEX": data.hex().upper(),
    }


SECRET = 'sk-Form+Canary/ü"=9'  # '+', '/', '=', '"' and a non-ASCII letter: every encoding differs


@pytest.mark.parametrize("form", list(encoded_forms(SECRET)))
def test_every_encoded_form_of_a_registered_secret_is_masked(form):
    logs.register_secret(SECRET)
    text = encoded_forms(SECRET)[form]
    assert text != ""
    out = logs.redact_text(f"upstream said [{text}] (x)")
    assert text not in out and out == "upstream said [***] (x)"


@pytest.mark.parametrize("prefix", [b"", b"a", b"ab", b"abc", b"user:"])
@pytest.mark.parametrize("alphabet", ["std", "urlsafe"])
def test_base64_of_a_longer_text_hides_the_secret_at_any_alignment(prefix, alphabet):
    """An Authorization: Basic value, a JSON document in base64: the secret sits at any byte offset."""
    secret = "Shifted-Canary-Secret-0123456789"
    logs.register_secret(secret)
    encode = base64.b64encode if alphabet == "std" else base64.urlsafe_b64encode
    blob = encode(prefix + secret.encode() + b"|tail").decode()
    out = logs.redact_text(f"reply: {blob}")
    assert "***" in out
    # what is left of the blob decodes to at most 2 bytes of the secret at each end
    left = [part for part in out.removeprefix("reply: ").split("***") if part]
    assert sum(len(part) for part in left) <= len(blob) - 4 * (len(secret) - 4) // 3


def test_the_auth_plain_blob_of_an_smtp_login_is_masked_whole():
    user, password = "alerts@example.com", "smtp-Canary+pw/9"
    logs.register_login(user, password)
    blob = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    out = logs.redact_text(f"535 5.7.8 authentication failed for AUTH PLAIN {blob}")
    assert out == "535 5.7.8 authentication failed for AUTH PLAIN ***"
    authzid = base64.b64encode(f"{user}\0{user}\0{password}".encode()).decode()
    assert logs.redact_text(authzid) == "***"


def test_whitespace_around_a_registered_secret_does_not_hide_it():
    logs.register_secret("newline-Canary-key-42\n")
    assert logs.redact_text("Bearer x newline-Canary-key-42 y") .count("newline-Canary") == 0
    assert logs.redact_text(quote("newline-Canary-key-42\n", safe="")) == "***"


def test_a_secret_inside_another_is_masked_by_the_longer_one():
    logs.register_secret("nested-Canary")
    logs.register_secret("nested-Canary-longer-value")
    assert logs.redact_text("a nested-Canary-longer-value b nested-Canary c") == "a *** b *** c"


def test_short_values_and_innocent_text_are_left_alone():
    logs.register_secret("abc")  # under 4 characters: masking it would eat ordinary words
    logs.register_secret("Innocent-Canary-77")
    text = "GET /abc HTTP/1.1 200 in 3 ms; request id 0f1e2d3c; SW5ub2 QUJD"
    assert logs.redact_text(text) == text


def test_a_long_sts_token_registers_and_is_masked():
    token = "CAIS" + "9QJ1q6Ft5B2yfSjIr5bHKtXpgPzhgu5L1Yi" * 40  # 1,400 characters: no recursion limit
    logs.register_secret(token)
    assert logs.redact_text(f"x-acs-token {token} and {base64.b64encode(token.encode()).decode()}") == (
        "x-acs-token *** and ***"
    )


def test_registering_the_same_secret_again_is_cheap_and_changes_nothing():
    logs.register_secret("again-Canary-value")
    before = logs._known_re
    logs.register_secret("again-Canary-value")
    assert logs._known_re is before


def test_the_gateways_401_hint_reaches_the_caller_whole():
    """Was: "send 'Authorization: *** *** key>'": the patterns took the placeholder for a credential."""
    with pytest.raises(GatewayError) as info:
        asyncio.run(KeyRing([], TokenProvider(environ={})).authenticate(None))
    body = json.loads(info.value.body())  # the body is what redaction has seen
    assert body["error"]["message"] == (
        "no API key: send 'Authorization: Bearer <gateway key>' (or the raw key, EAS style)"
    )


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("Authorization: Bearer sk-live-0123456789", "Authorization: Bearer ***"),
        ("authorization: Basic dXNlcjpwYXNzd29yZA==", "authorization: Basic ***"),  # was: the scheme masked only
        ('{"Authorization": "Bearer tok-9f8e7d"}', '{"Authorization": "Bearer ***"}'),
        ("Authorization: rawEasToken42", "Authorization: ***"),
        ("authorization=Token abc123", "authorization=Token ***"),
        ("Authorization: Bearer <sk-live-0123>", "Authorization: Bearer ***"),  # digits: not a placeholder
        ("Authorization: Bearer <LIVEKEY>", "Authorization: Bearer ***"),  # capitals: not a placeholder
        ("sent Bearer sk-0123456789 upstream", "sent Bearer *** upstream"),
        ("send 'Authorization: Bearer <gateway key>'", "send 'Authorization: Bearer <gateway key>'"),
        ("Authorization: <api key>", "Authorization: <api key>"),
        ("use Bearer <token>", "use Bearer <token>"),
    ],
)
def test_authorization_values_are_masked_and_placeholders_are_not(text, masked):
    assert logs.redact_text(text) == masked


def test_a_secret_with_a_lone_surrogate_registers_and_is_masked():
    """os.environ turns a byte that is not UTF-8 into a lone surrogate: registering must not raise."""
    secret = "pw-\udcff-canary-surrogate-77"
    logs.register_secret(secret)
    data = secret.encode("utf-8", "surrogatepass")
    assert "pw-" not in logs.redact_text(f"x {secret} y")
    assert quote(data, safe="") not in logs.redact_text(f"x {quote(data, safe='')} y")


def test_a_text_redacted_before_its_secret_was_registered_is_masked_after():
    """Short texts keep their redacted form; registering a secret must not leave a stale clean form behind."""
    secret = "late-registered-9f8e7d6c5b"
    text = f"/v1/path/{secret}"
    assert logs.redact_text(text) == text  # not a secret yet, and now remembered as clean
    logs.register_secret(secret)
    assert logs.redact_text(text) == "/v1/path/***"
    assert logs.redact_text(text) == "/v1/path/***"  # the cached form is the masked one


def test_redacted_text_cache_stays_bounded():
    for i in range(logs._REDACTED_CACHE_SIZE * 2 + 5):
        logs.redact_text(f"innocent text {i}")
    assert 0 < len(logs._redacted) <= logs._REDACTED_CACHE_SIZE
    long_text = "x" * (logs._REDACTED_CACHE_CHARS + 1)
    assert logs.redact_text(long_text) == long_text and long_text not in logs._redacted


def test_a_request_line_carries_an_iso_utc_timestamp_of_now():
    import time

    stream = io.StringIO()
    logs.configure(stream=stream)
    before = time.time()
    logs.write_event("evt", {"n": 1})
    after = time.time()
    logs.configure(stream=None)
    stamp = json.loads(stream.getvalue())["timestamp"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp)
    from datetime import datetime, timezone

    at = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()
    assert before - 1e-6 <= at <= after + 1e-6


@pytest.mark.parametrize("value", ["\udcff bytes that were not UTF-8", 2**70, {1: "a non-text key"}, ("a", "tuple")])
def test_a_request_line_with_what_orjson_refuses_is_still_one_json_line(value):
    """orjson writes the line per request; a lone surrogate or an integer over 64 bits goes through json."""
    stream = io.StringIO()
    logs.configure(stream=stream)
    logs.write_event("evt", {"value": value, "n": 1.5})
    logs.configure(stream=None)
    text = stream.getvalue()
    assert text.count("\n") == 1
    line = json.loads(text)
    assert line["event"] == "evt" and line["n"] == 1.5 and line["level"] == "info"
    expected = json.loads(json.dumps(value))
    assert line["value"] == expected
