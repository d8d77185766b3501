"""The error a damaged history object raises when read."""

from __future__ import annotations

from shared.errors import VpcprobeError


class HistoryError(VpcprobeError):
    """A history object in the store is damaged; the message names the object and what is wrong with it."""
