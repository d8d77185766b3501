"""ProbeHealth: a target is down only when a fresh, readable probe verdict says so; the store is read
without the lease, at most once per TTL, off the request path; stale, missing or unreadable = not down."""

from __future__ import annotations

import io
import json
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from shared import logs
from shared.alerts.policy import TargetState, iso
from shared.config.load import Config, parse_config
from shared.gateway.health import STALE_AFTER_S, ProbeHealth
from shared.state.file import FileStore
from shared.state.settings import StoreSettings
from shared.state.store import Store, StoreError

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
TARGETS = [
    {"name": n, "kind": "dashscope", "endpoint": f"http://ep-{n}.dashscope.cn-beijing.privatelink.aliyuncs.com"}
    for n in ("a", "b", "c")
]


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeStore(Store):
    """A document in memory; counts loads; can be made to fail."""

    def __init__(self, doc: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.doc = doc
        self.loads = 0
        self.error: Exception | None = None

    def load(self) -> dict[str, Any] | None:
        self.loads += 1
        if self.error is not None:
            raise self.error
        return self.doc

    def save(self, doc: dict[str, Any]) -> None:
        raise AssertionError("the gateway never writes the state")

    def describe(self) -> str:
        return "fake store"

    def _lease_numbers(self) -> list[int]:
        raise AssertionError("the gateway never takes the lease")

    _read_lease = _create_lease = _write_lease = _delete_lease = _lease_numbers  # type: ignore[assignment]

    def get_object(self, name: str) -> bytes | None:
        raise AssertionError(f"the probe-state read needs only the document, not {name}")

    put_object = append_object = list_objects = delete_object = get_object  # type: ignore[assignment]


def config(tmp_path: Path, *, alerts: bool = True) -> Config:
    data: dict[str, Any] = {"targets": TARGETS}
    if alerts:
        data["alerts"] = {"channels": [{"name": "console", "type": "console"}]}
        data["state"] = {"backend": "file", "path": str(tmp_path / "state")}
    return parse_config(data)


def document(**statuses: tuple[str, datetime | None]) -> dict[str, Any]:
    """The alert state document as the alert step writes it: targets -> TargetState dicts."""
    return {
        "version": 1,
        "updated_at": iso(NOW),
        "targets": {
            name: TargetState(status=status, last_checked=iso(at) if at else None).to_dict()
            for name, (status, at) in statuses.items()
        },
    }


def health(cfg: Config, store: Store, clock: Clock, **kwargs: Any) -> tuple[ProbeHealth, list[StoreSettings]]:
    opened: list[StoreSettings] = []

    def opener(settings: StoreSettings) -> Store:
        opened.append(settings)
        return store

    probe_health = ProbeHealth(
        cfg, ttl_s=10.0, clock=clock, store_opener=opener, wall_clock=NOW.timestamp, background=False, **kwargs
    )
    return probe_health, opened


@pytest.fixture
def log() -> io.StringIO:
    stream = io.StringIO()
    logs.configure(stream=stream)
    yield stream
    logs.configure()


def test_down_only_when_the_fresh_verdict_says_down(tmp_path):
    recent = NOW - timedelta(seconds=30)
    store = FakeStore(document(a=("down", recent), b=("degraded", recent), c=("up", recent)))
    probe_health, opened = health(config(tmp_path), store, Clock())
    assert [probe_health.is_down(n) for n in ("a", "b", "c", "unknown")] == [True, False, False, False]
    assert opened == [StoreSettings("file", path=str(tmp_path / "state"))]
    assert store.loads == 1


@pytest.mark.parametrize(
    "at,down",
    [
        (NOW - timedelta(seconds=STALE_AFTER_S - 1), True),
        (NOW - timedelta(seconds=STALE_AFTER_S + 1), False),  # stale: never refuse traffic on it
        (NOW - timedelta(days=3), False),
        (None, False),  # no time: cannot tell it is fresh
    ],
)
def test_a_stale_down_is_not_down(tmp_path, at, down):
    probe_health, _ = health(config(tmp_path), FakeStore(document(a=("down", at))), Clock())
    assert probe_health.is_down("a") is down


def test_stale_after_is_adjustable(tmp_path):
    doc = document(a=("down", NOW - timedelta(seconds=100)))
    assert health(config(tmp_path), FakeStore(doc), Clock(), stale_after_s=120)[0].is_down("a") is True
    assert health(config(tmp_path), FakeStore(doc), Clock(), stale_after_s=60)[0].is_down("a") is False


@pytest.mark.parametrize(
    "doc",
    [
        None,
        {},
        {"targets": []},
        {"targets": {"a": "down"}},
        {"targets": {"a": {"status": "down", "last_checked": "yesterday"}}},
        {"targets": {"a": {"status": "down", "last_checked": "2025-03-01T11:59:00"}}},  # no zone
        {"targets": {"a": {"status": "down", "last_checked": 1740830340}}},
    ],
)
def test_missing_or_odd_documents_mean_not_down(tmp_path, doc):
    probe_health, _ = health(config(tmp_path), FakeStore(doc), Clock())
    assert probe_health.is_down("a") is False


def test_no_alerts_config_no_store_and_nothing_down(tmp_path):
    store = FakeStore(document(a=("down", NOW)))
    probe_health, opened = health(config(tmp_path, alerts=False), store, Clock())
    assert probe_health.is_down("a") is False
    assert (opened, store.loads) == ([], 0)


def test_the_store_is_read_at_most_once_per_ttl(tmp_path):
    clock = Clock(100.0)
    store = FakeStore(document(a=("down", NOW)))
    probe_health, opened = health(config(tmp_path), store, clock)
    for _ in range(50):
        assert probe_health.is_down("a") is True
    store.doc = document(a=("up", NOW))
    clock.now = 109.9
    assert probe_health.is_down("a") is True  # cached until the TTL is over
    assert store.loads == 1
    clock.now = 110.0
    assert probe_health.is_down("a") is False
    assert (store.loads, len(opened)) == (2, 1)  # one store, opened once


def test_an_unreadable_store_means_nothing_is_down_logged_once(tmp_path, log):
    clock = Clock()
    store = FakeStore(document(a=("down", NOW)))
    probe_health, _ = health(config(tmp_path), store, clock)
    assert probe_health.is_down("a") is True
    store.error = StoreError("file store /nas: cannot read state.json: Permission denied")
    for _ in range(3):
        clock.now += 10
        assert probe_health.is_down("a") is False  # the last known "down" is not kept either
    assert store.loads == 4
    events = [json.loads(line)["event"] for line in log.getvalue().splitlines()]
    assert events.count("gateway_probe_state_unreadable") == 1
    store.error = None
    clock.now += 10
    assert probe_health.is_down("a") is True
    assert "gateway_probe_state_readable" in log.getvalue()


def test_a_store_that_cannot_be_opened_means_nothing_is_down(tmp_path, log):
    def opener(settings: StoreSettings) -> Store:
        raise StoreError("oss store: no credentials")

    probe_health = ProbeHealth(config(tmp_path), ttl_s=10.0, clock=Clock(), store_opener=opener, background=False)
    assert probe_health.is_down("a") is False
    assert "gateway_probe_state_unreadable" in log.getvalue()


class SlowStore(FakeStore):
    """A store whose read takes until the test lets it finish (NAS or OSS on a bad day)."""

    def __init__(self, doc: dict[str, Any]) -> None:
        super().__init__(doc)
        self.release = threading.Event()

    def load(self) -> dict[str, Any] | None:
        assert self.release.wait(30), "never released"
        return super().load()


def test_the_background_refresh_never_blocks_a_request(tmp_path):
    clock = Clock()
    store = SlowStore(document(a=("down", NOW)))
    probe_health = ProbeHealth(
        config(tmp_path), ttl_s=10.0, clock=clock, store_opener=lambda s: store, wall_clock=NOW.timestamp
    )
    assert probe_health.is_down("a") is False  # answered at once from what it has: nothing yet
    clock.now += 20
    assert probe_health.is_down("a") is False  # due again, but the read in flight is not doubled
    store.release.set()
    probe_health.wait(30)
    assert probe_health.is_down("a") is True
    probe_health.wait(30)
    assert store.loads == 1


def test_reads_the_real_file_store_without_the_lease(tmp_path):
    cfg = config(tmp_path)
    writer = FileStore(tmp_path / "state")
    writer.save(document(a=("down", NOW), b=("up", NOW)))
    assert writer.acquire_lease("probe-round", 120)  # a round in progress holds the lease
    before = sorted(p.name for p in (tmp_path / "state").iterdir())
    probe_health = ProbeHealth(cfg, ttl_s=10.0, clock=Clock(), wall_clock=NOW.timestamp, background=False)
    assert (probe_health.is_down("a"), probe_health.is_down("b")) == (True, False)
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == before  # nothing written, no lease taken
    assert writer.holds("probe-round")
