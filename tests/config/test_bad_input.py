"""Issue 11's crashes on bad config input: each is now a ConfigError naming the file and field, quoting at
most a short excerpt of the value, and never another exception."""

from __future__ import annotations

import datetime

import pytest
import yaml

from shared.config.load import ConfigError, load_config, parse_config
from shared.config.reader import MAX_PROBLEMS
from shared.errors import EXCERPT_CHARS

PL = "http://ep-a.dashscope.ap-southeast-1.privatelink.aliyuncs.com"
EAS = "http://1234567890.vpc.ap-southeast-1.pai-eas.aliyuncs.com"
TARGET = {"name": "t", "kind": "dashscope", "endpoint": PL}
CONSOLE = {"channels": [{"name": "c", "type": "console"}]}


def problems_of(data) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, path="cfg.yaml")
    return info.value.problems


def file_problems(tmp_path, raw: bytes) -> list[str]:
    path = tmp_path / "bad.yaml"
    path.write_bytes(raw)
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    return [p.replace(str(path), "bad.yaml") for p in info.value.problems]


def test_a_non_utf8_config_names_the_file_and_byte_offset(tmp_path):
    raw = yaml.safe_dump({"targets": [TARGET]}).encode() + b"# r\xe9gion\n"
    offset = raw.index(b"\xe9")
    assert file_problems(tmp_path, raw) == [
        f"bad.yaml: is not UTF-8 text: byte 0xe9 at offset {offset} (line 5); save it as UTF-8"
    ]


def test_500_levels_of_nesting(tmp_path):
    raw = yaml.safe_dump({"targets": [TARGET]}).encode() + b"x: " + b"[" * 500 + b"]" * 500 + b"\n"
    assert file_problems(tmp_path, raw) == ["bad.yaml: line 5, column 67: the document nests deeper than 64 levels"]


def test_an_alias_bomb_in_a_field_is_refused_with_a_small_message(tmp_path):
    bomb = "a0: &a0 [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9)
    )
    raw = (bomb + "concurrency: *a8\n" + yaml.safe_dump({"targets": [TARGET]})).encode()
    (problem,) = file_problems(tmp_path, raw)
    assert problem.startswith("bad.yaml: line 6, column ") and "aliases expand the document past" in problem
    assert len(problem) < 200


def test_a_large_structure_in_a_field_is_quoted_as_an_excerpt():
    body = [list(range(1000))] * 100  # what a smaller alias bomb gives: 100,000 items
    (problem,) = problems_of({"concurrency": body, "targets": [TARGET]})
    assert problem.startswith("cfg.yaml: concurrency: must be a whole number >= 1 (got [[0, 1, 2, 3, ...], ")
    assert problem.endswith("…)") and len(problem) < 80 + EXCERPT_CHARS


@pytest.mark.parametrize("field", ["name", "endpoint", "credential", "api", "region", "workspace"])
def test_a_megabyte_string_is_quoted_as_an_excerpt(field):
    problems = problems_of({"targets": [{**TARGET, field: "x" * 1_000_000}]})
    assert problems and all(len(problem) < 400 for problem in problems)


def test_a_time_zone_name_over_255_characters():
    problems = problems_of({"targets": [TARGET], "alerts": {**CONSOLE, "timezone": "A" * 300}})
    assert problems == [
        f"cfg.yaml: alerts.timezone: unknown time zone '{'A' * EXCERPT_CHARS}'…; "
        "use an IANA name such as Asia/Shanghai or UTC"
    ]


@pytest.mark.parametrize(
    "window,expected",
    [
        (
            {"start": "2026-01-01T00:00", "duration": "99999999999999h"},
            "cfg.yaml: maintenance[m].duration: must be at most 10 years (got '99999999999999h')",
        ),
        (
            {"start": "9999-12-31T23:00", "duration": "2h"},
            "cfg.yaml: maintenance[m].duration: the window would end after the year 9999: give a shorter "
            "duration or an earlier start",
        ),
        (
            {"start": "9999-12-31T23:00", "end": "9999-12-31T23:30", "timezone": "America/Los_Angeles"},
            "cfg.yaml: maintenance[m].start: '9999-12-31T23:00' is out of range: a window lies between the years "
            "1 and 9999 in UTC too",
        ),
        (
            {"start": "0001-01-01T00:00", "end": "0001-01-01T02:00", "timezone": "Asia/Shanghai"},
            "cfg.yaml: maintenance[m].start: '0001-01-01T00:00' is out of range: a window lies between the years "
            "1 and 9999 in UTC too",
        ),
    ],
)
def test_maintenance_windows_out_of_datetime_range(window, expected):
    problems = problems_of({"targets": [TARGET], "alerts": CONSOLE, "maintenance": [{"name": "m", **window}]})
    assert problems[0] == expected


@pytest.mark.parametrize(
    "headers,expected",
    [
        ({1: "x"}, "1 is not a header name"),
        ({"X-A": 5}, "X-A: must be a one-line string of Latin-1 characters, at most 8 KiB (got 5)"),
        ({"X-A": "a\r\nHost: evil"}, "X-A: must be a one-line string"),
        ({"Bad Name": "x"}, "'Bad Name' is not a header name"),
        (["X-A: b"], "must map header names to string values (got list)"),
        ({"authorization": "sk-x"}, "must not set Authorization"),
        ({"X-A": "中"}, "X-A: must be a one-line string of Latin-1 characters"),  # was: probe_crashed each round
        ({"X-A": "\ud800"}, "X-A: must be a one-line string of Latin-1 characters"),
    ],
)
def test_probe_headers_are_checked(headers, expected):
    (problem,) = problems_of({"targets": [{**TARGET, "probe": {"headers": headers}}]})
    assert problem.startswith("cfg.yaml: targets[t].probe.headers: ") and expected in problem


def test_a_probe_body_that_is_not_json():
    body = {"when": datetime.date(2026, 1, 1)}  # what YAML reads from an unquoted when: 2026-01-01
    target = {**TARGET, "probe": {"mode": "http", "path": "/x", "method": "POST", "body": body}}
    (problem,) = problems_of({"targets": [target]})
    assert problem.startswith("cfg.yaml: targets[t].probe.body: must be text or JSON")
    assert "date is not JSON serializable" in problem


def test_a_probe_body_with_a_lone_surrogate(tmp_path):
    """YAML's "\\ud800" escape reads as a lone surrogate, which UTF-8 cannot encode: the probe crashed."""
    raw = yaml.safe_dump({"targets": [{**TARGET, "probe": {"mode": "http", "path": "/x", "method": "POST"}}]})
    raw += '    body: "\\ud800"\n'  # the escape, as a person would type it
    assert file_problems(tmp_path, raw.encode()) == [
        "bad.yaml: targets[t].probe.body: holds a lone surrogate (a \\ud800-style escape) that UTF-8 cannot carry"
    ]


def test_a_huge_name_in_a_field_path_is_cut_keeping_both_ends():
    """Found by `make fuzz`: a window named with 20,000 characters made a 20,000-character problem."""
    window = {"name": "Z" * 20_000}
    (problem,) = problems_of({"targets": [TARGET], "alerts": CONSOLE, "maintenance": [window]})
    assert problem.startswith("cfg.yaml: maintenance[ZZZZ") and "Z…Z" in problem
    assert problem.endswith("].start: is required: a date and time (\"2026-12-01T02:00\") or a daily time "
                            "(\"02:00\") with duration")
    assert len(problem) < 400


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://ep-a..dashscope.ap-southeast-1.privatelink.aliyuncs.com",
        f"http://{'a' * 64}.example.com",
        f"http://a_b.{'a' * 64}.example.com",  # the underscore rule came first, and let the long label through
        "http://127.0.0.1:0",
    ],
)
def test_an_endpoint_no_request_can_reach(endpoint):
    (problem,) = problems_of({"targets": [{**TARGET, "endpoint": endpoint}]})
    assert problem.startswith("cfg.yaml: targets[t].endpoint: ")
    assert "is not a valid DNS name" in problem or "port 0 is no server's port" in problem


@pytest.mark.parametrize("path", ["/a b", "/x\r\nHost: evil", "no-slash", "/" + "a" * 9000])
def test_an_http_probe_path_must_fit_a_request_line(path):
    problems = problems_of({"targets": [{**TARGET, "probe": {"mode": "http", "path": path}}]})
    assert problems[0].startswith("cfg.yaml: targets[t].probe.path: must start with / and hold no spaces")


def test_retries_are_bounded():
    (problem,) = problems_of({"targets": [{**TARGET, "probe": {"retries": 10**9}}]})
    assert problem == "cfg.yaml: targets[t].probe.retries: must be at most 10 (got 1000000000)"


def test_a_ca_bundle_that_holds_no_certificate(tmp_path):
    """Was: every probe of the target crashed (`probe_crashed`: SSLError) building its TLS context."""
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not a certificate\n")
    (problem,) = problems_of({"targets": [{**TARGET, "ca_bundle": str(bundle)}]})
    assert problem.startswith("cfg.yaml: targets[t].ca_bundle: file '/") and " is not a PEM CA bundle: " in problem
    assert "NO_CERTIFICATE_OR_CRL_FOUND" in problem


def test_a_ca_bundle_name_too_long_for_the_file_system():
    (problem,) = problems_of({"targets": [{**TARGET, "ca_bundle": "/" + "c" * 5000}]})
    assert problem.startswith("cfg.yaml: targets[t].ca_bundle: file '/ccc") and problem.endswith("'… does not exist")


def test_a_flood_of_problems_is_cut_to_the_first_hundred():
    problems = problems_of({"targets": [TARGET], **{f"unknown{i}": 1 for i in range(5000)}})
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[-1] == f"... and {5000 - MAX_PROBLEMS} more problems"


def test_a_megabyte_key_is_cut_in_the_field_path():
    (problem,) = problems_of({"targets": [TARGET], "k" * 1_000_000: 1})
    assert problem.startswith(f"cfg.yaml: {'k' * 60}…: unknown field") and len(problem) < 300


# ------------------------------------------------------------------ the request URL, settled at load


def eas(**fields):
    return {"targets": [{"name": "e", "kind": "eas", **fields}]}


def test_a_doubled_v1_in_an_eas_endpoint_is_refused_in_every_mode():
    url = f"{EAS}/api/predict/svc/v1/v1/chat/completions"
    for mode in ("models", "chat", "http"):
        probe = {"mode": mode, "model": "m", "path": "/health"}
        (problem,) = problems_of(eas(endpoint=url, probe=probe))
        assert problem == (
            f"cfg.yaml: targets[e].endpoint: '{url}': the path repeats '/v1/v1'; the base URL already ends with "
            "'/v1', so the API path must not start with it again"
        )


def test_a_doubled_v1_from_the_api_path_is_refused():
    (problem,) = problems_of(eas(endpoint=f"{EAS}/api/predict/svc", api_path="/v1/v1/chat/completions"))
    assert problem.startswith(f"cfg.yaml: targets[e].api_path: '{EAS}/api/predict/svc/v1/v1/chat/completions': ")


def test_a_service_named_like_the_api_path_is_refused_where_it_would_double():
    (problem,) = problems_of(eas(endpoint=f"{EAS}/api/predict/v1"))  # models: GET .../api/predict/v1/v1/models
    assert "targets[e].endpoint:" in problem and "the path repeats '/v1/v1'" in problem


def test_an_http_probe_path_that_doubles_is_refused():
    target = {**TARGET, "probe": {"mode": "http", "path": "/compatible-mode/v1/v1/models"}}
    (problem,) = problems_of({"targets": [target]})
    assert problem.startswith("cfg.yaml: targets[t].probe.path: ") and "repeats '/v1/v1'" in problem


def test_an_api_path_a_models_probe_does_not_use_is_a_warning():
    config = parse_config(eas(endpoint=f"{EAS}/api/predict/svc/v1/chat/completions"), path="cfg.yaml")
    (target,) = config.targets
    assert (target.api_path, target.request_path) == ("/v1/chat/completions", "/v1/models")
    assert target.warnings[-1] == (
        "the API path '/v1/chat/completions' (api_path, or the endpoint URL after the service) is used by chat "
        "probes only; this models probe requests /v1/models"
    )
    url = f"{EAS}/api/predict/svc/v1/chat/completions"
    assert parse_config(eas(endpoint=url, probe={"mode": "chat", "model": "m"})).targets[0].warnings == ()


def test_selecting_thousands_of_unknown_targets_lists_ten():
    config = parse_config({"targets": [TARGET]}, path="cfg.yaml")
    with pytest.raises(ConfigError) as info:
        config.select([f"n{i}" for i in range(5000)])
    (problem,) = info.value.problems
    assert problem == "unknown target(s) n0, n1, n2, n3, n4, n5, n6, n7, n8, n9 and 4990 more; configured: t"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "t\n"}, "targets[0].name"),
        ({"credential": "env:DS_KEY\n"}, "targets[t].credential"),
        ({"probe": {"headers": {"X-A\n": "v"}}}, "targets[t].probe.headers"),
        ({"probe": {"headers": {"X-A": "v\n"}}}, "targets[t].probe.headers"),
        ({"workspace": "ws-1\n"}, "targets[t].workspace"),
    ],
    ids=["name", "credential", "header-name", "header-value", "workspace"],
)
def test_a_value_ending_in_a_line_break_is_refused(change, field):
    """What a YAML block scalar (`key: |`) gives: a final newline, which a `$`-anchored pattern lets through
    (`$` matches before it) and which, in a header or a request line, breaks the request every round."""
    found = problems_of({"targets": [{**TARGET, **change}]})
    assert any(field in p for p in found), found
