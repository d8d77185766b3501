"""A probe's verdict on a target or one of its addresses."""

from __future__ import annotations

from shared.text_enum import TextEnum


class Status(TextEnum):
    UP = "up"
    DEGRADED = "degraded"  # answers, but slow, a certificate expiring, a zone down or a public address
    DOWN = "down"
    # The prober itself could not keep up (its event loop lagged for a large share of a timeout), so a
    # timeout says nothing about the upstream: no news, neither a failure nor a recovery.
    UNKNOWN = "unknown"
