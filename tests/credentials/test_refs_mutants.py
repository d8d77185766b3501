"""The refusals of parse_ref word for word: a user fixing a config reads exactly these hints."""

from __future__ import annotations

import pytest

from shared.credentials.refs import BadReference, parse_ref

NOT_A_REFERENCE = (
    "must be a reference: env:NAME, kms:SECRET_NAME[@VERSION_STAGE] or eas:<region>/<service> "
    "(secrets are never written inline)"
)
NOT_A_REFERENCE_SHAPE = "is not a reference (env:NAME, kms:NAME, eas:REGION/SERVICE); secrets are never written inline"


@pytest.mark.parametrize(
    "value,message",
    [
        ("sk-0123456789abcdef", NOT_A_REFERENCE),
        (12345, NOT_A_REFERENCE),
        ("env:1BAD", "malformed env: reference; expected env:NAME with NAME an environment variable name"),
        ("kms:", "malformed kms: reference; expected kms:SECRET_NAME or kms:SECRET_NAME@ACSCurrent"),
        ("eas:my_llm", "malformed eas: reference; expected eas:<region>/<service>, e.g. eas:cn-hangzhou/my_llm"),
        # The scheme is what precedes the first ':': a second one is part of a malformed name.
        ("env:A:B", "malformed env: reference; expected env:NAME with NAME an environment variable name"),
        ("kms:a:b", "malformed kms: reference; expected kms:SECRET_NAME or kms:SECRET_NAME@ACSCurrent"),
        ("vault:secret/x", "unknown reference scheme 'vault:'; use env:, kms: or eas:"),
        ("ENV:DASHSCOPE_API_KEY", "unknown reference scheme 'ENV:'; schemes are lower case: env:"),
        # Not scheme-shaped: possibly a pasted secret with a colon in it, never quoted back.
        ("sk-0a1b2c3d4e5f:rest", NOT_A_REFERENCE_SHAPE),
        ("LTAI5tAbCdEf:secret", NOT_A_REFERENCE_SHAPE),
        ("a1b2c3d4e5f6a7b8:x", NOT_A_REFERENCE_SHAPE),
        ("secret-:x", NOT_A_REFERENCE_SHAPE),
        ("abcdefghijklmnopq:x", NOT_A_REFERENCE_SHAPE),  # 17 letters: longer than any scheme
    ],
)
def test_refusals_word_for_word(value, message):
    with pytest.raises(BadReference) as info:
        parse_ref(value)
    assert str(info.value) == message


@pytest.mark.parametrize("secret", ["sk-0123456789abcdef0123456789abcdef", "Zm9vYmFy0123", "hunter2hunter2"])
@pytest.mark.parametrize("shape", ["{}:", "{}:{}", "x{}:y", "{}@kms:x"])
def test_a_secret_pasted_as_a_reference_is_never_quoted(secret, shape):
    """Issue 11: the refusal quoted the text before the first colon; a pasted secret holding a colon showed."""
    text = shape.format(secret, secret)
    with pytest.raises(BadReference) as info:
        parse_ref(text)
    message = str(info.value)
    assert secret not in message and secret[:8] not in message and text.partition(":")[0] not in message
