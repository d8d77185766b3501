"""Instance warm-up, for FC's initializer: the probe path runs once before the first timer event.

A fresh process pays one-time costs on its first round that no later round pays: the first event
loop, the first socket and transport, the first parser, the interpreter's first pass over the
round's code, and for https targets the SSL context and the certificate reader. FC runs the
function's initializer once per instance, before its first invocation and outside its duration, so
those costs move there: one throwaway round against a server on the instance's own loopback, plus
the TLS contexts the config's https targets will use. Nothing leaves the instance.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from shared.config.load import Config, parse_config
from shared.probe import loop
from shared.probe.tls import cached_context

_HOST = "warmup.vpcprobe.invalid"  # pinned to loopback below: never looked up
_BODY = b'{"object":"list","data":[]}'
_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(_BODY), _BODY)


class _Answer(asyncio.Protocol):
    """Answers any request with a small JSON body and closes, like a models list."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if b"\r\n\r\n" in data:
            self.transport.write(_ANSWER)  # type: ignore[attr-defined]
            self.transport.close()


def _throwaway_config(port: int) -> Config:
    return parse_config(
        {
            "defaults": {"timeout": "2s", "retries": 0},
            "resolve": {_HOST: [f"127.0.0.1:{port}"]},
            "targets": [
                {
                    "name": "warmup",
                    "kind": "dashscope",
                    "endpoint": f"http://{_HOST}",
                    "probe": {"mode": "http", "path": "/v1/models"},
                }
            ],
        }
    )


async def _round() -> Any:
    from shared.probe.engine import Prober

    server = await asyncio.get_running_loop().create_server(_Answer, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        return await Prober(_throwaway_config(port)).run_round()
    finally:
        server.close()


def warm_up(config: Config) -> dict[str, Any]:
    """One throwaway loopback round and the config's TLS contexts; what it did and how long it took."""
    started = time.perf_counter()
    trust = {
        (t.ca_bundle, t.tls_verify) for t in config.targets if t.endpoint.base_url.startswith("https:")
    }
    for ca_bundle, verify in trust:
        cached_context(ca_bundle, verify)
    if trust:
        import cryptography.x509  # noqa: F401  (the certificate reader of tls.cert_days_left)
    results = loop.run(_round())
    return {
        "ms": round((time.perf_counter() - started) * 1000, 2),
        "tls_contexts": len(trust),
        "round": str(results[0].status) if results else None,
    }
