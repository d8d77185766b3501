"""Fuzzed input never crashes vpcprobe (issue 11): each parser returns a value or raises its own error
class with a bounded message; another exception fails the property, and so does a case that outlives the
profile's deadline (a hang). Profiles: tests/fuzz/conftest.py (`make fuzz` runs the long one)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from shared.config import urls
from shared.config.load import Config, ConfigError, load_config, parse_config
from shared.config.reader import MAX_PROBLEMS
from shared.config.targets import Target
from shared.fc.events import BadEvent, ProbeRequest, parse_probe_event, timer_event
from shared.fc.probe_function import handle
from shared.local.doctor import doctor_target
from shared.local.schedule import ScheduleError, parse_schedule
from shared.probe.attempt import wire_request
from shared.probe.request import build_request
from shared.probe.tls import cached_context
from tests.fuzz import strategies as s

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = (ROOT / "vpcprobe.example.yaml").read_bytes()
EXAMPLE_DOC = yaml.safe_load(EXAMPLE)


def refused_cleanly(call: Callable[[], Any], errors: type[Exception] | tuple[type[Exception], ...]) -> Any:
    """call(), or its refusal: one of `errors`, with a bounded message (ConfigError: bounded problems)."""
    try:
        return call()
    except errors as exc:
        problems = getattr(exc, "problems", [str(exc)])
        assert 0 < len(problems) <= MAX_PROBLEMS + 1
        for problem in problems:
            assert 0 < len(problem) <= s.MAX_MESSAGE_CHARS, problem[:300]
        return None


def sendable(target: Target) -> None:
    """What a probe of the target does before any answer can come: build its request, encode it for the
    wire, build its TLS context, ask the resolver for its host. Input that passed validation but failed
    here reached the engine's catch-all (`probe_crashed`, exit 1) before issue 11's follow-up: a lone
    surrogate in a body, a non-Latin-1 header, an empty DNS label, a CA bundle without a certificate."""
    wire_request(build_request(target, "sk-fuzz-token"), target).wire()
    if target.endpoint.scheme == "https":
        cached_context(target.ca_bundle, target.tls_verify)
    if not urls.is_ip(target.endpoint.host):
        target.endpoint.host.encode("idna")


def probe_ready(config: Config | None) -> None:
    for target in config.targets if config is not None else ():
        sendable(target)


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="vpcprobe-fuzz-") as path:
        yield Path(path)


def load_bytes(workdir: Path, raw: bytes) -> Any:
    path = workdir / "vpcprobe.yaml"
    path.write_bytes(raw)
    config = refused_cleanly(lambda: load_config(str(path), function_region="ap-southeast-1"), ConfigError)
    probe_ready(config)
    return config


# ------------------------------------------------------------------ config


@given(s.documents)
def test_generated_config_documents(doc):
    probe_ready(
        refused_cleanly(lambda: parse_config(doc, path="fuzz.yaml", function_region="ap-southeast-1"), ConfigError)
    )


@given(s.documents)
def test_generated_config_documents_through_yaml_text(workdir, doc):
    load_bytes(workdir, yaml.safe_dump(doc, allow_unicode=True).encode())


def _mutate(doc: Any, data: st.DataObject, depth: int = 0) -> Any:
    """One change somewhere in the example: a value replaced, a key dropped or added, an item duplicated."""
    if isinstance(doc, dict) and doc and depth < 6:
        key = data.draw(st.sampled_from(sorted(doc, key=str)))
        action = data.draw(st.sampled_from(["descend", "descend", "replace", "drop", "add"]))
        if action == "descend":
            return {**doc, key: _mutate(doc[key], data, depth + 1)}
        if action == "replace":
            return {**doc, key: data.draw(s.values())}
        if action == "drop":
            return {k: v for k, v in doc.items() if k != key}
        return {**doc, data.draw(st.text(max_size=12)): data.draw(s.values())}
    if isinstance(doc, list) and doc and depth < 6:
        i = data.draw(st.integers(0, len(doc) - 1))
        action = data.draw(st.sampled_from(["descend", "descend", "replace", "duplicate"]))
        if action == "descend":
            return [*doc[:i], _mutate(doc[i], data, depth + 1), *doc[i + 1 :]]
        if action == "duplicate":
            return [*doc, doc[i]]
        return [*doc[:i], data.draw(s.values()), *doc[i + 1 :]]
    return data.draw(st.one_of(s.values(), s.urls))


@given(st.data())
def test_mutations_of_the_example_config(data):
    doc = EXAMPLE_DOC
    for _ in range(data.draw(st.integers(1, 4))):
        doc = _mutate(doc, data)
    probe_ready(
        refused_cleanly(lambda: parse_config(doc, path="fuzz.yaml", function_region="ap-southeast-1"), ConfigError)
    )


WORKING_TARGET = {"name": "t", "kind": "dashscope", "endpoint": "https://vpc-ap-southeast-1.dashscope.aliyuncs.com"}
WORKING_PROBE = {"mode": "http", "path": "/x", "method": "POST", "body": "{}"}


@given(st.data())
def test_one_or_two_fields_of_a_working_target(data):
    """A working target with a field or two drawn: whole generated documents seldom load, so this is where a
    value that loads but cannot be sent shows (a lone surrogate in a body, a non-Latin-1 header)."""
    target, probe = dict(WORKING_TARGET), dict(WORKING_PROBE)
    for _ in range(data.draw(st.integers(1, 2))):
        block, fields = data.draw(st.sampled_from([(probe, s.PROBE_FIELDS), (target, s.TARGET_FIELDS)]))
        key = data.draw(st.sampled_from(sorted(fields)))
        block[key] = data.draw(fields[key])
    doc = {"targets": [{**target, "probe": probe}]}
    probe_ready(
        refused_cleanly(lambda: parse_config(doc, path="fuzz.yaml", function_region="ap-southeast-1"), ConfigError)
    )


# Where a working target's text reaches the request (block, field, how the text is placed there).
CARRIED_TEXT = [
    ("probe", "body", lambda v: v),
    ("probe", "body", lambda v: {"prompt": v}),
    ("probe", "headers", lambda v: {"X-Fuzz": v}),
    ("probe", "path", lambda v: "/" + v),
    ("probe", "model", lambda v: v),
    ("probe", "expect_body", lambda v: v),
    ("target", "workspace", lambda v: v),
    ("target", "endpoint", lambda v: f"http://{v}.example.com"),
    ("target", "endpoint", lambda v: f"http://127.0.0.1:8000/api/predict/s{v}"),
]


@given(st.sampled_from(CARRIED_TEXT), s.awkward_text)
def test_awkward_text_where_the_request_carries_it(carried, text):
    """Text that passes a type check but not the wire (a lone surrogate, non-Latin-1 in a header, a line
    break): refused by the config, or sent."""
    block, key, place = carried
    target, probe = dict(WORKING_TARGET), dict(WORKING_PROBE)
    (probe if block == "probe" else target)[key] = place(text)
    doc = {"targets": [{**target, "probe": probe}]}
    probe_ready(
        refused_cleanly(lambda: parse_config(doc, path="fuzz.yaml", function_region="ap-southeast-1"), ConfigError)
    )


@given(st.lists(st.tuples(st.integers(0, len(EXAMPLE)), st.integers(0, 8), st.binary(max_size=8)), max_size=6))
def test_byte_edits_of_the_example_config(workdir, edits):
    raw = EXAMPLE
    for at, cut, insert in edits:
        raw = raw[:at] + insert + raw[at + cut :]
    load_bytes(workdir, raw)


@given(st.binary(max_size=400))
def test_raw_bytes_as_a_config_file(workdir, raw):
    load_bytes(workdir, raw)


@given(s.yaml_text)
def test_yaml_grammar_soup_as_a_config_file(workdir, text):
    load_bytes(workdir, text.encode())


# ------------------------------------------------------------------ FC events


events = st.one_of(
    st.builds(  # timer trigger: its payload is text, often JSON
        lambda t, payload: json.dumps({"triggerTime": t, "triggerName": "probe-timer", "payload": payload}).encode(),
        st.one_of(st.text(max_size=30), s.json_values),
        st.one_of(
            st.text(max_size=40),
            st.builds(lambda ts, a: json.dumps({"targets": ts, "alert": a}), s.target_lists, s.json_values),
            s.json_values,
        ),
    ),
    st.builds(  # invoke payload
        lambda body: json.dumps(body).encode(),
        st.one_of(
            st.fixed_dictionaries({}, optional={"targets": s.target_lists, "alert": s.json_values}), s.json_values
        ),
    ),
    st.builds(lambda depth, inner: b"[" * depth + inner + b"]" * depth, st.integers(0, 3000), st.binary(max_size=5)),
    st.integers(4000, 5000).map(lambda n: b'{"targets": ' + b"7" * n + b"}"),
    st.binary(max_size=100),
    st.text(max_size=100),
    s.json_values,
)


@given(events)
def test_fc_events(event):
    request = refused_cleanly(lambda: parse_probe_event(event), BadEvent)
    assert request is None or isinstance(request, ProbeRequest)


@pytest.fixture(scope="module")
def refused_target_config(workdir) -> Iterator[str]:
    """A config whose one target answers at once (a refused connection on loopback): a round is cheap."""
    config = workdir / "handler.yaml"
    host = "ep-fuzz.dashscope.ap-southeast-1.privatelink.aliyuncs.com"
    doc = {
        "defaults": {"timeout": "1s", "retries": 0},
        "resolve": {host: "127.0.0.1:9"},
        "targets": [{"name": "t", "kind": "dashscope", "endpoint": f"http://{host}"}],
    }
    config.write_text(yaml.safe_dump(doc))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workdir)  # a round records its history under ./.vpcprobe
        yield str(config)


@given(st.one_of(events, st.just(timer_event("2026-01-01T00:00:00Z"))))
def test_the_handler_always_answers_json(refused_target_config, event):
    reply = json.loads(handle(event, None, config_path=refused_target_config))
    assert isinstance(reply["ok"], bool)
    if "results" not in reply:  # refused: says why, briefly
        assert reply["ok"] is False and 0 < len(reply["error"]) <= s.MAX_MESSAGE_CHARS
        assert not reply["error"].startswith("internal error")  # a bug, not a refusal


# ------------------------------------------------------------------ timer schedules


@given(s.schedules, st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1)))
def test_timer_schedules(expression, after):
    schedule = refused_cleanly(lambda: parse_schedule(expression), ScheduleError)
    if schedule is not None:
        after = after.replace(tzinfo=timezone.utc)
        fire = refused_cleanly(lambda: schedule.next_after(after), ScheduleError)
        assert fire is None or fire > after


# ------------------------------------------------------------------ endpoint URLs


@given(s.urls, st.one_of(st.none(), st.sampled_from(s.REGIONS)), st.one_of(st.none(), s.segments), s.paths)
def test_endpoint_urls(url, region, service, path):
    for classify in (
        lambda: urls.dashscope_endpoint(url, region=region),
        lambda: urls.eas_endpoint(url, service=service, region=region, function_region="ap-southeast-1"),
    ):
        found = refused_cleanly(classify, urls.UrlError)
        if found is not None:
            endpoint, _api = found
            joined = refused_cleanly(lambda: endpoint.url_for(path), urls.UrlError)  # noqa: B023
            assert joined is None or joined.startswith(endpoint.base_url)


@given(s.urls, st.one_of(st.none(), st.just("KEY")))
def test_doctor_urls(url, token_env):
    """`vpcprobe doctor URL`: refused as bad input (exit 2), or a target the probe can send to."""
    found = refused_cleanly(lambda: doctor_target(url, token_env), urls.MalformedUrlError)
    if found is not None:
        sendable(found[0])


@given(
    st.one_of(st.none(), st.sampled_from(s.REGIONS), st.text(max_size=20)),
    st.one_of(st.none(), st.text(max_size=20)),
    st.one_of(st.none(), st.sampled_from(["default", "custom", "public"]), st.text(max_size=8)),
    st.one_of(st.none(), st.text(max_size=12)),
    st.one_of(st.none(), st.sampled_from(["10.0.0.1:80", "[::1]:8080", "1.2.3.4:99999"]), st.text(max_size=20)),
    st.sampled_from(["vpc", "public", "x"]),
)
def test_endpoints_built_from_parts(region, ident, domain, gateway, instance, network):
    refused_cleanly(lambda: urls.dashscope_endpoint(region=region, endpoint_id=ident, domain=domain), urls.UrlError)
    refused_cleanly(
        lambda: urls.eas_endpoint(
            region=region, uid=ident, gateway=gateway, instance=instance, network=network, service="svc"
        ),
        urls.UrlError,
    )
