"""Targets on loopback for the probe tests: the simulator's zones pinned with `resolve:`, one round each."""

from __future__ import annotations

import asyncio

from shared.config.load import parse_config
from shared.probe.engine import Prober

PL = "ep-test01.dashscope.ap-southeast-1.privatelink.aliyuncs.com"
CUSTOM = "vpc-ap-southeast-1.dashscope.aliyuncs.com"
EAS = "1234567890.vpc.ap-southeast-1.pai-eas.aliyuncs.com"
ZONES = ("127.0.0.2", "127.0.0.3")


def make_config(sim, *targets, **top):
    data = {
        "defaults": {"timeout": "2s", "retries": 0},
        "resolve": {
            PL: [f"{ip}:{sim.port}" for ip in ZONES],
            CUSTOM: [f"{ip}:{sim.https_port}" for ip in ZONES],
            EAS: [f"{ZONES[0]}:{sim.port}"],
        },
        "targets": list(targets),
        **top,
    }
    return parse_config(data)


def ds(name="ds", **fields):
    return {"name": name, "kind": "dashscope", "endpoint": f"http://{PL}", "credential": "env:DS_KEY", **fields}


def eas(name="eas", service="llm", **fields):
    return {
        "name": name,
        "kind": "eas",
        "endpoint": f"http://{EAS}/api/predict/{service}",
        "credential": "env:EAS_TOKEN",
        **fields,
    }


def probe_one(config, name=None):
    results = asyncio.run(Prober(config).run_round([name] if name else None))
    return results[0]


def code_of(result):
    return result.diagnosis.code if result.diagnosis else None
