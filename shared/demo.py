"""`vpcprobe serve --demo`: the simulator plus a config that looks like a real deployment.

Realistic PrivateLink and EAS host names are mapped onto the simulator's loopback addresses
through `resolve:` (two addresses = two zones' endpoint ENIs), and a fault script makes targets
degrade, go down and recover so a person sees what vpcprobe reports.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from shared.simulator import Fault, Simulator

ZONE_A, ZONE_B = "127.0.0.2", "127.0.0.3"
PL_HOST = "ep-demo01.dashscope.ap-southeast-1.privatelink.aliyuncs.com"
CUSTOM_HOST = "vpc-ap-southeast-1.dashscope.aliyuncs.com"
EAS_HOST = "1234567890.vpc.ap-southeast-1.pai-eas.aliyuncs.com"
DEMO_KEY, DEMO_EAS_TOKEN = "sk-demo-0123456789abcdef", "eas-demo-token-0123456789"


@dataclass
class DemoStep:
    round: int
    say: str
    act: Callable[[Simulator], object]


def fault_script() -> list[DemoStep]:
    """One 12-round cycle: a zone dies and returns, EAS loses its instances, a slow model, a bad stream."""
    return [
        DemoStep(3, f"zone B's endpoint ENI ({ZONE_B}) stops answering", lambda s: s.set_host_down(ZONE_B)),
        DemoStep(5, "zone B is back", lambda s: s.set_host_down(ZONE_B, False)),
        DemoStep(
            6,
            "EAS service llm_demo loses its ready instances",
            lambda s: s.set_eas_service("llm_demo", token=DEMO_EAS_TOKEN, state="unready"),
        ),
        DemoStep(
            8,
            "EAS service llm_demo is ready again",
            lambda s: s.set_eas_service("llm_demo", token=DEMO_EAS_TOKEN, state="running"),
        ),
        DemoStep(
            9,
            "Model Studio answers the models list slowly (3.5 s)",
            lambda s: s.inject(Fault(route="/compatible-mode/v1/models", latency_ms=3500)),
        ),
        DemoStep(10, "latency back to normal", lambda s: s.clear()),
        DemoStep(
            11,
            "the native chat stream sends an error frame",
            lambda s: s.inject(Fault(route="/api/v1/services/*", stream_error=True)),
        ),
        DemoStep(12, "the stream is healthy again", lambda s: s.clear()),
    ]


def start_demo(workdir: Path) -> tuple[Simulator, Path]:
    """Start the simulator and write the demo config; returns both (caller stops the simulator)."""
    sim = Simulator(
        hosts=(ZONE_A, ZONE_B),
        tls_hostnames=(CUSTOM_HOST,),
        region="ap-southeast-1",
        api_keys={DEMO_KEY: "ap-southeast-1"},
        eas_services={"llm_demo": DEMO_EAS_TOKEN},
    ).start()
    workdir.mkdir(parents=True, exist_ok=True)
    ca = workdir / "demo-ca.pem"
    ca.write_bytes(sim.ca_pem or b"")
    os.environ["VPCPROBE_DEMO_DASHSCOPE_KEY"] = DEMO_KEY
    os.environ["VPCPROBE_DEMO_EAS_TOKEN"] = DEMO_EAS_TOKEN
    config = {
        "region": "ap-southeast-1",
        "defaults": {"timeout": "5s", "retries": 1, "latency_slo": "3s"},
        "resolve": {
            PL_HOST: [f"{ZONE_A}:{sim.port}", f"{ZONE_B}:{sim.port}"],
            CUSTOM_HOST: [f"{ZONE_A}:{sim.https_port}", f"{ZONE_B}:{sim.https_port}"],
            EAS_HOST: [f"{ZONE_A}:{sim.port}"],
        },
        "targets": [
            {
                "name": "qwen-privatelink",
                "kind": "dashscope",
                "endpoint": f"http://{PL_HOST}",
                "credential": "env:VPCPROBE_DEMO_DASHSCOPE_KEY",
            },
            {
                "name": "qwen-native-stream",
                "kind": "dashscope",
                "endpoint": f"http://{PL_HOST}",
                "api": "native",
                "credential": "env:VPCPROBE_DEMO_DASHSCOPE_KEY",
                "probe": {"mode": "chat", "model": "qwen-flash", "stream": True},
            },
            {
                "name": "qwen-custom-domain",
                "kind": "dashscope",
                "endpoint": f"https://{CUSTOM_HOST}",
                "credential": "env:VPCPROBE_DEMO_DASHSCOPE_KEY",
                "ca_bundle": str(ca),
            },
            {
                "name": "llm-eas-vpc",
                "kind": "eas",
                "endpoint": f"http://{EAS_HOST}/api/predict/llm_demo",
                "credential": "env:VPCPROBE_DEMO_EAS_TOKEN",
                "probe": {"mode": "chat", "model": "DeepSeek-R1-Distill-Qwen-7B"},
            },
        ],
    }
    path = workdir / "vpcprobe.demo.yaml"
    path.write_text(
        "# written by `vpcprobe serve --demo`; endpoints are the built-in simulator\n"
        + yaml.safe_dump(config, sort_keys=False)
    )
    return sim, path
