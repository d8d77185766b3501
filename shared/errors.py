"""The one base of every error vpcprobe raises on purpose, like httpx's `HTTPError` tree.

Callers match the subclass they can act on (`ConfigError`, `UrlError`, `CredentialError`,
`StoreError`, `CloudError`, `BadEvent`, ...) or `VpcprobeError` for "anything vpcprobe refused";
an exception outside this tree is a bug, never an expected outcome.
"""

from __future__ import annotations

import reprlib


class VpcprobeError(Exception):
    """Something vpcprobe refused or could not do, with a message meant for a person."""


EXCERPT_CHARS = 60

# Bounded at every level: a list of a million items, or an alias-expanded YAML tree, prints a few of them.
_BOUNDED = reprlib.Repr()
_BOUNDED.maxlevel, _BOUNDED.maxstring, _BOUNDED.maxother = 3, EXCERPT_CHARS, EXCERPT_CHARS
_BOUNDED.maxlist = _BOUNDED.maxtuple = _BOUNDED.maxdict = _BOUNDED.maxset = 4


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """`value` quoted for an error message, at most `limit` characters and an ellipsis: an error never
    grows with the input it complains about (a 1 MiB string, an alias-expanded YAML structure)."""
    if isinstance(value, str):
        return repr(value[:limit]) + ("…" if len(value) > limit else "")
    if isinstance(value, int) and value.bit_length() > 256:  # repr() of >4300 digits raises
        return f"<a {value.bit_length()}-bit integer>"
    return clip(_BOUNDED.repr(value), limit)


def clip(text: str, limit: int = 200) -> str:
    """Message text (another error's, which may quote its input) cut to `limit` characters."""
    return text if len(text) <= limit else text[:limit] + "…"
