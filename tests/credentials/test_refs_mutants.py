"""The refusals of parse_ref word for word: a user fixing a config reads exactly these hints."""

from __future__ import annotations

import pytest

from shared.credentials.refs import parse_ref

NOT_A_REFERENCE = (
    "must be a reference: env:NAME, kms:SECRET_NAME[@VERSION_STAGE] or eas:<region>/<service> "
    "(secrets are never written inline)"
)


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
    ],
)
def test_refusals_word_for_word(value, message):
    with pytest.raises(ValueError) as info:
        parse_ref(value)
    assert str(info.value) == message
