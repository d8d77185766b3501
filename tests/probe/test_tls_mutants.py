"""Certificate days left, exactly: a certificate that expires in 30 days and 12 hours has 30 days left,
and `cert_min_days` either side of that decides whether the target is `tls_cert_expiring`."""

from __future__ import annotations

import ssl
from datetime import datetime, timedelta, timezone

import pytest
import trustme

from shared.probe.tls import cert_days_left
from tests.probe.delay_server import Delays, DelayServer
from tests.probe.loopback import CUSTOM, ds
from tests.probe.test_phases import config_for, run_round

HOSTS = ("127.0.0.8",)


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


def leaf(ca, days: float):
    # trustme writes notAfter as naive UTC
    not_after = (datetime.now(timezone.utc) + timedelta(days=days)).replace(tzinfo=None)
    return ca.issue_cert(CUSTOM, not_after=not_after)


def test_days_left_of_a_certificate(ca):
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    pem = leaf(ca, 30.5).cert_chain_pems[0].bytes()
    der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    assert cert_days_left(der) == 30
    pem = leaf(ca, -1.5).cert_chain_pems[0].bytes()
    assert cert_days_left(x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)) == -2


@pytest.mark.parametrize("min_days,expected", [(30, ("up", None)), (31, ("degraded", "tls_cert_expiring"))])
def test_probe_reports_days_left_and_the_threshold(ca, tmp_path, min_days, expected):
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf(ca, 30.5).configure_cert(server_ctx)
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(ca.cert_pem.bytes())
    with DelayServer(HOSTS, Delays(), tls=server_ctx) as server:
        target = ds(endpoint=f"https://{CUSTOM}", ca_bundle=str(bundle), probe={"cert_min_days": min_days})
        (r,), _ = run_round(config_for(server, target, host=CUSTOM))
    code = r.diagnosis.code if r.diagnosis else None
    assert (r.status, code) == expected, r.to_dict()
    assert r.tls_days_left == 30 and r.addresses[0].tls_days_left == 30
    assert r.to_dict()["tls_days_left"] == 30
