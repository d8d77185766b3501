"""What a resolved secret value must look like before it is used: no surrounding whitespace, not empty,
no control character inside.

`echo key > file`, secret UIs and KMS consoles add a trailing newline; sent as is, the HTTP client refuses
the header and its error quotes the header, key and all. So surrounding whitespace is stripped, and a
value that is empty or keeps a line break or other control character inside is refused with an error
that names the reference, never the value.
"""

from __future__ import annotations

import re

from shared.credentials.errors import CredentialError

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def usable_value(ref: object, value: str | None) -> str:
    """`value` stripped of surrounding whitespace; CredentialError naming `ref` when nothing usable is left."""
    text = (value or "").strip()
    if not text:
        what = "empty" if not value else "only whitespace"
        raise CredentialError(f"{ref}: the value is {what}; set the secret itself")
    if _CONTROL.search(text):
        raise CredentialError(
            f"{ref}: the value has a line break or another control character inside it; "
            "store the secret on one line, with nothing else"
        )
    return text
