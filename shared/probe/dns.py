"""Name resolution done explicitly, so a probe can reach every address a name has (one ENI per zone).

A `resolve:` map in the config pins names to addresses, like curl's --resolve (an entry may carry
a port, like --connect-to), for the demo, tests, and users who want to probe one ENI directly.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass

from shared.config.load import split_addr
from shared.config.urls import is_ip

_CGNAT = ipaddress.ip_network("100.64.0.0/10")


@dataclass(frozen=True)
class Address:
    ip: str
    port: int
    private: bool


@dataclass(frozen=True)
class Resolution:
    host: str
    addresses: tuple[Address, ...]
    elapsed_ms: float
    source: str  # literal | resolve-map | dns
    error: str | None = None


def is_private(ip: str) -> bool:
    """RFC 1918, 100.64/10 (Alibaba Cloud's internal ranges use it), loopback, link-local, ULA."""
    addr = ipaddress.ip_address(ip)
    if addr.version == 4 and addr in _CGNAT:
        return True
    return addr.is_private or addr.is_loopback or addr.is_link_local


async def resolve(host: str, port: int, overrides: dict[str, tuple[str, ...]] | None = None) -> Resolution:
    """Every address of `host`, IPv4 first; errors are returned, not raised, so the probe can diagnose."""
    start = time.perf_counter()
    if is_ip(host):
        return Resolution(host, (Address(host, port, is_private(host)),), 0.0, "literal")
    pinned = (overrides or {}).get(host.lower())
    if pinned:
        addrs = []
        for entry in pinned:
            ip, pin_port = split_addr(entry)
            if ip is not None:
                addrs.append(Address(ip, pin_port or port, is_private(ip)))
        return Resolution(host, tuple(addrs), (time.perf_counter() - start) * 1000, "resolve-map")
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        elapsed = (time.perf_counter() - start) * 1000
        return Resolution(host, (), elapsed, "dns", error=exc.strerror or str(exc))
    elapsed = (time.perf_counter() - start) * 1000
    seen: list[str] = []
    for family in (socket.AF_INET, socket.AF_INET6):
        for info in infos:
            ip = str(info[4][0])
            if info[0] == family and ip not in seen:
                seen.append(ip)
    return Resolution(host, tuple(Address(ip, port, is_private(ip)) for ip in seen), elapsed, "dns")
