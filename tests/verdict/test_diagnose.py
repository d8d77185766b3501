"""diagnose() writes the remedy for the endpoint; for_status() maps an unexpected HTTP status to a code."""

from __future__ import annotations

import pytest

from shared.verdict.codes import Code
from shared.verdict.diagnose import Diagnosis, diagnose, for_status


def test_detail_and_context_fill_the_message_and_remedy():
    d = diagnose(Code.CONNECT_TIMEOUT, "10.0.0.1:443: TCP connect timed out", port=443, host=None)
    assert d.code is Code.CONNECT_TIMEOUT
    assert d.message == "TCP connect timed out: 10.0.0.1:443: TCP connect timed out"
    assert "allow inbound 443 " in d.remedy


def test_without_context_the_remedy_says_what_to_fill_in():
    d = diagnose(Code.TLS_ON_HTTP_ONLY)
    assert d.message == "TLS handshake failed on the endpoint's default domain"
    assert "http://the host," in d.remedy
    assert "https://vpc-REGION.dashscope.aliyuncs.com, REGION being the endpoint's region" in d.remedy


def test_the_targets_own_values_fill_every_placeholder():
    d = diagnose(Code.TLS_ON_HTTP_ONLY, host="ep-1.dashscope.cn-beijing.privatelink.aliyuncs.com", region="cn-beijing")
    assert d.remedy == (
        "The default endpoint domain supports only HTTP: use http://ep-1.dashscope.cn-beijing.privatelink."
        "aliyuncs.com, or HTTPS through the custom domain https://vpc-cn-beijing.dashscope.aliyuncs.com."
    )
    d = diagnose(Code.EAS_SERVICE_NOT_FOUND, service="grp.blue", region="cn-shanghai")
    assert "does not know service 'grp.blue' or" in d.remedy and "deployed in region cn-shanghai and" in d.remedy
    d = diagnose(Code.EAS_SERVICE_NOT_FOUND)
    assert "does not know the service named in the URL or" in d.remedy
    assert "deployed in the endpoint's region and" in d.remedy


@pytest.mark.parametrize(
    "code, words",
    [
        (Code.NO_ROUTE, ("route table", "vSwitch", "CEN", "security group")),
        (Code.TLS_PLAIN_HTTP, ("plain HTTP", "http://h.example", "HTTP only")),
        (Code.REQUEST_HEADER_INVALID, ("line break", "trailing newline")),
    ],
)
def test_new_codes_give_the_remedy_in_the_docs_terms(code, words):
    remedy = diagnose(code, host="h.example").remedy
    assert all(w in remedy for w in words), remedy


def test_to_dict_holds_plain_strings():
    d = diagnose(Code.SLOW, "900 ms > 500 ms").to_dict()
    assert d == {"code": "slow", "message": "slower than the latency objective: 900 ms > 500 ms", "remedy": d["remedy"]}
    assert type(d["code"]) is str


def test_diagnosis_is_immutable():
    with pytest.raises(AttributeError):
        Diagnosis(Code.SLOW, "m", "r").code = Code.ZONES_DOWN  # type: ignore[misc]


@pytest.mark.parametrize(
    "status,kind,body,code",
    [
        (200, "dashscope", b"", None),
        (204, "eas", b"", None),
        (400, "dashscope", b"{}", Code.BAD_REQUEST),
        (401, "eas", b"", Code.UNAUTHORIZED),
        (403, "dashscope", b"{}", Code.FORBIDDEN),
        (404, "eas", b"  ", Code.EAS_SERVICE_NOT_FOUND),
        (404, "eas", b'{"error": "no route"}', Code.PATH_NOT_FOUND),
        (404, "dashscope", b"", Code.PATH_NOT_FOUND),
        (408, "eas", b"", Code.REQUEST_TIMEOUT),
        (413, "eas", b"", Code.BODY_TOO_LARGE),
        (429, "dashscope", b"", Code.RATE_LIMITED),
        (450, "eas", b"", Code.EAS_QUEUE_FULL),
        (503, "eas", b"", Code.NO_READY_INSTANCE),
        (503, "dashscope", b"no healthy upstream", Code.NO_READY_INSTANCE),
        (503, "dashscope", b"{}", Code.MODEL_UNAVAILABLE),
        (500, "dashscope", b"", Code.SERVER_ERROR),
        (502, "eas", b"", Code.SERVER_ERROR),
        (302, "dashscope", b"", Code.UNEXPECTED_STATUS),
        (418, "dashscope", b"", Code.UNEXPECTED_STATUS),
    ],
)
def test_for_status(status, kind, body, code):
    assert for_status(status, kind=kind, body=body) is code
