"""The forms of a secret the redactor masks, computed here with base64/urllib on their own: each base64
form (std and urlsafe, padded or not) masked whole, a secret inside a longer base64 text at each byte
alignment, a 4-byte secret's short encoding, the lower-case URL escapes, and the AUTH PLAIN blobs of an
SMTP login; and what must stay: a 4-character piece of an encoding is innocent text."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest

from shared import logs
from shared.logs import MASK, redact_text, register_login, register_secret


@pytest.fixture(autouse=True)
def empty_registry(monkeypatch):
    """Each test starts with no secret known, so its registration really runs: mutmut's workers fork from
    a process whose clean run already registered these values (and would skip straight past the code)."""
    monkeypatch.setattr(logs, "_known", set())
    monkeypatch.setattr(logs, "_forms", set())
    monkeypatch.setattr(logs, "_known_re", None)


SLASHED = "pw-x>?~y"  # its base64 has a '/' (urlsafe '_') and one '=' of padding


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def urlsafe(text: str) -> str:
    return text.replace("+", "-").replace("/", "_")


@pytest.mark.parametrize(
    "form",
    [
        b64(SLASHED.encode()),
        b64(SLASHED.encode()).rstrip("="),
        urlsafe(b64(SLASHED.encode())),
        urlsafe(b64(SLASHED.encode())).rstrip("="),
    ],
)
def test_each_base64_form_is_masked_whole(form):
    register_secret(SLASHED)
    assert redact_text(f"got {form} back") == f"got {MASK} back"


@pytest.mark.parametrize("before", [b"", b"\xff", b"\xff\xff"])
def test_a_secret_inside_longer_base64_is_masked_at_every_alignment(before):
    secret = "pw-abcde"  # 8 bytes: at every alignment 6 of them fill whole 3-byte groups (8 characters)
    register_secret(secret)
    blob = b64(before + secret.encode() + b"\xfe\xfd\xfc")
    assert MASK in redact_text(blob) and blob not in redact_text(blob)


def test_a_four_byte_secret_is_masked_in_its_short_encoding():
    register_secret("q7#z")
    padded = b64(b"q7#z")
    assert redact_text(f"x {padded} y") == f"x {MASK} y"
    assert redact_text(f"x {padded.rstrip('=')} y") == f"x {MASK} y"


def test_a_short_piece_of_an_encoding_is_innocent_text():
    register_secret("pw-abcd")
    piece = b64(b"-ab")  # 4 characters: the only whole group of the secret at one alignment
    assert redact_text(f"see {piece}") == f"see {piece}"


def test_url_escapes_are_masked_in_lower_case_too():
    register_secret(SLASHED)
    upper = quote(SLASHED, safe="")
    lower = upper.replace("%3E", "%3e").replace("%3F", "%3f")
    assert lower != upper
    assert redact_text(f"u={lower}&") == f"u={MASK}&"


def auth_plain(user: str, password: str) -> list[str]:
    blobs = (f"\0{user}\0{password}", f"{user}\0{user}\0{password}")
    return [b64(b.encode("utf-8", "surrogatepass")) for b in blobs]


def test_an_smtp_login_masks_the_password_and_both_auth_plain_blobs():
    register_login("ops@example.com", "pw-login-7c1e")
    for blob in auth_plain("ops@example.com", "pw-login-7c1e"):
        assert redact_text(f"535 {blob} rejected") == f"535 {MASK} rejected"
    assert redact_text("pass pw-login-7c1e") == f"pass {MASK}"


def test_each_login_of_many_is_masked():
    register_login("a@example.com", "pw-first-login")
    register_login("b@example.com", "pw-second-login")
    for blob in auth_plain("b@example.com", "pw-second-login"):
        assert MASK in redact_text(blob) and blob not in redact_text(blob)


def test_a_short_login_blob_of_eight_characters_is_masked():
    [blob, _] = auth_plain("u", "pw")  # "\0u\0pw": 5 bytes, 8 characters with its padding
    register_login("u", "pw")
    assert len(blob) == 8
    assert redact_text(f"x {blob} y") == f"x {MASK} y"


def test_a_login_name_with_an_undecodable_byte_is_masked_in_its_blobs():
    user = "ops-\udcff@example.com"  # what os.environ gives for a byte that is not UTF-8
    register_login(user, "pw-surrogate-login")
    for blob in auth_plain(user, "pw-surrogate-login"):
        assert MASK in redact_text(blob) and blob not in redact_text(blob)


def test_no_login_without_a_password():
    before = set(logs._known)
    register_login("nobody@example.com", None)
    register_login("nobody@example.com", "")
    assert logs._known == before


def test_url_escapes_with_and_without_a_safe_slash_are_masked():
    secret = "pw/k>y~1"
    register_secret(secret)
    for form in (quote(secret, safe=""), quote(secret), quote(secret, safe="").lower()):
        assert redact_text(f"u={form}&") == f"u={MASK}&", form


@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_json_escaped_forms_are_masked(ensure_ascii):
    secret = 'pw-é"q\\1'  # a quote, a backslash and a letter outside ASCII: each JSON form differs
    register_secret(secret)
    escaped = json.dumps(secret, ensure_ascii=ensure_ascii)[1:-1]
    assert escaped != secret
    assert redact_text(f'{{"error": "{escaped}"}}') == f'{{"error": "{MASK}"}}'
