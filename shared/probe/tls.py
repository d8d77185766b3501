"""TLS for the probe: the SSL context for a target's trust settings, the peer certificate's days left."""

from __future__ import annotations

import ssl
from typing import Any

import httpx


def ssl_context(ca_bundle: str | None, tls_verify: bool) -> ssl.SSLContext:
    """A context for the trust setting; building one costs tens of ms of CPU, so callers keep it."""
    if not tls_verify:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if ca_bundle:
        return ssl.create_default_context(cafile=ca_bundle)
    return httpx.create_ssl_context()


def cert_days_left(stream: Any) -> int | None:
    """Days until the peer certificate expires; parsed from DER so it works with verify off too."""
    try:
        ssl_object = stream.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
    except Exception:
        return None
    if not der:
        return None
    from datetime import datetime, timezone

    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    not_after = cert.not_valid_after_utc
    return (not_after - datetime.now(timezone.utc)).days
