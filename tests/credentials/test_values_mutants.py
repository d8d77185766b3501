"""usable_value's whole messages: what was wrong (empty, only whitespace, a control character inside),
naming the reference and never the value."""

from __future__ import annotations

import pytest

from shared.credentials.errors import CredentialError
from shared.credentials.values import usable_value

REF = "env:DS_KEY"


@pytest.mark.parametrize(
    "value,what",
    [(None, "empty"), ("", "empty"), (" ", "only whitespace"), ("\n\t ", "only whitespace")],
)
def test_nothing_usable_says_what_it_was(value, what):
    with pytest.raises(CredentialError) as caught:
        usable_value(REF, value)
    assert str(caught.value) == f"{REF}: the value is {what}; set the secret itself"


@pytest.mark.parametrize("value", ["sk-ab\ncd", "sk-ab\x00cd", "sk-ab\x7fcd", "sk-ab\rcd"])
def test_a_control_character_inside_is_refused_without_the_value(value):
    with pytest.raises(CredentialError) as caught:
        usable_value(REF, value)
    assert str(caught.value) == (
        f"{REF}: the value has a line break or another control character inside it; "
        "store the secret on one line, with nothing else"
    )


def test_surrounding_whitespace_is_stripped():
    assert usable_value(REF, "  sk-abc\r\n") == "sk-abc"
