"""Every test runs in an empty working directory of its own, so nothing it writes lands in the checkout or
in a path other runs share.

A round without a `state:` section keeps its history and alert state in the store's default directory:
`.vpcprobe/state` under the working directory (here the test's tmp_path), or in FC (FC_FUNCTION_NAME set)
the instance's `/tmp/vpcprobe`, which the test's tmp_path stands in for. Tests that need the repository
find it by ROOT = Path(__file__).resolve().parents[n], never through the working directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest

from shared.state import settings as state_settings


@pytest.fixture(autouse=True)
def _own_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    in_repo_default = state_settings.default_path
    fc_instance_tmp = str(tmp_path / "fc-instance-tmp")

    def default_path(environ: Mapping[str, str] = os.environ) -> str:
        return fc_instance_tmp if environ.get("FC_FUNCTION_NAME") else in_repo_default(environ)

    monkeypatch.setattr(state_settings, "default_path", default_path)
