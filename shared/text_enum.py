"""Enums whose members are their text, for values that end up in JSON, log lines and state files."""

from __future__ import annotations

from enum import Enum


class TextEnum(str, Enum):
    """A str Enum that prints as its value: Python 3.12 formats members with str(), "Code.SLOW" otherwise."""

    def __str__(self) -> str:
        return self.value
