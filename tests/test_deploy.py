"""s.yaml, the example config and the README agree on where alert state lives in FC."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _syaml() -> dict:
    return yaml.safe_load((ROOT / "s.yaml").read_text())


def test_probe_function_mounts_the_shared_explicit_nas_config() -> None:
    doc = _syaml()
    nas = doc["vars"]["nasConfig"]
    assert nas != "auto"  # fc3 mounts `auto` at /mnt/<functionName>: each function its own directory
    assert {"userId", "groupId", "mountPoints"} <= set(nas)
    (mount,) = nas["mountPoints"]
    assert mount["mountDir"].startswith("/mnt/") and ":/" in mount["serverAddr"]
    probe = doc["resources"]["vpcprobe-probe"]["props"]
    assert probe["nasConfig"] == "${vars.nasConfig}"


def test_example_config_and_readme_point_state_at_the_mount_dir() -> None:
    mount_dir = _syaml()["vars"]["nasConfig"]["mountPoints"][0]["mountDir"]
    example = (ROOT / "vpcprobe.example.yaml").read_text()
    readme = (ROOT / "README.md").read_text()
    assert f"path: {mount_dir}}}" in example
    assert f"path: {mount_dir} " in readme
    for text in (example, readme, (ROOT / "s.yaml").read_text()):
        assert "/mnt/auto" not in text and "/mnt/nas/" not in text
