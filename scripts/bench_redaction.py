"""Micro-benchmark of log redaction (shared/logs.py `redact_text`), which runs on every log line.

Each variant is a fresh copy of a redactor module with the same secrets registered (a round's worth:
DashScope key, EAS token, AccessKey secret, a 1,000-character STS token, DingTalk token and signing
secret, SMTP password, gateway key); all are timed side by side in one run, interleaved, so compare
the ratios, not the absolute figures. Variants: `current` (this checkout), `flat` (the current forms
in one flat alternation instead of a trie), and `baseline` (another version of the module, e.g. the
exact-values-only redactor before encoded forms: `git show f3a0314:shared/logs.py > /tmp/logs_before.py`).

    .venv/bin/python scripts/bench_redaction.py --baseline /tmp/logs_before.py
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
SECRETS = [
    "sk-3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c",
    "ZTk4YjM2YzU1ZmQ1NDA0ZTk0ZjQ0ZDZkZWM3ZjU2YjM5NTk5Yg==",
    "Xq2pL8vN4mR7tY1wZ6kJ9hG3fD5sA0",
    "CAIS" + "9QJ1q6Ft5B2yfSjIr5bHKtXpgPzhgu5L1Yi" * 28,
    "1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d",
    "SEC0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9",
    "smtp-pass-W0rd!",
    "gw-key-7d9f1e3c5b7a9d1f3e5c7b9a",
]
LINES = [
    '{"target": "qwen-privatelink", "kind": "dashscope", "url": "http://ep-demo01.dashscope.ap-southeast-1.'
    'privatelink.aliyuncs.com/compatible-mode/v1/models", "status": "degraded", "http_status": 200, '
    '"phases_ms": {"dns": 0.2, "connect": 2.7, "tls": null, "ttfb": 2.5, "total": 7.2}, "error": "connect_'
    'refused: TCP connection refused: 127.0.0.3:38443: connection refused"}',
    "gateway request POST /compatible-mode/v1/chat/completions 200 in 412 ms",
    "alert sent on dingtalk-oncall: 2 notifications",
    "the credential was rejected: HTTP 401: invalid_api_key Incorrect API key provided: "
    "sk-3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c",
]


def load(path: Path, name: str, flat: bool = False) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if flat:
        module._trie_pattern = lambda words: "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    for secret in SECRETS:
        module.register_secret(secret)
    if hasattr(module, "register_login"):
        module.register_login("alerts@example.com", SECRETS[6])
    return module


def per_line_us(module: ModuleType, repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        for line in LINES:
            module.redact_text(line)
    return (time.perf_counter() - start) / (repeat * len(LINES)) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="another version of shared/logs.py to compare with")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args(argv)
    variants = {"current": load(ROOT / "shared" / "logs.py", "logs_current")}
    variants["flat"] = load(ROOT / "shared" / "logs.py", "logs_flat", flat=True)
    if args.baseline:
        variants["baseline"] = load(args.baseline, "logs_baseline")
    for module in variants.values():  # every variant masks the raw key
        assert SECRETS[0] not in module.redact_text(LINES[3])
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, module in variants.items():
            times[name].append(per_line_us(module, args.repeat))
    ref = statistics.median(times["current"])
    print(f"{'variant':<10} {'median us/line':>15} {'vs current':>11}")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:<10} {median:>15.2f} {median / ref:>10.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
