"""TLS for the probe: SSL contexts per trust setting, kept by the warm instance; the peer certificate's days left."""

from __future__ import annotations

import functools
import ssl
from datetime import datetime, timezone


def ssl_context(ca_bundle: str | None, tls_verify: bool) -> ssl.SSLContext:
    """A new context for the trust setting; building one costs tens of ms of CPU, so use `cached_context`."""
    if not tls_verify:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if ca_bundle:
        return ssl.create_default_context(cafile=ca_bundle)
    import certifi  # the Mozilla bundle, as httpx trusts it; loaded only when an https target needs it

    return ssl.create_default_context(cafile=certifi.where())


@functools.lru_cache(maxsize=32)
def cached_context(ca_bundle: str | None, tls_verify: bool) -> ssl.SSLContext:
    """One context per trust setting for the process: a warm FC instance builds each once, and an
    http-only round builds none."""
    return ssl_context(ca_bundle, tls_verify)


def cert_not_after(der: bytes | None) -> str | None:
    """The DER certificate's notAfter in RFC 3339 (blackbox's probe_ssl_earliest_cert_expiry, in /metrics)."""
    if not der:
        return None
    try:
        not_after = _not_after(der)
    except ValueError:
        return None
    return not_after.isoformat().replace("+00:00", "Z")


def cert_days_left(der: bytes | None) -> int | None:
    """Days until the DER certificate expires (read with verify off too); call it outside timed sections."""
    if not der:
        return None
    try:
        not_after = _not_after(der)
    except ValueError:  # not a certificate cryptography can read: no figure rather than a failed probe
        return None
    return (not_after - datetime.now(timezone.utc)).days


@functools.lru_cache(maxsize=256)
def _not_after(der: bytes) -> datetime:
    """The certificate's notAfter; cached, since every round sees the same few certificates."""
    from cryptography import x509

    return x509.load_der_x509_certificate(der).not_valid_after_utc
