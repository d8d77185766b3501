"""A probe's verdict on a target or one of its addresses."""

from __future__ import annotations

from shared.text_enum import TextEnum


class Status(TextEnum):
    UP = "up"
    DEGRADED = "degraded"  # answers, but slow, a certificate expiring, a zone down or a public address
    DOWN = "down"
