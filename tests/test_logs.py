"""Redaction: no secret reaches a log line, by field name or by value."""

import io
import json

from shared import logs


def _capture(**fields) -> str:
    stream = io.StringIO()
    logs.configure(stream=stream)
    logs.get_logger().info("evt", **fields)
    logs.configure(stream=None)
    return stream.getvalue()


def test_secret_named_fields_are_masked():
    line = json.loads(_capture(authorization="Bearer abc", api_key="k1", headers={"X-Token": "t0k"}, plain="ok"))
    assert line["authorization"] == "***" and line["api_key"] == "***" and line["headers"]["X-Token"] == "***"
    assert line["plain"] == "ok"


def test_patterns_inside_text_are_masked():
    text = _capture(
        msg="POST https://oapi.dingtalk.com/robot/send?access_token=abcdef123&timestamp=1&sign=xyz%3D failed",
        other="header Authorization: Bearer sk-live-123456789 and Authorization: rawtoken123",
    )
    for secret in ("abcdef123", "xyz%3D", "sk-live-123456789", "rawtoken123"):
        assert secret not in text
    assert "timestamp=1" in text


def test_registered_values_are_masked_anywhere():
    logs.register_secret("canary-VALUE-42")
    text = _capture(msg="upstream said: bad key canary-VALUE-42 (x)", nested=[{"a": "canary-VALUE-42"}])
    assert "canary-VALUE-42" not in text and text.count("***") >= 2


def test_exceptions_are_rendered_redacted():
    logs.register_secret("hunter2-secret")
    text = _capture(error=RuntimeError("login failed for hunter2-secret"))
    assert "hunter2-secret" not in text and "RuntimeError" in text
