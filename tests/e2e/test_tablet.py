"""The driver tablet page in real Chromium against a real server: plan, changes, events, offline."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import T0
from tests.integration.test_simulator import LiveServer, start_live_server
from transit.clock import FakeClock

pytestmark = pytest.mark.browser

HALL = "okuma_town_hall"
WEST = "ono_station_west_plaza"
SCREENSHOT = Path("/tmp/tablet.png")


@pytest.fixture
def tablet_server(tmp_path: Path) -> Iterator[LiveServer]:
    srv = start_live_server(tmp_path, FakeClock(T0))
    try:
        yield srv
    finally:
        srv.stop()


def book(srv: LiveServer, name: str, party: int = 1, **kw: Any) -> dict:
    with httpx.Client(base_url=srv.url, headers=srv.auth("operator"), timeout=10) as c:
        r = c.post("/api/v1/offers", json={"origin": {"stop_id": HALL}, "destination": {"stop_id": WEST},
                                           "passenger_name": name, "party_size": party, **kw})
        assert r.status_code == 201, r.text
        r = c.post("/api/v1/bookings", json={"offer_id": r.json()["offer_id"]},
                   headers={"Idempotency-Key": f"e2e-{time.monotonic_ns()}"})
        assert r.status_code == 201, r.text
        return r.json()


def status(srv: LiveServer, booking_id: str) -> str:
    with httpx.Client(base_url=srv.url, headers=srv.auth("operator"), timeout=10) as c:
        return c.get(f"/api/v1/bookings/{booking_id}").json()["status"]


def wait_status(srv: LiveServer, booking_id: str, wanted: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while (s := status(srv, booking_id)) != wanted:
        assert time.monotonic() < deadline, f"{booking_id} is {s}, expected {wanted}"
        time.sleep(0.1)


@contextmanager
def driver_page(browser: Any, srv: LiveServer, vid: str) -> Iterator[tuple[Any, Any, list[str]]]:
    """A Japanese 1280x800 tablet signed in as the vehicle's driver: (context, page, page errors)."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, locale="ja-JP", timezone_id="Asia/Tokyo")
    ctx.set_default_timeout(10000)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{srv.url}/driver/?token={srv.drivers[vid]}")
        yield ctx, page, errors
    finally:
        ctx.close()


def test_tablet_shows_plan_changes_events_and_survives_offline(browser: Any, tablet_server: LiveServer) -> None:
    """Next stop in Japanese; a new booking appears highlighted; 到着/乗車 reach the server; offline taps replay."""
    srv = tablet_server
    first = book(srv, "大熊 花子", party=2, wheelchairs=1)
    vid = first["vehicle_id"]
    with driver_page(browser, srv, vid) as (ctx, page, errors):
        # the token leaves the address bar and stays on the tablet
        page.wait_for_function("() => !location.search.includes('token=')")
        name = page.locator("#next-stop-name")
        name.wait_for()
        assert name.inner_text() == "大熊町役場"
        assert page.locator(".stop-kana").inner_text() == "おおくまちょうやくば"
        assert page.locator("#conn").inner_text().startswith("オンライン")
        row1 = page.locator(f'li.rider[data-booking="{first["id"]}"]')
        assert "大熊 花子" in row1.inner_text() and "2名" in row1.inner_text() and "車いす 1" in row1.inner_text()
        nav = page.locator("#btn-navigate")
        assert "google.com/maps/dir/" in (nav.get_attribute("href") or "")
        assert page.locator('[data-action="no_show"]').first.is_disabled()  # not before the wait

        # a booking made through the API appears without reload, highlighted, with a beep
        second = book(srv, "熊川 次郎")
        assert second["vehicle_id"] == vid, "the pooled ride should join the same minibus"
        row2 = page.locator(f'li.rider.changed[data-booking="{second["id"]}"]')
        row2.wait_for()
        assert int(page.evaluate("document.body.dataset.beeps || '0'")) >= 1
        page.screenshot(path=str(SCREENSHOT))

        # 到着 then 乗車: the server state changes
        page.locator("#btn-arrived").click()
        wait_status(srv, first["id"], "arriving")
        row1.locator('[data-action="boarded"]').click()
        wait_status(srv, first["id"], "on_board")

        # offline: the tablet says so, keeps the tap, and sends it when the link is back
        ctx.set_offline(True)
        page.locator("#offline-banner").wait_for(state="visible")
        assert "オフライン" in page.locator("#offline-banner").inner_text()
        page.locator(f'li.rider[data-booking="{second["id"]}"] [data-action="boarded"]').click()
        page.locator("#queue-count").wait_for(state="visible")
        assert "未送信 1 件" in page.locator("#queue-count").inner_text()
        time.sleep(0.5)
        assert status(srv, second["id"]) == "arriving"
        ctx.set_offline(False)
        wait_status(srv, second["id"], "on_board", timeout=15)
        page.locator("#offline-banner").wait_for(state="hidden")
        page.locator("#queue-count").wait_for(state="hidden")
        assert page.evaluate("localStorage.getItem('okuma.driver.outbox." + vid + "')") == "[]"
        assert errors == []


def test_tablet_speaks_english_and_fails_loudly_on_unknown_message_types(browser: Any, tablet_server: LiveServer) -> None:
    """The English toggle works; a message type the page does not know shows an error banner."""
    srv = tablet_server
    vid = min(srv.drivers)
    with driver_page(browser, srv, vid) as (_, page, _errors):
        page.locator("#main").wait_for()
        page.wait_for_function("() => document.body.dataset.conn === 'online'")
        page.locator("#lang").click()  # English toggle
        assert page.locator("#next-heading").inner_text() == "Next stop"
        assert page.locator("html").get_attribute("lang") == "en"
        thrown = page.evaluate("""() => {
            try { window.okumaDriver.socket()._handle({type: 'surprise'}); return 'not thrown'; }
            catch (e) { return String(e); } }""")
        assert "surprise" in thrown
        banner = page.locator("#fatal")
        banner.wait_for(state="visible")
        assert "surprise" in banner.inner_text()


def test_tablet_shows_wait_until_and_offers_no_early_arrival(browser: Any, tablet_server: LiveServer) -> None:
    """A ride at 11:00 from the depot's stop: 「ここで 11:00 まで待機」, and 到着 is not offered at 09:00."""
    srv = tablet_server
    b = book(srv, "大熊 一郎", time_mode="leave_at", time=T0.replace(hour=11).isoformat())
    vid = b["vehicle_id"]
    with driver_page(browser, srv, vid) as (_, page, errors):
        page.locator("#next-stop-name").wait_for()
        wait = page.locator("#wait-until")
        wait.wait_for()
        assert wait.inner_text() == "ここで 11:00 まで待機"
        assert page.locator("#btn-arrived").is_disabled()
        assert "10:45" in page.locator("#arrive-from").inner_text()
        page.locator("#lang").click()
        assert page.locator("#wait-until").inner_text() == "Wait here until 11:00"
        assert status(srv, b["id"]) == "confirmed"
        assert errors == []
