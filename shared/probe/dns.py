"""Name resolution done explicitly, so a probe can reach every address a name has (one ENI per zone).

A `resolve:` map in the config pins names to addresses, like curl's --resolve (an entry may carry
a port, like --connect-to), for the demo, tests, and users who want to probe one ENI directly.
"""

from __future__ import annotations

import asyncio
import functools
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


@functools.lru_cache(maxsize=4096)
def is_private(ip: str) -> bool:
    """RFC 1918, 100.64/10 (Alibaba Cloud's internal ranges use it), loopback, link-local, ULA."""
    addr = ipaddress.ip_address(ip)
    if addr.version == 4 and addr in _CGNAT:
        return True
    return addr.is_private or addr.is_loopback or addr.is_link_local


async def resolve(host: str, port: int, overrides: dict[str, tuple[str, ...]] | None = None) -> Resolution:
    """Every address of `host`, IPv4 first; errors are returned, not raised, so the probe can diagnose."""
    start = time.perf_counter()
    static = _static(host, port, (overrides or {}).get(host.lower()))
    if static is not None:
        pairs, source = static
        addrs = tuple(Address(ip, p, is_private(ip)) for ip, p in pairs)
        elapsed = 0.0 if source == "literal" else (time.perf_counter() - start) * 1000
        return Resolution(host, addrs, elapsed, source)
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


@functools.lru_cache(maxsize=4096)
def _static(host: str, port: int, pinned: tuple[str, ...] | None) -> tuple[tuple[tuple[str, int], ...], str] | None:
    """The (ip, port)s of an IP literal or a `resolve:`-pinned name, parsed once per process: a round
    of 1000 pinned targets would otherwise parse the same few addresses 1000 times. None: ask DNS."""
    if is_ip(host):
        return ((host, port),), "literal"
    if not pinned:
        return None
    pairs = []
    for entry in pinned:
        ip, pin_port = split_addr(entry)
        if ip is not None:
            pairs.append((ip, pin_port or port))
    return tuple(pairs), "resolve-map"
