"""dns.is_private on real addresses (no monkeypatching): a PrivateLink ENI in RFC 1918 or 100.64/10
is private, anything public makes the target `dns_public_address`; and the pinned resolution."""

from __future__ import annotations

import asyncio

import pytest

from shared.probe.dns import Address, is_private, resolve


@pytest.mark.parametrize(
    "ip",
    [
        "10.0.0.1",
        "10.255.255.254",  # RFC 1918
        "172.16.0.1",
        "172.31.255.254",
        "192.168.0.1",
        "192.168.255.254",
        "100.64.0.1",
        "100.100.2.136",
        "100.127.255.254",  # 100.64/10: Alibaba Cloud's internal ranges
        "127.0.0.1",
        "169.254.1.1",  # loopback, link-local
        "::1",
        "fd00::1",
        "fe80::1",
    ],
)
def test_private_addresses(ip):
    assert is_private(ip) is True


@pytest.mark.parametrize(
    "ip",
    [
        "8.8.8.8",
        "47.88.1.1",  # public (the latter Alibaba Cloud's)
        "172.15.255.255",
        "172.32.0.1",  # just outside 172.16/12
        "100.63.255.255",
        "100.128.0.1",  # just outside 100.64/10
        "11.0.0.1",
        "192.169.0.1",
        "2001:4860:4860::8888",
    ],
)
def test_public_addresses(ip):
    assert is_private(ip) is False


def test_a_literal_is_its_own_resolution_in_no_time():
    r = asyncio.run(resolve("10.1.2.3", 8080))
    assert (r.addresses, r.source, r.elapsed_ms, r.error) == ((Address("10.1.2.3", 8080, True),), "literal", 0.0, None)


def test_pinned_addresses_keep_their_order_ports_and_privacy():
    host = "ep-dns01.dashscope.ap-southeast-1.privatelink.aliyuncs.com"
    pins = {host: ("100.64.1.2:8443", "47.88.1.1")}
    r = asyncio.run(resolve(host.upper(), 80, pins))
    assert r.source == "resolve-map" and r.error is None
    assert r.addresses == (Address("100.64.1.2", 8443, True), Address("47.88.1.1", 80, False))
    assert 0.0 <= r.elapsed_ms < 1000.0


def test_no_pin_asks_the_resolver():
    # localhost is answered from /etc/hosts: no real host name is looked up.
    r = asyncio.run(resolve("localhost", 81, {}))
    assert r.source == "dns" and r.error is None and r.host == "localhost"
    assert 0.0 <= r.elapsed_ms < 1000.0
    assert r.addresses and r.addresses[0] == Address("127.0.0.1", 81, True)
    assert all(a.port == 81 and a.private for a in r.addresses)
    assert [a.ip for a in r.addresses] == list(dict.fromkeys(a.ip for a in r.addresses))  # no duplicates
