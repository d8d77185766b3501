"""The state: section, validated; and the store it opens."""

from __future__ import annotations

import pytest

from shared.config.reader import Reader
from shared.state.file import FileStore
from shared.state.oss import OssStore
from shared.state.settings import StoreSettings, default_path, open_store, read_settings


def read(section: dict) -> tuple[StoreSettings, list[str]]:
    problems: list[str] = []
    r = Reader(section, "state", problems, "cfg.yaml")
    settings = read_settings(r)
    r.finish()
    return settings, problems


def test_default_paths_and_backends(tmp_path, oss_env):
    assert default_path({"FC_FUNCTION_NAME": "vpcprobe-probe"}) == "/tmp/vpcprobe"
    assert default_path({}) == ".vpcprobe/state"
    assert isinstance(open_store(StoreSettings(path=str(tmp_path))), FileStore)
    settings = StoreSettings("oss", bucket="my-bucket", endpoint="oss-cn-hangzhou-internal.aliyuncs.com")
    oss_store = open_store(settings, oss_env)
    assert isinstance(oss_store, OssStore) and oss_store.describe() == "oss store oss://my-bucket/vpcprobe/"


def test_valid_sections():
    assert read({}) == (StoreSettings(), [])
    assert read({"path": "/mnt/vpcprobe", "lease_ttl": "90s"}) == (
        StoreSettings("file", path="/mnt/vpcprobe", lease_ttl_s=90.0),
        [],
    )
    oss = {"backend": "oss", "bucket": "my-state", "endpoint": "oss-cn-hangzhou-internal.aliyuncs.com", "prefix": "p"}
    assert read(oss) == (
        StoreSettings("oss", bucket="my-state", endpoint="oss-cn-hangzhou-internal.aliyuncs.com", prefix="p/"),
        [],
    )


@pytest.mark.parametrize(
    "section,expected",
    [
        ({"backend": "nas"}, "cfg.yaml: state.backend: must be one of file, oss (got 'nas')"),
        ({"lease_ttl": "5s"}, "cfg.yaml: state.lease_ttl: must be at least 10s"),
        ({"bucket": "b"}, "cfg.yaml: state.bucket: belongs to backend: oss"),
        ({"backend": "oss", "path": "/x", "bucket": "b-1", "endpoint": "e"}, "state.path: belongs to backend: file"),
        ({"backend": "oss", "endpoint": "e"}, "cfg.yaml: state.bucket: is required"),
        ({"backend": "oss", "bucket": "My_Bucket", "endpoint": "e"}, "state.bucket: 'My_Bucket' is not an OSS bucket"),
        ({"backend": "oss", "bucket": "b-1", "endpoint": "oss.example.com/x"}, "state.endpoint: 'oss.example.com/x'"),
    ],
)
def test_problems_name_the_field_and_fix(section, expected):
    _settings, problems = read(section)
    assert any(expected in p for p in problems), problems
