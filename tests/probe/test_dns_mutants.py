"""dns.is_private on real addresses (no monkeypatching): a PrivateLink ENI in RFC 1918 or 100.64/10
is private, anything public makes the target `dns_public_address`; and the pinned resolution."""

from __future__ import annotations

import asyncio
import socket

import pytest

from shared.probe import dns
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
    assert (r.host, r.source, r.error) == (host.upper(), "resolve-map", None)
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


class AnsweringLoop(asyncio.SelectorEventLoop):
    """An event loop whose resolver gives a set answer (or error) and records what it was asked: the
    stand-in for a DNS server, since a test may look up no real name and /etc/hosts has one address."""

    def __init__(self, answer: list[tuple] | socket.gaierror) -> None:
        super().__init__()
        self.answer = answer
        self.asked: list[tuple] = []

    async def getaddrinfo(self, host, port, *, family=0, type=0, proto=0, flags=0):
        self.asked.append((host, port, family, type))
        if isinstance(self.answer, socket.gaierror):
            raise self.answer
        return self.answer


def resolve_on(loop: AnsweringLoop, host: str, port: int):
    try:
        return loop.run_until_complete(resolve(host, port, {}))
    finally:
        loop.close()


def info(family: socket.AddressFamily, ip: str, port: int) -> tuple:
    sockaddr = (ip, port) if family == socket.AF_INET else (ip, port, 0, 0)
    return (family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr)


def test_every_address_once_ipv4_first_with_the_targets_port():
    host = "ep-dns02.dashscope.ap-southeast-1.privatelink.aliyuncs.com"
    loop = AnsweringLoop(
        [
            info(socket.AF_INET6, "fd00::2", 443),
            info(socket.AF_INET, "100.64.0.9", 443),
            info(socket.AF_INET6, "2001:4860::1", 443),
            info(socket.AF_INET, "10.0.0.7", 443),
            info(socket.AF_INET, "100.64.0.9", 443),  # the same address again (another socket type)
            info(socket.AF_INET6, "fd00::2", 443),
        ]
    )
    r = resolve_on(loop, host, 443)
    assert loop.asked == [(host, 443, 0, socket.SOCK_STREAM)]
    assert (r.host, r.source, r.error) == (host, "dns", None)
    assert r.addresses == (
        Address("100.64.0.9", 443, True),
        Address("10.0.0.7", 443, True),
        Address("fd00::2", 443, True),
        Address("2001:4860::1", 443, False),
    )
    assert 0.0 <= r.elapsed_ms < 1000.0


def test_a_name_that_does_not_resolve_is_a_resolution_with_its_error():
    host = "ep-missing.dashscope.ap-southeast-1.privatelink.aliyuncs.com"
    loop = AnsweringLoop(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    r = resolve_on(loop, host, 80)
    assert (r.host, r.addresses, r.source, r.error) == (host, (), "dns", "Name or service not known")
    assert 0.0 <= r.elapsed_ms < 1000.0


def test_a_resolver_error_without_strerror_keeps_its_text():
    loop = AnsweringLoop(socket.gaierror("resolver gave up"))
    r = resolve_on(loop, "ep-x.example", 80)
    assert (r.addresses, r.source, r.error) == ((), "dns", "resolver gave up")


class SteppingClock:
    """perf_counter for dns alone: each reading a quarter second after the last, so elapsed_ms is exact."""

    def __init__(self) -> None:
        self.now = 100.0

    def perf_counter(self) -> float:
        self.now += 0.25
        return self.now


@pytest.fixture
def clock(monkeypatch):
    monkeypatch.setattr(dns, "time", SteppingClock())


def test_elapsed_is_in_milliseconds_on_every_path(clock):
    pinned = asyncio.run(resolve("ep-pin.example", 80, {"ep-pin.example": ("10.0.0.1",)}))
    answered = resolve_on(AnsweringLoop([info(socket.AF_INET, "10.0.0.2", 80)]), "ep-dns.example", 80)
    failed = resolve_on(AnsweringLoop(socket.gaierror(socket.EAI_NONAME, "no")), "ep-gone.example", 80)
    literal = asyncio.run(resolve("10.0.0.3", 80))
    assert [r.elapsed_ms for r in (pinned, answered, failed, literal)] == [250.0, 250.0, 250.0, 0.0]
