"""The edges of for_status (the 2xx range, the 2 KiB of body it reads, bytes that are not UTF-8) and the
words remedy_values puts where the probe does not know a value (none, None and "" alike)."""

from __future__ import annotations

import pytest

from shared.verdict.codes import Code
from shared.verdict.diagnose import for_status, remedy_values

UNKNOWN = {
    "host": "the host",
    "port": "80/443",
    "scheme": "http or https",
    "region": "the endpoint's region",
    "in_region": "in the endpoint's region",
    "service": "the service named in the URL",
    "custom_domain": "https://vpc-REGION.dashscope.aliyuncs.com, REGION being the endpoint's region",
}


@pytest.mark.parametrize("status", [199, 300, 301])
def test_outside_2xx_is_not_fine(status):
    assert for_status(status, kind="dashscope", body=b"") is Code.UNEXPECTED_STATUS


def test_a_body_that_is_not_utf8_is_read_with_replacements():
    body = b"\xff\xfe no healthy upstream \xc3"
    assert for_status(503, kind="dashscope", body=body) is Code.NO_READY_INSTANCE


@pytest.mark.parametrize("ends_at,code", [(2048, Code.NO_READY_INSTANCE), (2049, Code.MODEL_UNAVAILABLE)])
def test_only_the_first_2048_bytes_are_read(ends_at, code):
    phrase = b"no healthy upstream"
    body = b" " * (ends_at - len(phrase)) + phrase + b" " * 10
    assert for_status(503, kind="dashscope", body=body) is code


def test_nothing_known_reads_as_words():
    assert remedy_values() == UNKNOWN


def test_none_and_empty_values_are_unknown():
    empty = dict.fromkeys(("host", "port", "scheme", "region", "service"), "")
    assert remedy_values(**empty) == UNKNOWN
    assert remedy_values(**dict.fromkeys(empty)) == UNKNOWN


def test_known_values_fill_every_placeholder():
    values = remedy_values(host="h.example", port=8443, scheme="https", region="cn-beijing", service="svc")
    assert values == {
        "host": "h.example",
        "port": "8443",
        "scheme": "https",
        "region": "cn-beijing",
        "in_region": "in region cn-beijing",
        "service": "service 'svc'",
        "custom_domain": "https://vpc-cn-beijing.dashscope.aliyuncs.com",
    }
