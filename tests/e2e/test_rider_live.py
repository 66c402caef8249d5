"""The rider app in real Chromium: phone sign-in with a one-time code, the minibus approaching on
the live map with the "nearly there" notice (page and notifier), cancelling; a family member who
books for a parent and is told of the boarding. axe-core finds 0 violations on every screen.

The server is this module's own (a fresh database) with a driver token for every vehicle, so the
test can drive whichever minibus the booking got over the tablet channel /ws/driver.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from tests.conftest import T0
from tests.e2e.conftest import LiveServer, run_live_server
from transit.clock import FakeClock

pytestmark = pytest.mark.browser

PHONE = (390, 844)
ONO_WEST = "ono_station_west_plaza"
HALL = "okuma_town_hall"
# The tablet-to-server messages a test tablet skips while waiting for an answer.
SKIP = {"ping", "pong", "eta", "delta", "snapshot", "hello"}


def axe(page: Any, name: str) -> None:
    """axe-core (vendored in the axe-playwright-python package): 0 violations, any impact."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    violations = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in results.response["violations"]]
    page.screenshot(path=f"/tmp/rider_{name}.png", full_page=True)
    assert violations == [], f"{name}: {violations}"


class Codes(logging.Handler):
    """One-time codes as development prints them to the log (the code only, the phone masked)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:  # logging.Handler.handle holds self.lock
        self.lines.append(record.getMessage())

    def last_code(self, phone_tail: str) -> str:
        for line in reversed(self.lines):
            m = re.search(r"one-time code (\d{6}) \(phone …(\d\d)\)", line)
            if m and m.group(2) == phone_tail:
                return m.group(1)
        raise AssertionError(f"no code logged for …{phone_tail}: {self.lines[-5:]}")


@pytest.fixture(scope="module")
def codes() -> Iterator[Codes]:
    h = Codes()
    logger = logging.getLogger("okuma.notify")
    logger.addHandler(h)
    old = logger.level
    logger.setLevel(logging.INFO)
    yield h
    logger.removeHandler(h)
    logger.setLevel(old)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[LiveServer, dict[str, str]]]:
    from transit.accounts import create_account
    from transit.db import make_engine
    from transit.reference_data import load_okuma
    from transit.uow import UnitOfWorkFactory

    db_dir = Path(tempfile.mkdtemp(prefix="okuma-rider-"))
    clock = FakeClock(T0)
    live = run_live_server(clock, db_dir)

    async def drivers() -> dict[str, str]:
        engine = make_engine(f"sqlite+aiosqlite:///{db_dir}/e2e.db")
        out = {}
        try:
            async with UnitOfWorkFactory(engine, clock)() as uow:
                for v in load_okuma(None).fleet:
                    _, out[v.id] = await create_account(uow, role="driver", name=f"driver {v.id}", vehicle_id=v.id)
                await uow.commit()
        finally:
            await engine.dispose()
        return out

    box: dict[str, Any] = {}
    # Playwright's sync API may hold an event loop in this thread: run this one beside it.
    t = threading.Thread(target=lambda: box.update(tokens=asyncio.run(drivers())))
    t.start()
    t.join(30)
    tokens = box["tokens"]
    try:
        yield live, tokens
    finally:
        live._stop()
        shutil.rmtree(db_dir, ignore_errors=True)


@pytest.fixture
def page_for(browser: Any, server: tuple[LiveServer, dict[str, str]]) -> Iterator[Any]:
    live, _ = server
    contexts: list[Any] = []

    def make() -> Any:
        ctx = browser.new_context(viewport={"width": PHONE[0], "height": PHONE[1]}, locale="ja-JP",
                                  timezone_id="Asia/Tokyo", service_workers="block")
        ctx.set_default_timeout(20000)  # the machine may be busy: waits are for events, not timing
        contexts.append(ctx)
        page = ctx.new_page()
        page.clock.install(time=live.clock.now())
        page.js_errors = []  # type: ignore[attr-defined]
        page.on("pageerror", lambda e: page.js_errors.append(str(e)))
        return page

    yield make
    for c in contexts:
        c.close()


class Tablet:
    """A driver's tablet on /ws/driver (token in the first message)."""

    def __init__(self, base_url: str, token: str) -> None:
        self._cm = connect(base_url.replace("http", "ws") + "/ws/driver", open_timeout=5)
        self.ws = self._cm.__enter__()
        self.ws.send(json.dumps({"type": "hello", "token": token}))
        self.n = 0

    def event(self, **msg: Any) -> dict[str, Any]:
        self.n += 1
        cid = f"e2e-{self.n}-{msg['type']}"
        self.ws.send(json.dumps({"client_event_id": cid, **msg}))
        while True:
            m = json.loads(self.ws.recv(timeout=10))
            if m.get("type") in ("ack", "error") and m.get("client_event_id") == cid:
                assert m["type"] == "ack", m
                return m

    def close(self) -> None:
        self._cm.__exit__(None, None, None)


def sign_in(page: Any, live: LiveServer, codes: Codes, phone: str, name: str) -> None:
    page.goto(live.url("/"))
    page.wait_for_selector("#phone")
    axe(page, "signin_phone")
    page.fill("#phone", phone)
    page.click("#send-code")
    page.wait_for_selector("#code")
    assert "確認コードを送りました" in page.locator("#signin-status").inner_text()
    wrong = codes.last_code(phone[-2:])
    page.fill("#code", f"{(int(wrong) + 1) % 1_000_000:06d}")  # a wrong code first: told, not signed in
    page.click("#verify-code")
    page.wait_for_selector("#signin-error:has-text('あと4回')")
    axe(page, "signin_code")
    page.fill("#code", codes.last_code(phone[-2:]))
    page.fill("#name", name)
    page.click("#verify-code")
    page.wait_for_selector("#pick-origin")


def choose(page: Any, origin: str, origin_zone: str, destination: str, destination_zone: str) -> None:
    page.click("#pick-origin")
    page.click(f"[data-zone={origin_zone}]")
    page.click(f"[data-stop={origin}]")
    page.click("#pick-destination")
    page.click(f"[data-zone={destination_zone}]")
    page.click(f"[data-stop={destination}]")


def token_of(page: Any) -> str:
    return str(page.evaluate("localStorage.getItem('okuma.token.rider')"))


def notices(live: LiveServer, token: str) -> list[dict[str, Any]]:
    import httpx

    r = httpx.get(live.url("/api/v1/rider/notices"), headers={"Authorization": f"Bearer {token}"}, timeout=10)
    r.raise_for_status()
    return list(r.json())


def test_resident_signs_in_books_watches_the_minibus_come_and_cancels(
        page_for: Any, server: tuple[LiveServer, dict[str, str]], codes: Codes) -> None:
    live, drivers = server
    page = page_for()
    sign_in(page, live, codes, "090-2468-1357", "大熊 太郎")
    axe(page, "request")
    choose(page, ONO_WEST, "ono", HALL, "ogawara")
    page.click("#search")
    page.wait_for_selector("#pickup-window")
    page.click("#confirm")
    page.wait_for_selector("#booking-status:has-text('予約済み')")
    body = page.locator("#booking-body").inner_text()
    assert "お迎えの予定時刻" in body and "遅くとも到着" in body  # pickup and arrival, each labelled
    assert page.locator("#map.leaflet-container").is_visible()  # Leaflet, vendored; no tiles configured
    assert page.locator("#map .leaflet-tile").count() == 0
    assert page.locator("#map .pin.origin").count() == 1
    booking_id = page.url.rsplit("/", 1)[1]
    token = token_of(page)
    import httpx

    b = httpx.get(live.url(f"/api/v1/bookings/{booking_id}"), headers={"Authorization": f"Bearer {token}"}).json()
    if b.get("number"):
        assert page.locator("#booking-number").inner_text() == b["number"]
    axe(page, "booking_live")

    tablet = Tablet(live.base_url, drivers[b["vehicle_id"]])
    try:
        # At the town hall, about 10 minutes from Ono Station: on the map, no "nearly there" yet.
        tablet.event(type="position", lat=37.3822, lon=140.9590)
        page.wait_for_function("() => document.querySelector('#map').dataset.busLat === '37.3822'")
        assert "大熊町役場" in page.locator("#map-text").inner_text()
        assert page.locator("#near-notice").count() == 0
        assert page.locator("#map .bus-marker").count() == 1
        # Six minutes later, almost there: the notice on the page, and through the notifier.
        live.clock.advance(6 * 60)
        page.clock.fast_forward(6 * 60 * 1000)
        tablet.event(type="position", lat=37.4080, lon=140.9815)
        page.wait_for_selector("#near-notice")
        assert re.search(r"あと約\d+分", page.locator("#near-notice").inner_text())
        assert page.evaluate("document.querySelector('#map').dataset.busLat") == "37.408"
        axe(page, "booking_near")
    finally:
        tablet.close()
    for _ in range(50):
        kinds = {n["kind"] for n in notices(live, token)}
        if "near" in kinds:
            break
        page.wait_for_timeout(100)
    assert {"confirmed", "near"} <= kinds
    assert all(n["channel"] == "log" for n in notices(live, token))  # no LINE or SMS set up here

    page.click("#cancel")
    page.click("#cancel-yes")
    page.wait_for_selector("#booking-status:has-text('取り消し済み')")
    for _ in range(50):
        if "cancelled" in {n["kind"] for n in notices(live, token)}:
            break
        page.wait_for_timeout(100)
    else:
        pytest.fail("no cancellation notice")
    # Favourites and "book again": the same trip, one tap.
    page.click("#save-favourite")
    page.wait_for_selector("#booking-status-live:has-text('お気に入りに登録しました')")
    page.click("#book-again")
    page.wait_for_selector("#favourites button.fav")
    assert "大野駅西口" in page.locator("#pick-origin").inner_text()
    assert "大熊町役場" in page.locator("#pick-destination").inner_text()
    axe(page, "request_favourites")
    page.click("#tab-family")
    page.wait_for_selector("#notice-list [data-kind=near]")
    axe(page, "family_notices")
    assert page.js_errors == []


def test_family_member_books_for_a_parent_and_is_told_of_the_boarding(
        page_for: Any, server: tuple[LiveServer, dict[str, str]], codes: Codes) -> None:
    live, drivers = server
    page = page_for()
    sign_in(page, live, codes, "080-1357-2468", "大熊 次郎")
    page.click("#tab-family")
    page.wait_for_selector("#family-invite")
    axe(page, "family")
    page.fill("#family-name", "大熊 ハナ")
    page.fill("#family-phone", "090-9999-0011")
    page.click("#family-send")
    page.wait_for_selector("#family-code")
    # The consent code went to the parent's phone (the development log); they tell it to their son.
    page.fill("#family-code", codes.last_code("11"))
    page.click("#family-confirm")
    page.wait_for_selector("#family-status:has-text('連携しました')")
    axe(page, "family_linked")
    page.click("[data-book-for]")
    page.wait_for_selector("#for-whom")
    assert page.locator("#for-whom option:checked").inner_text() == "大熊 ハナ"
    choose(page, HALL, "ogawara", ONO_WEST, "ono")
    page.click("#search")
    page.click("#confirm")
    page.wait_for_selector("#booking-status:has-text('予約済み')")
    assert page.locator("#passenger").inner_text() == "大熊 ハナ"
    booking_id = page.url.rsplit("/", 1)[1]
    token = token_of(page)
    import httpx

    b = httpx.get(live.url(f"/api/v1/bookings/{booking_id}"), headers={"Authorization": f"Bearer {token}"}).json()
    assert b["account_id"] != b["booked_by_id"]  # the parent's booking, made by the son
    tablet = Tablet(live.base_url, drivers[b["vehicle_id"]])
    try:
        tablet.event(type="arrived", stop_id=HALL, booking_ids=[booking_id])
        tablet.event(type="boarded", booking_id=booking_id, count=1)
    finally:
        tablet.close()
    page.wait_for_selector("#booking-status:has-text('乗車中')")
    page.click("#tab-family")
    page.wait_for_selector(f"#notice-list [data-kind=boarded][data-booking='{booking_id}']")
    assert "乗車しました" in page.locator("#notice-list").inner_text()
    axe(page, "family_boarded")
    assert page.js_errors == []
