"""The store page in real Chromium: an order arrives live, is marked ready, is picked up by the
driver on the tablet channel and handed over with the recipient's code (a wrong one refused)."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import T0
from tests.e2e.conftest import LiveServer, run_live_server
from tests.e2e.test_pages import a11y, with_token
from transit.clock import FakeClock

pytestmark = pytest.mark.browser
TABLET = (1024, 768)


@pytest.fixture(scope="module")
def store_server() -> Iterator[tuple[LiveServer, str]]:
    """A live server of its own (its database file known), so the test can add a driver account."""
    db_dir = Path(tempfile.mkdtemp(prefix="okuma-store-e2e-"))
    server = run_live_server(FakeClock(T0), db_dir)
    try:
        yield server, f"sqlite+aiosqlite:///{db_dir}/e2e.db"
    finally:
        server._stop()
        shutil.rmtree(db_dir, ignore_errors=True)


def add_driver(db_url: str, vehicle_id: str) -> str:
    from transit.accounts import create_account
    from transit.bootstrap import bootstrap
    from transit.settings import Settings

    async def main() -> str:
        rt = bootstrap(Settings(database_url=db_url, dispatcher=False))
        try:
            async with rt.services.uow() as uow:
                _, tok = await create_account(uow, role="driver", name="運転士", vehicle_id=vehicle_id)
                await uow.commit()
        finally:
            await rt.close()
        return tok

    # Playwright's sync API runs an event loop in this thread: the account is made in another one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(main())).result()


class Tablet:
    """The driver's tablet channel, as the tablet uses it (hello first, events, acks)."""

    def __init__(self, ws: Any, token: str) -> None:
        self.ws = ws
        self.ws.send(json.dumps({"type": "hello", "token": token}))
        self.n = 0

    def event(self, **msg: Any) -> dict[str, Any]:
        self.n += 1
        cid = f"e2e-{self.n}"
        self.ws.send(json.dumps({"client_event_id": cid, **msg}))
        while True:
            m = json.loads(self.ws.recv(timeout=5))
            if m["type"] in ("ack", "error") and m.get("client_event_id") == cid:
                return m


def axe_clean(page: Any) -> None:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    assert results.violations_count == 0, results.generate_report()


def test_store_page_order_ready_picked_up_handed_over(new_page: Any, store_server: tuple[LiveServer, str]) -> None:
    server, db_url = store_server
    rider = server.api("rider")
    start = T0.replace(hour=10)
    r = rider.post("/api/v1/offers", json={
        "kind": "delivery", "destination": {"stop_id": "ono_station_west_plaza"}, "passenger_name": "大熊 花子",
        "delivery": {"store_id": "okumart", "order_number": "A-102", "shopping_list": "牛乳、豆腐、食パン",
                     "window_start": start.isoformat(), "window_end": start.replace(hour=11).isoformat()},
    })
    assert r.status_code == 201, r.text
    r = rider.post("/api/v1/bookings", json={"offer_id": r.json()["offer_id"]}, headers={"Idempotency-Key": "e2e-d1"})
    assert r.status_code == 201, r.text
    booking = r.json()
    bid, code = booking["id"], booking["delivery"]["handover_code"]

    page = new_page(*TABLET)
    with_token(page, "store", server.tokens["store"])
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.goto(server.url("/store"))
    card = page.locator(f"li.order[data-booking='{bid}']")
    card.wait_for()
    assert card.get_attribute("data-status") == "ordered"
    assert "A-102" in card.inner_text() and "牛乳、豆腐、食パン" in card.inner_text()
    assert page.locator("#live-status").inner_text() == "ライブ更新中"
    assert sockets and all("token" not in u for u in sockets)  # first-message auth, not the URL
    assert code not in page.content()  # the store never sees the code
    a11y(page)
    axe_clean(page)

    card.locator("select").select_option("frozen")
    card.get_by_role("button", name="準備できた").click()
    ready = page.locator(f"li.order[data-booking='{bid}'][data-status='ready']")
    ready.wait_for()
    assert "ミニバス到着予定" in ready.inner_text()

    from websockets.sync.client import connect

    driver = add_driver(db_url, booking["vehicle_id"])
    with connect(server.base_url.replace("http", "ws") + "/ws/driver", open_timeout=5) as ws:
        tablet = Tablet(ws, driver)
        assert tablet.event(type="arrived", stop_id="okumart", booking_ids=[bid])["result"] == "applied"
        assert tablet.event(type="parcel_picked_up", booking_id=bid)["result"] == "applied"
        page.locator(f"li.order[data-booking='{bid}'][data-status='picked_up']").wait_for()  # pushed live
        wrong = f"{(int(code) + 1) % 10000:04d}"
        refused = tablet.event(type="parcel_handed_over", booking_id=bid, code=wrong)
        assert refused["result"] == "rejected" and refused["code"] == "WrongHandoverCode"
        assert tablet.event(type="parcel_handed_over", booking_id=bid, code=code)["result"] == "applied"
    done = page.locator(f"li.order[data-booking='{bid}'][data-status='delivered']")
    done.wait_for()
    assert "お届け済み" in done.inner_text()
    page.screenshot(path=str(Path(tempfile.gettempdir()) / "okuma-store-page.png"))
    assert page.js_errors == []  # type: ignore[attr-defined]
    axe_clean(page)
    page.click("#lang-toggle")
    assert page.locator("h2#h-done").inner_text().startswith("Delivered or returned")


def test_kiosk_orders_groceries_with_big_buttons(new_page: Any, store_server: tuple[LiveServer, str]) -> None:
    """お買い物を届けてもらう at the kiosk: store, shopping list, window; the receipt shows the code,
    and the order reaches the store."""
    server, _ = store_server
    page = new_page(1080, 1920)
    with_token(page, "kiosk", server.tokens["kiosk"])
    page.goto(server.url("/kiosk"))
    page.click("#deliver")
    page.click("[data-store=kuma_sun_terrace]")
    page.fill("#dl-list", "お米 5kg、牛乳")
    a11y(page, min_target=64)
    page.click("#dl-next")
    page.locator("[data-window]").first.click()
    page.wait_for_selector("#dl-confirm")
    a11y(page, min_target=64)
    axe_clean(page)
    page.click("#dl-confirm")
    code = page.locator("#dl-code").inner_text()
    assert len(code) == 4 and code.isdigit()
    assert code.split()[0] in page.evaluate("window.__kioskSpoken").replace(" ", "")  # read out too
    axe_clean(page)
    orders = server.api("store2").get("/api/v1/store/orders").json()["orders"]
    mine = [o for o in orders if o["shopping_list"] == "お米 5kg、牛乳"]
    assert len(mine) == 1 and mine[0]["status"] == "ordered" and mine[0]["handover_code"] is None
    assert page.js_errors == []  # type: ignore[attr-defined]
