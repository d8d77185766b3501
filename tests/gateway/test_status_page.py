"""GET /status and /status.json (issue 9): the probe history as a self-contained HTML page and as JSON.

Through the real gateway on loopback, over a file store the probe rounds were recorded into with
shared.history.record.record_round (as the probe function does); the page's drawing rules (sparkline
gaps, marks, buckets, escaping) on views built directly, where exact figures are wanted.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared import logs
from shared.alerts.policy import AlertState, Severity, TargetState
from shared.gateway import status_page
from shared.gateway.history_cache import HistoryCache, HistorySnapshot, HistoryUnavailable
from shared.history.objects import LATEST
from shared.history.view import Point, read_view
from shared.state.file import FileStore
from shared.verdict.codes import Code
from shared.verdict.diagnose import diagnose
from shared.verdict.status import Status
from tests.gateway.status_fixtures import (
    DEMO_TARGETS,
    KEY_EAS,
    KEY_STATUS,
    ZONE_A,
    ZONE_B,
    history,
    record_demo,
    result,
    start_status_gateway,
    view,
)

NOW = 1_790_000_000.0
FC_FORBIDDEN = ("date", "server", "connection", "keep-alive", "content-disposition")


class Page(HTMLParser):
    """The page's structure as a browser would parse it: sections, target articles, zones, SVG shapes."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.targets: list[dict[str, str]] = []  # data-target, data-status, section
        self.zones: list[tuple[str, str, str]] = []  # target, class, text
        self.polylines: list[list[tuple[float, float]]] = []
        self.circles = 0
        self.marks: list[str] = []
        self.tags: list[tuple[str, dict[str, str]]] = []
        self._zone: str | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append((tag, a))
        if tag == "section" and a.get("id", "").startswith("kind-"):
            self.sections.append(a["id"][5:])
        elif tag == "article":
            self.targets.append({"target": a["data-target"], "status": a["data-status"],
                                 "section": self.sections[-1]})
        elif tag == "span" and "zone" in a.get("class", "").split():
            self._zone = a["class"]
        elif tag == "polyline":
            self.polylines.append([tuple(map(float, p.split(","))) for p in a["points"].split()])
        elif tag == "circle":
            self.circles += 1
        elif tag == "rect":
            self.marks.append(a["class"])

    def handle_data(self, data: str) -> None:
        if self._zone is not None:
            self.zones.append((self.targets[-1]["target"], self._zone, data))
            self._zone = None


def render(targets: list, now: float = NOW) -> str:
    return status_page.render(HistorySnapshot(view(targets, now), None), lambda name: True, now=now).decode()


def points(n: int, every_s: float, *, end: float = NOW, status=lambda i: Status.UP, total=lambda i: 20.0 + i % 7):
    return [Point(end - (n - 1 - i) * every_s, status(i), total(i), None, None) for i in range(n)]


# ------------------------------------------------------------------ through the gateway


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any, FileStore, float]]:
    """A gateway over 24 demo rounds, 5 s apart: zone B down in rounds 10-13 and again in the last two."""
    state = tmp_path_factory.mktemp("status") / "state"
    store = FileStore(state)
    now = time.time()
    record_demo(store, now, zone_b_down=(10, 11, 12, 13, 22, 23))
    store.save({"version": 1, "targets": {
        "qwen-privatelink": TargetState(AlertState.FIRING, "degraded", severity=Severity.WARNING).to_dict(),
        "llm-eas-vpc": TargetState().to_dict(),
    }})
    app, server = start_status_gateway(str(state))
    yield app, server, store, now
    server.stop()


@pytest.fixture
def gw(recorded) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=recorded[1].url, timeout=10) as client:
        yield client


def test_a_browser_without_credentials_is_asked_to_log_in(gw: httpx.Client) -> None:
    for path in ("/status", "/status.json", "/metrics"):
        r = gw.get(path)
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"].startswith('Basic realm="vpcprobe"')
        assert "password" in r.json()["error"]["message"]


def test_the_gateway_key_opens_the_page_as_basic_password_or_bearer(gw: httpx.Client) -> None:
    assert gw.get("/status", auth=("anyone", KEY_STATUS)).status_code == 200
    assert gw.get("/status", auth=("", KEY_STATUS)).status_code == 200
    assert gw.get("/status.json", headers={"Authorization": f"Bearer {KEY_STATUS}"}).status_code == 200
    wrong = gw.get("/status", auth=("anyone", KEY_STATUS + "x"))
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "invalid_api_key")
    assert "www-authenticate" in wrong.headers
    garbled = gw.get("/status", headers={"Authorization": "Basic !!not-base64!!"})
    assert garbled.status_code == 401 and "base64" in garbled.json()["error"]["message"]
    no_password = base64.b64encode(b"user-only").decode()
    assert gw.get("/status", headers={"Authorization": f"Basic {no_password}"}).status_code == 401


def test_the_page_shows_every_target_grouped_by_kind_in_config_order(gw: httpx.Client) -> None:
    r = gw.get("/status", auth=("me", KEY_STATUS))
    page = Page(r.text)
    assert page.sections == ["dashscope", "eas"]
    assert [(t["target"], t["section"]) for t in page.targets] == [
        ("qwen-privatelink", "dashscope"), ("qwen-custom-domain", "dashscope"), ("llm-eas-vpc", "eas")]
    assert {t["target"]: t["status"] for t in page.targets} == {
        "qwen-privatelink": "degraded", "qwen-custom-domain": "degraded", "llm-eas-vpc": "up"}
    assert "<title>vpcprobe status — 2 degraded</title>" in r.text
    assert '<meta http-equiv="refresh" content="30">' in r.text
    assert 'name="viewport"' in r.text and "@media (max-width:600px)" in r.text


def test_the_page_loads_nothing_from_anywhere_and_sends_no_header_fc_forbids(gw: httpx.Client) -> None:
    r = gw.get("/status", auth=("me", KEY_STATUS))
    assert r.headers["content-security-policy"].startswith("default-src 'none'; style-src 'unsafe-inline'; "
                                                           "img-src data:")
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert not [h for h in r.headers if h in FC_FORBIDDEN or h.startswith("x-fc-")]
    page = Page(r.text)
    assert "script" not in {tag for tag, _ in page.tags}
    links = [a.get(name) for _, a in page.tags for name in ("src", "href") if name in a]
    assert links == ["data:,"]  # the icon, so that the browser never asks for /favicon.ico
    assert "url(" not in r.text and "@import" not in r.text


def test_a_degraded_target_shows_since_diagnosis_remedy_zones_and_figures(gw: httpx.Client, recorded) -> None:
    now = recorded[3]
    text = gw.get("/status", auth=("me", KEY_STATUS)).text
    page = Page(text)
    article = text[text.index('data-target="qwen-privatelink"'):text.index('data-target="qwen-custom-domain"')]
    assert "<code>zones_down</code>: some of the endpoint&#x27;s addresses fail: 1 of 2 down" in article
    assert '<span class="remedy">Fix: One zone' in article
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now - 5))  # the first of the last two rounds
    assert f"since {since} UTC (for " in article
    assert [(cls.split()[1], ip) for t, cls, ip in page.zones if t == "qwen-privatelink"] == [
        ("s-up", ZONE_A), ("s-down", ZONE_B)]
    assert [(cls.split()[1], ip) for t, cls, ip in page.zones if t == "llm-eas-vpc"] == [("s-up", ZONE_A)]
    assert "<dt>up 24h</dt><dd>100%</dd>" in article  # degraded counts as available
    custom = text[text.index('data-target="qwen-custom-domain"'):]
    assert "<dt>cert</dt><dd>88 d</dd>" in custom and "<dt>cert</dt><dd>—</dd>" in article


def test_every_target_has_a_sparkline_of_its_rounds_with_marks_where_zone_b_was_down(gw: httpx.Client) -> None:
    page = Page(gw.get("/status", auth=("me", KEY_STATUS)).text)
    assert len(page.polylines) == 3 and page.circles == 0
    # 24 rounds, each drawn (no bucketing under 120), across the box, older to the left
    assert [len(line) for line in page.polylines] == [24, 24, 24]
    for line in page.polylines:
        xs = [x for x, _ in line]
        assert xs == sorted(xs) and xs[0] < 5 and xs[-1] > status_page.SPARK_W - 5
    # the DashScope targets were degraded in 6 rounds; the EAS one never
    assert page.marks == ["m-degraded"] * 12


def test_status_json_is_by_default_what_the_page_shows(gw: httpx.Client, recorded) -> None:
    store = recorded[2]
    body = gw.get("/status.json", auth=("me", KEY_STATUS)).json()
    expected = read_view(store, order=[t.name for t in DEMO_TARGETS]).summary_dict(time.time())
    assert body["fields"] == {"slots": ["at", "total_ms", "status"]}
    assert [t["target"] for t in body["targets"]] == ["qwen-privatelink", "llm-eas-vpc", "qwen-custom-domain"]
    for got, want in zip(body["targets"], expected["targets"]):
        assert "points" not in got and "hours" not in got
        assert {k: v for k, v in got.items() if k != "slots"} == {k: v for k, v in want.items() if k != "slots"}
        assert got["slots"]["slots"] == want["slots"]["slots"]  # 24 rounds: a slot each, as the page draws them
    statuses = [s[2] for t in body["targets"] for s in t["slots"]["slots"]]
    page = Page(gw.get("/status", auth=("me", KEY_STATUS)).text)
    assert len(statuses) == 72 and [f"m-{s}" for s in statuses if s != "up"] == page.marks
    assert body["targets"][0]["status"] == "degraded" and body["targets"][0]["latest"]["diagnosis"]["remedy"]


def test_status_json_points_full_is_every_point_and_target_narrows_it(gw: httpx.Client, recorded) -> None:
    store = recorded[2]
    order = [t.name for t in DEMO_TARGETS]
    full = gw.get("/status.json?points=full", auth=("me", KEY_STATUS)).json()
    expected = read_view(store, order=order).full_dict()
    assert full.pop("generated_at") and expected.pop("generated_at")
    assert full == expected and len(full["targets"][0]["points"]) == 24
    two = gw.get("/status.json?target=qwen-custom-domain&target=qwen-privatelink&points=full&target=qwen-privatelink",
                 auth=("me", KEY_STATUS)).json()
    assert [t["target"] for t in two["targets"]] == ["qwen-privatelink", "qwen-custom-domain"]  # the view's order
    assert two["targets"] == [t for t in expected["targets"] if t["target"] != "llm-eas-vpc"]
    one = gw.get("/status.json?target=llm-eas-vpc&points=summary", auth=("me", KEY_STATUS)).json()
    assert [(t["target"], len(t["slots"]["slots"])) for t in one["targets"]] == [("llm-eas-vpc", 24)]


@pytest.mark.parametrize(("query", "status", "code", "named"), [
    ("points=all", 400, "invalid_parameter", "points='all'"),
    ("points=full&points=full", 400, "invalid_parameter", "'points' is given twice"),
    ("refresh=1", 400, "invalid_parameter", "'refresh'"),
    ("target=", 400, "invalid_parameter", "target= needs a target name"),
    ("target=nope", 404, "unknown_target", "'nope'"),
])
def test_a_bad_status_json_query_is_refused_naming_what_is_wrong(gw: httpx.Client, query, status, code, named) -> None:
    r = gw.get(f"/status.json?{query}", auth=("me", KEY_STATUS))
    assert (r.status_code, r.json()["error"]["code"]) == (status, code)
    assert named in r.json()["error"]["message"]
    assert gw.get(f"/status?{query}", auth=("me", KEY_STATUS)).status_code == 200  # the page ignores a query


def test_a_key_asking_status_json_for_a_target_it_may_not_use_is_403(gw: httpx.Client) -> None:
    r = gw.get("/status.json?target=qwen-privatelink", auth=("me", KEY_EAS))
    assert (r.status_code, r.json()["error"]["code"]) == (403, "target_not_allowed")
    assert "qwen-privatelink" in r.json()["error"]["message"] and "eas-only" in r.json()["error"]["message"]


def test_a_key_limited_to_some_targets_sees_only_those(gw: httpx.Client) -> None:
    body = gw.get("/status.json", auth=("me", KEY_EAS)).json()
    assert [t["target"] for t in body["targets"]] == ["llm-eas-vpc"]
    page = Page(gw.get("/status", auth=("me", KEY_EAS)).text)
    assert [t["target"] for t in page.targets] == ["llm-eas-vpc"] and page.sections == ["eas"]
    metrics = gw.get("/metrics", auth=("me", KEY_EAS)).text
    assert 'target="llm-eas-vpc"' in metrics and "qwen-privatelink" not in metrics


def test_head_answers_without_a_body_and_other_methods_are_refused(gw: httpx.Client) -> None:
    got = gw.get("/status", auth=("me", KEY_STATUS))
    head = gw.head("/status", auth=("me", KEY_STATUS))
    assert (head.status_code, head.content) == (200, b"")
    assert int(head.headers["content-length"]) == len(got.content)
    post = gw.post("/status", headers={"Authorization": f"Bearer {KEY_STATUS}"})
    assert (post.status_code, post.headers["allow"]) == (405, "GET, HEAD")


def test_status_is_public_only_when_the_config_says_so(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "state")
    record_demo(store, time.time(), rounds=3)
    app, server = start_status_gateway(str(tmp_path / "state"), public=True)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for path in ("/status", "/status.json", "/metrics"):
                assert client.get(path).status_code == 200, path
            assert len(Page(client.get("/status").text).targets) == 3
            assert client.get("/v1/models").status_code == 401  # the proxy routes still need a key
    finally:
        server.stop()


def test_a_damaged_history_is_a_503_that_says_what_failed(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "state")
    store.put_object(LATEST, b"{not json")
    app, server = start_status_gateway(str(tmp_path / "state"))
    try:
        with httpx.Client(base_url=server.url, timeout=10, auth=("me", KEY_STATUS)) as client:
            page = client.get("/status")
            assert page.status_code == 503 and "text/html" in page.headers["content-type"]
            assert "history_unavailable" in page.text and LATEST in page.text
            for path in ("/status.json", "/metrics"):
                r = client.get(path)
                assert (r.status_code, r.json()["error"]["code"]) == (503, "history_unavailable"), path
                assert LATEST in r.json()["error"]["message"]
    finally:
        server.stop()


def test_no_history_yet_is_an_empty_page_not_an_error(tmp_path: Path) -> None:
    app, server = start_status_gateway(str(tmp_path / "empty"))
    try:
        r = httpx.get(server.url + "/status", auth=("me", KEY_STATUS), timeout=10)
        assert r.status_code == 200 and "No target is recorded yet" in r.text
        assert Page(r.text).targets == []
    finally:
        server.stop()


# ------------------------------------------------------------------ the cache


class CountingStore(FileStore):
    def __init__(self, path: Path, gate: threading.Event | None = None) -> None:
        super().__init__(path)
        self.latest_reads = 0
        self.gate = gate

    def get_object(self, name: str) -> bytes | None:
        if name == LATEST:
            self.latest_reads += 1
            if self.gate is not None:
                assert self.gate.wait(10)
        return super().get_object(name)


def cache_over(store: CountingStore, clock: list[float]) -> HistoryCache:
    from shared.config.load import parse_config
    from tests.gateway.status_fixtures import status_config

    config = parse_config(status_config(str(store.dir)), path="status-test.yaml")
    return HistoryCache(config, ttl_s=10.0, clock=lambda: clock[0], store_opener=lambda settings: store)


def test_the_history_is_read_at_most_once_per_ttl_and_concurrent_requests_share_a_read(tmp_path: Path) -> None:
    gate = threading.Event()
    store = CountingStore(tmp_path)
    record_demo(store, time.time(), rounds=2)
    store.gate, store.latest_reads = gate, 0
    clock = [100.0]
    cache = cache_over(store, clock)

    async def scenario() -> list[HistorySnapshot]:
        first = [asyncio.ensure_future(cache.snapshot()) for _ in range(5)]
        await asyncio.sleep(0.05)
        assert not any(f.done() for f in first)  # the read is in a thread: the loop is not blocked meanwhile
        gate.set()
        got = await asyncio.gather(*first)
        clock[0] += 9.9
        got.append(await cache.snapshot())  # within the ttl: cached
        assert store.latest_reads == 1
        clock[0] += 0.2
        got.append(await cache.snapshot())  # past it: read again
        assert store.latest_reads == 2
        return got

    snapshots = asyncio.run(scenario())
    assert len({id(s) for s in snapshots[:6]}) == 1 and snapshots[6] is not snapshots[0]
    assert [t.target for t in snapshots[0].view.targets] == [t.name for t in DEMO_TARGETS]


def test_a_failed_read_is_cached_too_and_recovers_after_the_ttl(tmp_path: Path) -> None:
    store = CountingStore(tmp_path)
    store.put_object(LATEST, b"garbage")
    clock = [0.0]
    cache = cache_over(store, clock)

    async def scenario() -> None:
        for _ in range(3):
            with pytest.raises(HistoryUnavailable, match=LATEST):
                await cache.snapshot()
        assert store.latest_reads == 1
        store.delete_object(LATEST)
        record_demo(store, time.time(), rounds=1)
        clock[0] += 10.0
        assert len((await cache.snapshot()).view.targets) == 3

    asyncio.run(scenario())


def test_alert_states_come_from_the_alert_state_document(tmp_path: Path) -> None:
    store = CountingStore(tmp_path)
    cache = cache_over(store, [0.0])
    assert cache.read().alert_states is None  # type: ignore[union-attr]
    store.save({"version": 1, "targets": {"a": TargetState(AlertState.PENDING).to_dict(), "b": "garbage"}})
    assert cache.read().alert_states == {"a": "pending"}  # type: ignore[union-attr]


def test_the_gateway_reads_the_history_when_it_starts_so_the_first_request_does_not(tmp_path: Path,
                                                                                  monkeypatch) -> None:
    from shared.config.load import parse_config
    from shared.credentials.provider import TokenProvider
    from shared.credentials.settings import CloudSettings
    from shared.gateway.app import create_app
    from shared.gateway.routes import RouteKind
    from tests.gateway.status_fixtures import STATUS_ENV, status_config

    entered, gate = threading.Event(), threading.Event()
    store = CountingStore(tmp_path)
    record_demo(store, time.time(), rounds=2)
    store.gate, store.latest_reads = gate, 0
    original = store.get_object

    def get_object(name: str) -> bytes | None:
        if name == LATEST:
            entered.set()
        return original(name)

    store.get_object = get_object  # type: ignore[method-assign]
    monkeypatch.setattr("shared.state.settings.open_store", lambda settings, environ=None: store)
    config = parse_config(status_config(str(tmp_path)), path="status-test.yaml")
    app = create_app(config, tokens=TokenProvider(dict(STATUS_ENV), CloudSettings(region="ap-southeast-1")))

    async def scenario() -> bytes:
        await app.startup()
        assert await asyncio.to_thread(entered.wait, 10)  # reading, and no request has come
        gate.set()
        status, body, _ = await app.history.answer(RouteKind.STATUS_JSON, None)
        assert status == 200
        await app.shutdown()
        return body

    body = asyncio.run(scenario())
    assert store.latest_reads == 1  # the request was answered from the read the startup began
    assert [t["target"] for t in json.loads(body)["targets"]] == [t.name for t in DEMO_TARGETS]


def test_status_json_by_default_stays_near_the_page_size_at_1000_targets() -> None:
    """A day of minutely rounds for 1000 targets: the summary carries the page's 120 slots, not 1440 points."""
    series = points(1440, 60.0)
    r = result(DEMO_TARGETS[0], True, 20.0, NOW)
    targets = [history(f"t{i:04d}", latest=r, points=series, since="2026-01-01T00:00:00Z") for i in range(1000)]
    v = view(targets, NOW)
    summary = json.dumps(v.summary_dict(NOW), separators=(",", ":"))
    assert 2_000_000 < len(summary) < 6_000_000
    assert {len(t["slots"]["slots"]) for t in json.loads(summary)["targets"]} == {120}
    full = json.dumps(v.only({"t0000"}).full_dict(), separators=(",", ":"))
    assert len(json.loads(full)["targets"][0]["points"]) == 1440


# ------------------------------------------------------------------ drawing rules


def test_the_sparkline_breaks_at_missing_rounds_and_at_down_rounds_which_get_a_red_mark() -> None:
    series = points(30, 60.0, status=lambda i: Status.DOWN if i in (20, 21) else Status.UP)
    series = series[:10] + series[15:]  # five rounds missing
    page = Page(render([history("t", points=series)]))
    assert [len(line) for line in page.polylines] == [10, 5, 8]
    assert page.marks == ["m-down", "m-down"]
    assert page.circles == 0


def test_a_lone_round_between_gaps_is_a_dot() -> None:
    series = points(14, 60.0)
    series = series[:5] + series[8:9] + series[12:]
    page = Page(render([history("t", points=series)]))
    assert [len(line) for line in page.polylines] == [5, 2] and page.circles == 1
    one_skipped = points(6, 60.0)
    del one_skipped[3]
    assert [len(line) for line in Page(render([history("t", points=one_skipped)])).polylines] == [5]


def test_a_day_of_minutely_rounds_is_bucketed_to_at_most_120_points_keeping_the_worst() -> None:
    series = points(1440, 60.0, status=lambda i: Status.DOWN if i == 700 else Status.UP,
                    total=lambda i: 900.0 if i == 300 else 20.0)
    page = Page(render([history("t", points=series)]))
    drawn = [p for line in page.polylines for p in line]
    assert 110 <= len(drawn) <= 120
    assert page.marks == ["m-down"]
    assert min(y for _, y in drawn) == pytest.approx(2.0)  # the 900 ms round is the top of the scale
    assert "max 900 ms" in render([history("t", points=series)])


def test_rounds_older_than_24_hours_are_not_drawn() -> None:
    series = points(5, 3600.0, end=NOW - 86400 - 60) + points(3, 60.0)
    page = Page(render([history("t", points=series)]))
    assert [len(line) for line in page.polylines] == [3]


def test_every_string_from_config_or_upstreams_is_escaped() -> None:
    evil = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
    r = result(DEMO_TARGETS[0], True, 20.0, NOW)
    r.diagnosis = diagnose(Code.SERVER_ERROR, evil)
    r.warnings = [evil]
    r.addresses[1].diagnosis = diagnose(Code.CONNECT_REFUSED, evil)
    text = render([history('x"<b>', latest=r, url="http://h/" + evil, since="2026-01-01T00:00:00Z")])
    assert "<script" not in text and "<img" not in text and "<b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img" in text
    page = Page(text)
    assert page.targets[0]["target"] == 'x"<b>'  # the attribute round-trips through the parser intact
    assert not [a for _, a in page.tags if "onerror" in a]


def test_a_known_secret_never_reaches_the_page() -> None:
    secret = "sk-canarystatuspage1e2d3c4b"
    logs.register_secret(secret)
    r = result(DEMO_TARGETS[0], True, 20.0, NOW)
    r.diagnosis = diagnose(Code.UNAUTHORIZED, f"HTTP 401: invalid key {secret}")
    text = render([history("t", latest=r)])
    assert secret not in text and "invalid key ***" in text


def test_uptime_figures_and_a_target_without_rounds() -> None:
    text = render([history("a", uptime={"24h": 99.9949, "7d": 100.0, "30d": None}),
                   history("b", kind="eas", points=points(3, 60.0))])
    assert "<dt>up 24h</dt><dd>99.99%</dd><dt>up 7d</dt><dd>100%</dd><dt>up 30d</dt><dd>—</dd>" in text
    assert '<span class="badge s-none">no data</span>' in text
    assert "2 targets: " in text and ">1 no data</b>" in text and ">1 up</b>" in text
    assert "no rounds in the last 24 h" in text


def test_the_unavailable_page_escapes_the_error() -> None:
    text = status_page.render_unavailable("store <broken>").decode()
    assert "store &lt;broken&gt;" in text and '<meta http-equiv="refresh"' in text


def test_page_size_stays_bounded_at_1000_targets() -> None:
    """A day of minutely rounds for 1000 targets: bucketed sparklines keep the page near 1.5 KB a target."""
    series = tuple(points(1440, 60.0))
    r = result(DEMO_TARGETS[0], True, 20.0, NOW)
    targets = [history(f"t{i:04d}", latest=r, points=series, since="2026-01-01T00:00:00Z") for i in range(1000)]
    size = len(render(targets))
    assert 1_000_000 < size < 4_000_000
    assert len(re.findall("<article ", render(targets[:7]))) == 7


# ------------------------------------------------------------------ the demo


def test_the_demo_prints_its_status_page_where_zone_b_goes_down_and_recovers(tmp_path: Path) -> None:
    """`vpcprobe serve --demo` as a person runs it: the printed status URL, opened after zone B dies (round 3)
    and again after it is back (round 5; read from round 7 on, past the demo's 2 s state_ttl, and before the
    slow round 9), shows the target degraded, then up, with a point per round."""
    import signal
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared", "serve", "--demo", "--port", "0", "--schedule", "@every 1s"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root), "HOME": str(tmp_path), "PYTHONUNBUFFERED": "1"},
    )
    guard = threading.Timer(120, proc.kill)  # a hung demo fails the test instead of hanging it
    guard.start()
    seen: dict[int, dict[str, Any]] = {}
    try:
        url = password = ""
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("demo: status page "):
                url = line.split()[3]
                password = re.search(r"the password (\S+?)\)", line).group(1)  # type: ignore[union-attr]
            match = re.match(r"== round (\d+) ", line)
            n = int(match.group(1)) if match else 0
            if n in (4, 7, 8):
                body = httpx.get(url + ".json?points=full", auth=("demo", password), timeout=10).json()
                seen[n] = {t["target"]: t for t in body["targets"]}
                if n > 4 and seen[n]["qwen-privatelink"]["since"] != seen[4]["qwen-privatelink"]["since"]:
                    break  # a fresh read (a loaded machine may serve round 7 from the cache still)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=60)
        finally:
            guard.cancel()
    assert url.startswith("http://127.0.0.1:") and url.endswith("/status")
    during, after = seen[4]["qwen-privatelink"], seen[max(seen)]["qwen-privatelink"]
    assert during["latest"]["status"] == "degraded" and during["latest"]["diagnosis"]["code"] == "zones_down"
    assert [p[1] for p in during["points"]] == ["up", "up", "degraded", "degraded"]
    assert after["latest"]["status"] == "up" and after["since"] > during["since"]
    assert [p[1] for p in after["points"]] == ["up", "up", "degraded", "degraded"] + ["up"] * (len(after["points"]) - 4)
    assert len(after["points"]) >= 6


def test_the_history_routes_answer_get_and_head_only(tmp_path: Path) -> None:
    from shared.config.load import parse_config
    from shared.gateway.errors import GatewayError
    from shared.gateway.routes import Route, RouteKind, route_request
    from tests.gateway.status_fixtures import status_config

    config = parse_config(status_config(str(tmp_path)), path="status-test.yaml")
    expected = {b"/status": RouteKind.STATUS, b"/status.json": RouteKind.STATUS_JSON, b"/metrics": RouteKind.METRICS}
    for path, kind in expected.items():
        assert route_request("GET", path, b"", config) == Route(kind)
        assert route_request("HEAD", path, b"refresh=1", config) == Route(kind, query="refresh=1")
        with pytest.raises(GatewayError) as refused:
            route_request("POST", path, b"", config)
        assert (refused.value.status, refused.value.headers) == (405, {"Allow": "GET, HEAD"})
