"""Credential references: the three schemes, and clear refusals of anything else (inline secrets above all)."""

import pytest

from shared.credentials.refs import CredentialRef, parse_ref


@pytest.mark.parametrize(
    "text,ref",
    [
        ("env:DASHSCOPE_API_KEY", CredentialRef("env", "DASHSCOPE_API_KEY")),
        ("kms:my-secret", CredentialRef("kms", "my-secret")),
        ("kms:my-secret@ACSPrevious", CredentialRef("kms", "my-secret", stage="ACSPrevious")),
        ("eas:cn-hangzhou/grp.svc", CredentialRef("eas", "grp.svc", region="cn-hangzhou")),
    ],
)
def test_credential_references(text, ref):
    assert parse_ref(text) == ref
    assert str(parse_ref(text)) == text


@pytest.mark.parametrize(
    "value,message",
    [
        ("sk-0123456789abcdef", "must be a reference"),
        (None, "must be a reference"),
        ("env:1BAD", "malformed env: reference"),
        ("kms:", "malformed kms: reference"),
        ("eas:my_llm", "expected eas:<region>/<service>"),
        ("vault:secret/x", "unknown reference scheme 'vault:'"),
    ],
)
def test_malformed_references_are_refused(value, message):
    with pytest.raises(ValueError, match=message):
        parse_ref(value)
