"""The instance warm-up: a throwaway round on the instance's own loopback, and the TLS contexts https targets use."""

from __future__ import annotations

import sys

from shared.config.load import parse_config
from shared.probe import tls
from shared.probe.warmup import warm_up


def config(*endpoints: str):
    return parse_config(
        {"targets": [{"name": f"t{i}", "kind": "dashscope", "endpoint": e} for i, e in enumerate(endpoints)]}
    )


def test_an_http_only_config_builds_no_tls_context():
    tls.cached_context.cache_clear()
    report = warm_up(config("http://ep-a.dashscope.ap-southeast-1.privatelink.aliyuncs.com"))
    assert report["round"] == "up", report
    assert report["tls_contexts"] == 0 and tls.cached_context.cache_info().currsize == 0
    assert 0 < report["ms"] < 5000


def test_https_targets_get_their_contexts_and_the_certificate_reader_before_the_first_round():
    tls.cached_context.cache_clear()
    report = warm_up(config("https://vpc-ap-southeast-1.dashscope.aliyuncs.com", "http://10.0.0.1"))
    assert report["tls_contexts"] == 1 and tls.cached_context.cache_info().currsize == 1
    assert "cryptography.x509" in sys.modules
    assert report["round"] == "up"
