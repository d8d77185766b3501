"""The FC handler never raises: a bad event is a `bad event` reply, a bad config a `config error` reply, and
anything unexpected an `internal error` reply and a log line, without the traceback or a secret."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from shared import logs
from shared.fc.probe_function import handle

ROOT = Path(__file__).resolve().parents[2]


def entry_handler():
    spec = importlib.util.spec_from_file_location("probe_index", ROOT / "functions" / "probe" / "index.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


def log_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.parametrize(
    "event,error",
    [
        (b"[" * 5000 + b"]" * 5000, "bad event: event nests too deep"),
        (b'{"targets": ' + b"9" * 4400 + b"}", "bad event: event holds a number too long to read (over 4300 digits)"),
        (b"\xff", "bad event: event is not UTF-8 text (byte 0xff at offset 0)"),
    ],
)
def test_the_entry_point_answers_a_hostile_event_with_a_bad_event_reply(event, error, tmp_path, capsys):
    reply = json.loads(entry_handler()(event, None))
    assert reply["ok"] is False and reply["error"].startswith(error)
    (line,) = log_lines(capsys.readouterr().out)
    assert line["event"] == "bad_event"


def test_a_non_utf8_config_is_a_config_error_reply(tmp_path, capsys):
    config = tmp_path / "vpcprobe.yaml"
    config.write_bytes(b"targets: []\n# \xe9\n")
    reply = json.loads(handle(b"{}", None, config_path=str(config)))
    assert reply == {
        "ok": False,
        "error": "config error",
        "problems": [f"{config}: is not UTF-8 text: byte 0xe9 at offset 14 (line 2); save it as UTF-8"],
    }


class ExplodingEvent(dict):
    """An event object (a direct caller may pass any object) whose lookups raise: a stand-in for a bug."""

    def __init__(self, message: str):
        super().__init__()
        self.message = message

    def __contains__(self, key: object) -> bool:
        raise RuntimeError(self.message)


class Context:
    request_id = "req-1"


def test_an_unexpected_exception_is_an_internal_error_reply_and_a_log_line(capsys):
    secret = "sk-handler-crash-canary-4711"
    logs.register_secret(secret)
    reply_text = handle(ExplodingEvent(f"boom with {secret} " + "x" * 10_000), Context())
    reply = json.loads(reply_text)
    assert reply["ok"] is False
    assert reply["error"].startswith("internal error: RuntimeError: boom with ")
    assert reply["where"].startswith("test_handler_errors.py:")
    assert len(reply_text) < 400  # the message is clipped
    out = capsys.readouterr().out
    (line,) = [line for line in log_lines(out) if line["event"] == "handler_crashed"]
    assert (line["level"], line["request_id"], line["where"]) == ("error", "req-1", reply["where"])
    for text in (reply_text, out):
        assert secret not in text and "Traceback" not in text
