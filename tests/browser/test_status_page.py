"""GET /status in a real browser (issue 9): Debian's chromium driven by playwright, against the real gateway.

playwright drives /usr/bin/chromium (apt-get install chromium; .ci/run installs it); it never downloads
a browser of its own. Without chromium the test is skipped locally and fails in CI (CI=true), which
must run it. The page is opened the way a person opens it: the gateway answers 401 with a Basic
challenge and the browser logs in with the gateway key as the password. With STATUS_SCREENSHOT set,
the screenshot is also written there (the README's docs/status.png).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.state.file import FileStore
from tests.gateway.status_fixtures import DEMO_TARGETS, KEY_STATUS, record_demo, start_status_gateway

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def _unavailable(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why}: CI must run the browser test (.ci/run installs Debian's chromium)")
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (the dev extra)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The gateway over two minutes of demo rounds: zone B down for a while, then the EAS service without
    instances, and zone B down again in the latest rounds."""
    state = tmp_path_factory.mktemp("browser") / "state"
    record_demo(FileStore(state), time.time(), rounds=48, zone_b_down=(8, 9, 10, 11, 12, 46, 47),
                eas_down=(25, 26, 27, 28))
    _, server = start_status_gateway(str(state))
    yield server.url
    server.stop()


def open_status(browser: Any, url: str, **context: Any) -> tuple[Any, list[str], list[str]]:
    """The page after a Basic login, with what its console said and every URL it requested."""
    page = browser.new_context(http_credentials={"username": "ops", "password": KEY_STATUS}, **context).new_page()
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    response = page.goto(url + "/status", wait_until="load")
    assert response is not None and response.status == 200
    return page, errors, requests


def test_the_status_page_in_chromium(browser: Any, gateway: str, tmp_path: Path) -> None:
    page, errors, requests = open_status(browser, gateway, viewport={"width": 1100, "height": 900})
    rows = page.locator("article.target")
    assert rows.count() == len(DEMO_TARGETS)
    assert sorted(rows.evaluate_all("els => els.map(e => e.dataset.target)")) == sorted(t.name for t in DEMO_TARGETS)
    for i in range(rows.count()):
        row = rows.nth(i)
        assert row.locator("h3").inner_text() == row.get_attribute("data-target")
        points = row.locator("svg.spark polyline").evaluate_all("els => els.map(e => e.points.numberOfItems)")
        assert sum(points) >= 40, (row.get_attribute("data-target"), points)  # 48 rounds, down ones left out
        box = row.locator("svg.spark").bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 20  # drawn, not collapsed
    eas = page.locator('article[data-target="llm-eas-vpc"]')
    assert eas.locator("svg.spark rect.m-down").count() == 4
    assert page.locator('article[data-target="qwen-privatelink"] .zone.s-down').inner_text() == "127.0.0.3"
    assert errors == []
    assert requests == [gateway + "/status"]  # nothing else: no asset, no icon, nothing external
    shot = tmp_path / "status.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("STATUS_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["STATUS_SCREENSHOT"])
    page.context.close()


def test_the_status_page_fits_a_phone(browser: Any, gateway: str) -> None:
    page, errors, _ = open_status(browser, gateway, viewport={"width": 375, "height": 740}, device_scale_factor=2,
                                  is_mobile=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scrolling
    assert page.locator("article.target").count() == len(DEMO_TARGETS) and errors == []
    page.context.close()


def test_a_wrong_key_does_not_open_the_page(browser: Any, gateway: str) -> None:
    context = browser.new_context(http_credentials={"username": "ops", "password": KEY_STATUS + "-wrong"})
    response = context.new_page().goto(gateway + "/status")
    assert response is not None and response.status == 401
    assert response.headers["www-authenticate"].startswith('Basic realm="vpcprobe"')
    context.close()
