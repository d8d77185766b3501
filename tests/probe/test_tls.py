"""TLS: SNI on the custom domain, certificate days left, and the trust settings' contexts."""

from __future__ import annotations

import ssl

from shared.probe.tls import cert_days_left, ssl_context
from tests.probe.loopback import CUSTOM, code_of, ds, make_config, probe_one


def test_https_custom_domain_with_sni_and_cert_days(sim, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_bytes(sim.ca_pem)
    r = probe_one(make_config(sim, ds(endpoint=f"https://{CUSTOM}", ca_bundle=str(ca))))
    assert r.status == "up", r.to_dict()
    assert r.phases_ms["tls"] is not None and r.tls_days_left is not None and r.tls_days_left > 0


def test_tls_cert_expiring(sim, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_bytes(sim.ca_pem)
    target = ds(endpoint=f"https://{CUSTOM}", ca_bundle=str(ca), probe={"cert_min_days": 10000000})
    r = probe_one(make_config(sim, target))
    assert (r.status, code_of(r)) == ("degraded", "tls_cert_expiring")


def test_verify_off_checks_neither_name_nor_chain():
    ctx = ssl_context(None, tls_verify=False)
    assert (ctx.check_hostname, ctx.verify_mode) == (False, ssl.CERT_NONE)


def test_a_pinned_ca_is_the_only_trust(sim, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_bytes(sim.ca_pem)
    ctx = ssl_context(str(ca), tls_verify=True)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and len(ctx.get_ca_certs()) == 1


def test_no_certificate_no_days():
    assert cert_days_left(None) is None and cert_days_left(b"not a certificate") is None
