"""In real Chromium: the phone desk chooses where a caller's groceries go back (「戻し先を選ぶ」 in the
console's delivery row: a stop, confirmed, then changed to the store, by the keyboard and in
English); a door-to-door rider saves their home once on the map (tap, drag, or typed position; the
schematic without tiles), is refused outside the service area, then rides from it and has groceries
brought to it without typing it again; the desk takes a caller's saved home for a door-to-door
booking. axe-core finds 0 violations in every state; screenshots in tests/e2e/artifacts/.
"""

# ruff: noqa: F811 - the rider app's module fixtures are imported, then requested by name
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.e2e.a11y import axe, shot
from tests.e2e.test_delivery_family_desk import _console, desk_page  # noqa: F401 - fixture used by name
from tests.e2e.test_delivery_return import _order_on_the_minibus, _return_stop
from tests.e2e.test_pages import a11y, tab_to, with_token
from tests.e2e.test_rider_live import HALL, ONO_WEST, page_for, server  # noqa: F401 - fixtures used by name

pytestmark = pytest.mark.browser
HOME = {"address": "大熊町大川原字南平1234", "lat": 37.3840, "lon": 140.9620}


def _door_to_door_rider(live: Any, name: str, phone: str) -> tuple[str, str]:
    """A rider registered for door-to-door at the town desk, with a phone number (no home yet)."""
    from transit.accounts import create_account
    from transit.db import make_engine
    from transit.notify import normalise_phone
    from transit.uow import UnitOfWorkFactory

    async def main() -> tuple[str, str]:
        engine = make_engine(f"sqlite+aiosqlite:///{live.db_path}")
        try:
            async with UnitOfWorkFactory(engine, live.clock)() as uow:
                account_id, tok = await create_account(uow, role="rider", name=name, door_to_door=True)
                await uow.riders.add(dict(account_id=account_id, phone=normalise_phone(phone), line_user_id=None,
                                          near_minutes=5, created_at=live.clock.now()))
                await uow.commit()
        finally:
            await engine.dispose()
        return account_id, tok

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(main())).result()


def _profile(live: Any, token: str) -> Any:
    r = httpx.get(live.url("/api/v1/rider/profile"), headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_desk_chooses_where_a_callers_groceries_go_back_then_changes_it(desk_page: Any, server: Any) -> None:
    live, drivers = server
    booking_id, tablet = _order_on_the_minibus(live, drivers)
    try:
        desk = desk_page()
        _console(desk, live)
        row = desk.locator(f"#bookings-body tr[data-booking='{booking_id}']")
        row.wait_for()
        opener = desk.locator(f"[data-return-open='{booking_id}']")
        assert opener.inner_text() == "戻し先を選ぶ"
        assert desk.locator(f"[data-return-for='{booking_id}']").count() == 0  # nothing chosen yet
        axe(desk, "console, delivery on the minibus")
        a11y(desk, min_target=40)

        tab_to(desk, f"[data-return-open='{booking_id}']")  # keyboard only, to the answer
        desk.keyboard.press("Enter")
        desk.wait_for_selector("#rt-form")
        assert desk.evaluate("document.activeElement.id") == "rt-title"
        assert desk.locator("#rt-to-store").is_checked() and desk.locator("#rt-stop").is_disabled()
        assert "おおくまーと" in desk.locator("label[for=rt-to-store]").inner_text()
        axe(desk, "console, return chooser")
        shot(desk, "operator_return_choose")
        tab_to(desk, "#rt-to-store")
        desk.keyboard.press("ArrowDown")
        assert desk.locator("#rt-to-stop").is_checked() and desk.locator("#rt-stop").is_enabled()
        assert desk.locator("#rt-stop option[value=okumart]").count() == 0  # the store's stop is "the store"
        tab_to(desk, "#rt-next")
        desk.keyboard.press("Enter")  # no stop yet: told, nothing sent
        assert desk.locator("#rt-error").inner_text() == "停留所を選んでください。"
        desk.select_option("#rt-stop", HALL)
        tab_to(desk, "#rt-next")
        desk.keyboard.press("Enter")
        desk.wait_for_selector("#rt-q")
        assert desk.locator("#rt-q").inner_text() == "荷物を「大熊町役場」へ戻します。よろしいですか?"
        assert desk.evaluate("document.activeElement.id") == "rt-yes"
        assert _return_stop(live, booking_id)["return_stop_id"] is None  # not before the confirmation
        axe(desk, "console, return confirm")
        desk.keyboard.press("Enter")
        desk.wait_for_selector(f"[data-return-for='{booking_id}']")
        assert desk.locator("#table-status").inner_text() == "大熊 花子 様の荷物は「大熊町役場」へ戻ります。お店とご本人にも伝わります。"
        assert desk.locator(f"[data-return-for='{booking_id}']").inner_text() == "戻し先: 大熊町役場"
        assert row.locator("td.status").inner_text().startswith("戻し中")
        d = _return_stop(live, booking_id)
        assert d["status"] == "returning" and d["return_stop_id"] == HALL
        axe(desk, "console, returning to a stop")
        shot(desk, "operator_return_stop")

        # Changed later, in English: back to the store
        desk.click("#lang-toggle")
        desk.wait_for_selector(f"[data-return-open='{booking_id}']:has-text('Change where it goes back')")
        desk.click(f"[data-return-open='{booking_id}']")
        desk.wait_for_selector("#rt-form")
        assert "Back to the store (Okumart)" in desk.locator("label[for=rt-to-store]").inner_text()
        axe(desk, "console, return chooser, English")
        desk.click("#rt-next")
        assert desk.locator("#rt-q").inner_text() == "The groceries go back to “Okumart”. Is that right?"
        desk.click("#rt-yes")
        desk.wait_for_selector(f"[data-return-for='{booking_id}']:has-text('Okumart')")
        assert "go back to “Okumart”" in desk.locator("#table-status").inner_text()
        assert _return_stop(live, booking_id)["return_stop_id"] == "okumart"
        axe(desk, "console, returning to the store, English")
        shot(desk, "operator_return_store_en")
        assert desk.js_errors == []
    finally:
        tablet.close()


def test_door_to_door_rider_saves_home_on_the_map_then_rides_and_orders_from_it(page_for: Any, server: Any) -> None:
    live, _ = server
    _, token = _door_to_door_rider(live, "大熊 ハナ", "090-7000-0001")
    page = page_for()
    with_token(page, "rider", token)
    page.goto(live.url("/#/family"))
    page.wait_for_selector("#home-saved:has-text('自宅はまだ登録されていません')")
    tab_to(page, "#home-edit")  # keyboard reachable
    page.keyboard.press("Enter")
    page.wait_for_selector("#home-form")
    assert page.evaluate("document.activeElement.id") == "home-title"
    assert page.locator("#home-pin").inner_text() == "まだ場所が決まっていません。"
    assert page.locator("#home-map .leaflet-tile").count() == 0  # no tile URL: the schematic of stops
    axe(page, "home, empty")
    a11y(page, min_target=44)
    shot(page, "rider_home_empty")

    page.click("#home-save")  # nothing yet: told, nothing sent
    assert page.locator("#home-error").inner_text() == "住所を入れてください。 地図で場所を決めてください。"
    # a tap on the map puts the pin there; dragging it moves it
    page.click("#home-map", position={"x": 120, "y": 140})
    page.wait_for_selector("#home-map .leaflet-marker-icon.pin.home")
    tapped = float(page.locator("#home-lat").input_value())
    box = page.locator("#home-map .leaflet-marker-icon.pin.home").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 10, box["y"] + box["height"] / 2 + 40, steps=8)
    page.mouse.up()
    page.wait_for_function("v => document.querySelector('#home-lat').value !== v", arg=f"{tapped:.5f}")
    assert float(page.locator("#home-lat").input_value()) < tapped  # dragged down the map: further south

    # typed outside the service area: the server refuses it in Japanese (and English, below)
    page.fill("#home-addr", "東京都千代田区")
    page.fill("#home-lat", "35.68120")
    page.fill("#home-lon", "139.76710")
    page.click("#home-save")
    page.wait_for_selector("#home-error:has-text('運行エリアの外')")
    assert _profile(live, token)["home"] is None
    page.click("#lang-toggle")
    page.wait_for_selector("#home-title:has-text('My home')")
    page.fill("#home-addr", "東京都千代田区")
    page.fill("#home-lat", "35.68120")
    page.fill("#home-lon", "139.76710")
    page.click("#home-save")
    page.wait_for_selector("#home-error:has-text('outside the service area')")
    axe(page, "home, refused, English")
    page.click("#lang-toggle")
    page.wait_for_selector("#home-title:has-text('自宅の場所')")

    # typed inside: the pin follows, saved by the keyboard
    page.fill("#home-addr", HOME["address"])
    page.fill("#home-lat", "37.38400")
    page.fill("#home-lon", "140.96200")
    page.keyboard.press("Tab")
    page.wait_for_function("() => document.querySelector('#home-map').dataset.lat === '37.384'")
    tab_to(page, "#home-save")
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#home-status:has-text('自宅を登録しました: {HOME['address']}')")
    assert _profile(live, token)["home"] == HOME
    axe(page, "home, saved")
    shot(page, "rider_home_saved")

    # the ride form offers 「自宅」 as the origin: the offer starts at the saved home
    page.goto(live.url("/#/new"))
    page.wait_for_selector("#pick-origin")
    page.click("#pick-origin")
    page.wait_for_selector("#pick-home")
    assert HOME["address"] in page.locator("#pick-home").inner_text()
    axe(page, "picker with home")
    page.click("#pick-home")
    page.wait_for_selector(f"#pick-origin:has-text('自宅({HOME['address']})')")
    page.click("#pick-destination")
    page.click(f"[data-stop={ONO_WEST}]")
    page.click("#search")
    page.wait_for_selector("#offer-from")
    assert page.locator("#offer-from").inner_text() == f"自宅({HOME['address']})"
    axe(page, "offer from home")
    page.click("#confirm")
    page.wait_for_url("**/#/booking/*")
    page.wait_for_selector(f".pin-label:has-text('自宅({HOME['address']})')")  # the live map marks the home
    axe(page, "booking from home")
    booking_id = page.url.rsplit("/", 1)[1]
    r = httpx.get(live.url(f"/api/v1/bookings/{booking_id}"), headers={"Authorization": f"Bearer {token}"}, timeout=10)
    origin = r.json()["origin"]
    assert origin["stop_id"] is None and origin["address"] == HOME["address"]
    assert (origin["lat"], origin["lon"]) == (HOME["lat"], HOME["lon"])

    # the grocery form takes the saved home without asking again
    page.goto(live.url("/#/delivery"))
    page.wait_for_selector("#to-home")
    page.click("#to-home")
    page.wait_for_selector("#home-address")
    assert page.locator("#home-address").input_value() == HOME["address"]
    assert page.locator("#home-where").inner_text() == "自宅の位置: 37.3840, 140.9620"
    axe(page, "delivery to the saved home")
    assert page.js_errors == []


def test_desk_takes_a_callers_saved_home_for_a_door_to_door_booking(desk_page: Any, server: Any) -> None:
    live, _ = server
    _, token = _door_to_door_rider(live, "大熊 トメ", "090-7000-0002")
    r = httpx.patch(live.url("/api/v1/rider/profile"), headers={"Authorization": f"Bearer {token}"},
                    json={"home": HOME}, timeout=10)
    assert r.status_code == 200, r.text
    desk = desk_page()
    _console(desk, live)
    desk.select_option("#origin", "__point__")
    desk.wait_for_selector("#origin-home")
    desk.click("#origin-home")  # no phone number yet: told
    assert desk.locator("#origin-home-status").inner_text() == "先にお客様の電話番号を入れてください。"
    desk.fill("#phone", "090-7000-0002")
    tab_to(desk, "#origin-home")
    desk.keyboard.press("Enter")
    desk.wait_for_selector("#origin-home-status:has-text('大熊 トメ 様の登録の自宅')")
    assert desk.locator("#origin-address").input_value() == HOME["address"]
    assert desk.locator("#origin-lat").input_value() == "37.38400"
    assert desk.locator("#origin-lon").input_value() == "140.96200"
    assert desk.locator("#caller").input_value() == "大熊 トメ"
    assert desk.locator("[data-pin=origin]").count() == 1  # the pin on the console's map
    axe(desk, "console, caller's saved home")
    shot(desk, "operator_saved_home")
    desk.select_option("#destination", ONO_WEST)
    desk.click("#get-offer")
    desk.wait_for_selector("#offer")
    assert HOME["address"] in desk.locator("#offer").inner_text()
    # a caller without a saved home: said so
    _door_to_door_rider(live, "大熊 キク", "090-7000-0003")
    desk.fill("#phone", "090-7000-0003")
    desk.click("#origin-home")
    desk.wait_for_selector("#origin-home-status:has-text('自宅を登録していません')")
    assert desk.js_errors == []
