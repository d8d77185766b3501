"""`vpcprobe doctor`: the remedy it prints is written for the URL it was given."""

from __future__ import annotations

import pytest

from shared.local.doctor import run_doctor
from shared.local.simulator import Simulator


@pytest.fixture(scope="module")
def sim():
    s = Simulator(hosts=("127.0.0.2",), eas_services={"llm": "eas-token-1"}).start()
    yield s
    s.stop()


def test_eas_404_remedy_names_the_service_from_the_url(sim):
    """Was: `The gateway does not know service '<service>' ... in region <region>` printed as is."""
    code, report = run_doctor(f"http://127.0.0.2:{sim.port}/api/predict/nosuch")
    assert code == 1
    remedy = report.splitlines()[-1]
    assert remedy.startswith("remedy: The EAS gateway does not know service 'nosuch' or is not ready")
    assert "<" not in report and ">" not in report and "{" not in report
