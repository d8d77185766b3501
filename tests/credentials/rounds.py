"""Probe rounds with kms: and eas: credentials: the fake cloud (control plane) and the simulator (data plane).

The real SDK clients talk to tests/fakecloud.py through `responses`; probes talk to the simulator
on 127.0.0.2 over real sockets (httpx, which `responses` does not touch). The fixtures that start
both are in conftest.py.
"""

from __future__ import annotations

import asyncio

from shared.config.load import parse_config
from shared.credentials.control_plane import ControlPlane
from shared.credentials.provider import TokenProvider
from shared.credentials.settings import CloudSettings
from shared.probe.engine import Prober
from tests.fakecloud import FakeCloud

REGION = "ap-southeast-1"
PL = "ep-tok01.dashscope.ap-southeast-1.privatelink.aliyuncs.com"
DS_KEY = "sk-canary-kms-7f3a9b2c"
EAS_TOKEN = "canary-eas-token-51d0e8"

test_started = {"t": 0.0}  # set by the `cloud` fixture: the simulator is shared by a module's tests


class Clock:
    """A monotonic clock the test moves; each reading also ticks 1 ms, as time does."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


def eas_host(fake: FakeCloud) -> str:
    return f"{fake.account_id}.vpc.{REGION}.pai-eas.aliyuncs.com"


def make_config(sim, fake, *targets, **cloud):
    return parse_config(
        {
            "region": REGION,
            "defaults": {"timeout": "2s", "retries": 0},
            "resolve": {PL: f"127.0.0.2:{sim.port}", eas_host(fake): f"127.0.0.2:{sim.port}"},
            "cloud": {"retries": 2, **cloud},
            "targets": list(targets),
        }
    )


def kms_target(name="qwen", ref="kms:dashscope-key"):
    return {"name": name, "kind": "dashscope", "endpoint": f"http://{PL}", "credential": ref}


def eas_target(name="llm", fake=None, **fields):
    target = {"name": name, "kind": "eas", "credential": f"eas:{REGION}/llm"}
    if fake is not None:  # an explicit endpoint; without it the endpoint comes from DescribeService
        target["endpoint"] = f"http://{eas_host(fake)}/api/predict/llm"
    return {**target, **fields}


def provider(fake, config=None, *, env=None, clock=None, sleeps=None):
    settings = config.cloud if config is not None else CloudSettings(region=REGION, retries=2)
    env = fake.env() if env is None else env
    plane = ControlPlane(settings, env, sleep=(sleeps.append if sleeps is not None else no_sleep))
    return TokenProvider(env, settings, plane=plane, clock=clock or Clock())


def no_sleep(_seconds: float) -> None:
    raise AssertionError("unexpected retry sleep")


def run(config, tokens, names=None):
    return asyncio.run(Prober(config, tokens).run_round(names))


def sim_requests(sim, path_part=""):
    """This test's requests to the simulator (it is shared by the module)."""
    return [r for r in sim.requests if path_part in r["path"] and r["time"] >= test_started["t"]]
