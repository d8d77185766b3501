"""The forms of a secret the redactor masks, computed here with base64/urllib on their own: each base64
form (std and urlsafe, padded or not) masked whole, a secret inside a longer base64 text at each byte
alignment, a 4-byte secret's short encoding, the lower-case URL escapes, and the AUTH PLAIN blobs of an
SMTP login (each of many, whole); a value as given and stripped; quote() with nothing safe; JSON with '/'
escaped; a 4-character secret and its hex dump (none under 4 bytes); a value with an undecodable byte; a
library logger that does not propagate; and what must stay: a 4-character piece of an encoding is innocent
text, a record whose message cannot be built is passed on."""

from __future__ import annotations

import base64
import json
import logging
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


def test_a_second_login_masks_its_own_blobs_whole():
    """Each login is remembered under its own key: a later login's AUTH PLAIN blobs are masked whole, not
    only the password's piece inside them."""
    register_login("a@example.com", "pw-first-login")
    register_login("b@example.com", "pw-second-login")
    for blob in auth_plain("b@example.com", "pw-second-login"):
        assert redact_text(f"535 {blob} rejected") == f"535 {MASK} rejected"


def test_a_secret_with_surrounding_whitespace_is_masked_as_given_and_stripped():
    """A value read with a stray blank or newline is masked in both shapes: as given and stripped (16 bytes,
    so the stripped one's padded base64 is not a piece of the other's encoding)."""
    stripped = "pw-space-secret1"
    given = f"  {stripped}\n"
    register_secret(given)
    for form in (b64(given.encode()), b64(stripped.encode())):
        assert form.endswith("=")
        assert redact_text(f"x {form} y") == f"x {MASK} y", form


def test_url_quote_with_nothing_safe_is_masked_when_quote_plus_differs():
    """A space and a slash: quote(safe='') gives %20 and %2F, quote() keeps '/', quote_plus() gives '+'."""
    secret = "pw k/y>1"
    register_secret(secret)
    form = quote(secret, safe="")
    assert form == "pw%20k%2Fy%3E1"
    assert redact_text(f"u={form}&") == f"u={MASK}&"
    assert redact_text(f"u={form.lower()}&") == f"u={MASK}&"


@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_a_json_escaped_slash_is_masked(ensure_ascii):
    """JSON may escape '/' as '\\/' (PHP, some Java encoders): masked whole, ASCII-escaped or not."""
    secret = "pw/k>é~1"
    register_secret(secret)
    escaped = json.dumps(secret, ensure_ascii=ensure_ascii)[1:-1].replace("/", "\\/")
    assert "\\/" in escaped
    assert redact_text(f'{{"error": "{escaped}"}}') == f'{{"error": "{MASK}"}}'


def test_a_non_ascii_secret_is_masked_in_json_that_keeps_it_unescaped():
    secret = "pw-é-ü-1"
    register_secret(secret)
    assert redact_text('{"error": "pw-é-ü-1"}') == f'{{"error": "{MASK}"}}'
    assert redact_text('{"error": "pw-\\u00e9-\\u00fc-1"}') == f'{{"error": "{MASK}"}}'


def test_a_four_character_secret_is_masked_as_itself_and_in_hex():
    """4 characters is the shortest secret kept; its hex dump (8 digits) in both cases."""
    register_secret("q7#z")
    assert redact_text("x q7#z y") == f"x {MASK} y"
    hexed = b"q7#z".hex()
    assert hexed == "7137237a"
    assert redact_text(f"x {hexed} y") == f"x {MASK} y"
    assert redact_text(f"x {hexed.upper()} y") == f"x {MASK} y"


def test_a_secret_of_three_bytes_has_no_hex_form():
    """6 hex digits (a colour, a short id) are too common to mask: hex starts at 4 bytes."""
    assert b"abc".hex() not in logs.secret_forms("abc")
    assert b"abcd".hex() in logs.secret_forms("abcd")


def test_a_secret_with_an_undecodable_byte_is_registered_and_masked():
    """os.environ gives a lone surrogate for a byte that is not UTF-8: registering such a value must not
    raise (it would turn a credential read into a crash), and the value is masked as text and in JSON."""
    secret = "pw-\udcff-env1"
    register_secret(secret)
    assert redact_text(f"x {secret} y") == f"x {MASK} y"
    escaped = json.dumps(secret)[1:-1]
    assert escaped == "pw-\\udcff-env1"
    assert redact_text(f'{{"e": "{escaped}"}}') == f'{{"e": "{MASK}"}}'


class Records(logging.Handler):
    """Keeps each record it is given, unformatted: what reached the handler past every filter."""

    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def library_logger():
    """A library's own logger that does not propagate (as uvicorn's do): root's filter never sees its
    records. Root's and this logger's filters are put back afterwards."""
    root = logging.getLogger()
    saved = [(holder, list(holder.filters)) for holder in (root, *root.handlers)]
    logger = logging.getLogger("vpcprobe-test.library")
    handler = Records()
    logger.addHandler(handler)
    logger.propagate = False
    yield logger, handler
    logger.removeHandler(handler)
    logger.filters.clear()
    logger.propagate = True
    for holder, filters in saved:
        holder.filters[:] = filters


def test_a_named_library_logger_is_redacted_though_it_does_not_propagate(library_logger):
    logger, handler = library_logger
    register_secret("pw-library-7q")
    logs.guard_stdlib_logging("vpcprobe-test.library")
    logger.warning("request failed: Authorization: Bearer %s", "pw-library-7q")
    assert [r.getMessage() for r in handler.records] == [f"request failed: Authorization: Bearer {MASK}"]


def test_guarding_twice_adds_one_filter(library_logger):
    logger, _ = library_logger
    logs.guard_stdlib_logging("vpcprobe-test.library")
    logs.guard_stdlib_logging("vpcprobe-test.library")
    assert sum(isinstance(f, logs._RedactFilter) for f in logger.filters) == 1
    root = logging.getLogger()
    assert sum(isinstance(f, logs._RedactFilter) for f in root.filters) == 1


def test_a_record_whose_message_cannot_be_built_is_passed_on_not_dropped(library_logger):
    """A library's bad format arguments are logging's to report (handleError, after the filters); the
    redaction filter neither drops such a record nor raises."""
    logger, _ = library_logger
    logs.guard_stdlib_logging("vpcprobe-test.library")
    record = logger.makeRecord(logger.name, logging.WARNING, __file__, 1, "%d retries", ("many",), None)
    with pytest.raises(TypeError):
        record.getMessage()
    assert logger.filter(record)
    assert (record.msg, record.args) == ("%d retries", ("many",))
