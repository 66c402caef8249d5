"""In real Chromium: a resident orders groceries in the phone app exactly as a ride (store, order,
stop, window → offer → confirm), sees the four-digit handover code and the live status through
ready, picked up and delivered, and cancels another order; the operator console lists deliveries
with their store, parcels and temperature and shows a code only on 「コードを読み上げる」; town desk
staff link a family member after consent, the relative then books for the parent, and the desk ends
the link. axe-core finds 0 violations on every new screen and state; screenshots are kept in
tests/e2e/artifacts/.
"""

# ruff: noqa: F811 - the rider app's module fixtures are imported, then requested by name
from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.a11y import axe, shot
from tests.e2e.test_pages import a11y, tab_to, with_token

# The rider app's module server (a driver token for every vehicle), its pages and the sign-in.
from tests.e2e.test_rider_live import (  # noqa: F401 - fixtures used by name
    HALL,
    ONO_WEST,
    Codes,
    Tablet,
    choose,
    codes,
    page_for,
    server,
    sign_in,
    token_of,
)

pytestmark = pytest.mark.browser
DESKTOP = (1400, 1000)


@pytest.fixture
def desk_page(browser: Any, server: Any) -> Iterator[Any]:
    """A desktop page on this module's server (the operator console), its clock at the server's time."""
    live, _ = server
    contexts: list[Any] = []

    def make() -> Any:
        ctx = browser.new_context(viewport={"width": DESKTOP[0], "height": DESKTOP[1]}, locale="ja-JP",
                                  timezone_id="Asia/Tokyo", service_workers="block")
        ctx.set_default_timeout(20000)
        contexts.append(ctx)
        page = ctx.new_page()
        page.clock.install(time=live.clock.now())
        page.js_errors = []
        page.on("pageerror", lambda e: page.js_errors.append(str(e)))
        return page

    yield make
    for c in contexts:
        c.close()


def _api(live: Any, token: str) -> httpx.Client:
    return httpx.Client(base_url=live.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def _console(page: Any, live: Any) -> None:
    with_token(page, "operator", live.tokens["operator"])
    page.goto(live.url("/operator"))
    page.wait_for_selector("#family-desk")


def test_resident_orders_groceries_sees_the_code_and_the_status_to_delivered(
        page_for: Any, server: Any, codes: Codes, desk_page: Any) -> None:
    live, drivers = server
    page = page_for()
    sign_in(page, live, codes, "090-4321-0001", "大熊 花子")
    page.click("#tab-delivery")
    page.wait_for_selector("#delivery-form")
    assert page.locator("#tab-delivery").get_attribute("aria-current") == "page"
    assert page.locator("#delivery-title").inner_text() == "お買い物を届けてもらう"
    assert page.locator("#to-home").count() == 0  # not registered for door-to-door: stops only
    axe(page, "delivery form")
    a11y(page, min_target=44)  # labels, names, unique ids, targets (phone: ≥ 44 px, buttons ≥ 52 px in CSS)
    # Nothing chosen: told what is missing, not sent.
    page.click("#delivery-search")
    error = page.locator("#delivery-error").inner_text()
    assert "お店を選んでください" in error and "注文番号か買い物メモ" in error and "停留所を選んでください" in error
    axe(page, "delivery form, errors")

    page.click("[data-store=okumart]")
    assert page.locator("[data-store=okumart]").get_attribute("aria-pressed") == "true"
    page.fill("#order-number", "A 102")  # a space is not in an order number: refused on the page
    page.fill("#shopping-list", "牛乳 1本、食パン")
    page.click("#pick-delivery")
    page.click("[data-zone=ono]")
    page.click(f"[data-stop={ONO_WEST}]")
    page.wait_for_selector("#delivery-form")
    assert "大野駅西口" in page.locator("#pick-delivery").inner_text()  # the form survived the picker
    assert page.locator("#shopping-list").input_value() == "牛乳 1本、食パン"
    page.click("#delivery-search")
    assert "英数字とハイフン" in page.locator("#delivery-error").inner_text()
    page.fill("#order-number", "A-102")
    page.select_option("#window-start", "10:00")
    page.check("#temp-frozen")
    page.click("#parcels-plus")
    assert page.locator("#parcels").inner_text() == "2個"
    tab_to(page, "#delivery-search")  # keyboard reachable, and sent by the keyboard
    page.keyboard.press("Enter")

    page.wait_for_selector("#delivery-window")
    assert page.locator("#delivery-window").inner_text() == "10:00 〜 11:00"
    assert page.locator("#offer-store").inner_text() == "おおくまーと"
    assert "大野駅西口" in page.locator("#offer-to").inner_text()
    assert page.locator("#offer-order").inner_text() == "A-102"
    assert page.locator("#tab-delivery").get_attribute("aria-current") == "page"
    axe(page, "delivery offer")
    a11y(page, min_target=44)
    shot(page, "rider_delivery_offer")
    page.click("#confirm")

    page.wait_for_selector("#handover-code")
    booking_id = page.url.rsplit("/", 1)[1]
    token = token_of(page)
    with _api(live, token) as api:
        b = api.get(f"/api/v1/bookings/{booking_id}").json()
    code = b["delivery"]["handover_code"]
    assert b["kind"] == "delivery" and b["parcels"] == 2 and b["delivery"]["temperature"] == "frozen"
    assert b["delivery"]["order_number"] == "A-102" and b["delivery"]["shopping_list"] == "牛乳 1本、食パン"
    assert re.fullmatch(r"\d{4}", code)
    assert page.locator("#handover-code").inner_text() == code
    assert page.locator("#handover-code-spoken").inner_text() == " ".join(code)  # read digit by digit
    assert "運転士に見せてください" in page.locator("#code-note").inner_text()
    assert float(page.eval_on_selector("#handover-code", "e => parseFloat(getComputedStyle(e).fontSize)")) >= 60
    assert page.locator("#parcel-status").inner_text() == "お店で準備中"
    assert page.locator("#parcel-steps [aria-current=step]").get_attribute("data-step") == "ordered"
    assert page.locator("#parcel-status-live").inner_text() == "お届けを頼みました。"
    assert page.locator("#parcel-window").inner_text() == "10:00 〜 11:00"
    if b.get("number"):
        assert page.locator("#booking-number").inner_text() == b["number"]
    assert page.locator("#cancel").is_visible()
    axe(page, "delivery ordered")
    a11y(page, min_target=44)
    shot(page, "rider_delivery_code")

    # English: the new texts switch, the code stays.
    page.click("#lang-toggle")
    page.wait_for_selector("#parcel-title:has-text('Your grocery delivery')")
    assert page.locator("#parcel-status").inner_text() == "Being prepared"
    assert "Show this code to the driver" in page.locator("#code-note").inner_text()
    assert page.locator("#tab-delivery").inner_text() == "Groceries"
    assert page.locator("#handover-code").inner_text() == code
    axe(page, "delivery ordered, English")
    page.click("#lang-toggle")
    page.wait_for_selector("#parcel-title:has-text('お買い物のお届け')")

    # The console lists it with its store, parcels and temperature, never its code until asked.
    desk = desk_page()
    _console(desk, live)
    row = desk.locator(f"#bookings-body tr[data-booking='{booking_id}']")
    row.wait_for()
    cells = row.locator("td").all_inner_texts()
    assert "おおくまーと" in cells[3] and "A-102" in cells[3]
    assert cells[4] == "荷物 2個 ・ 冷凍" and cells[5] == "お店で準備中"
    assert not any(re.search(rf"(?<!\d){code}(?!\d)", c) for c in cells[1:])
    axe(desk, "console with a delivery")
    a11y(desk, min_target=40)
    desk.click(f"[data-readout='{booking_id}']")  # the desk reads it out to the caller
    desk.wait_for_selector(f"[data-code-for='{booking_id}']")
    assert code in desk.locator(f"[data-code-for='{booking_id}']").inner_text()
    assert desk.evaluate("document.activeElement.dataset.codeFor") == booking_id
    axe(desk, "console, code read out")
    shot(desk, "operator_delivery_readout")
    desk.get_by_role("button", name=re.compile("受け渡しコードを隠す")).click()
    desk.wait_for_selector(f"[data-readout='{booking_id}']")
    assert code not in row.inner_text()

    # The store packs it: the page follows live.
    with _api(live, live.tokens["store"]) as store:
        r = store.post(f"/api/v1/store/orders/{booking_id}/ready", json={"parcels": 2, "temperature": "frozen"})
        assert r.status_code == 200, r.text
    page.wait_for_selector("#parcel-status:has-text('準備できました')")
    assert page.locator("#parcel-steps [aria-current=step]").get_attribute("data-step") == "ready"
    axe(page, "delivery ready")
    tablet = Tablet(live.base_url, drivers[b["vehicle_id"]])
    try:
        assert tablet.event(type="arrived", stop_id="okumart", booking_ids=[booking_id])["result"] == "applied"
        assert tablet.event(type="parcel_picked_up", booking_id=booking_id)["result"] == "applied"
        page.wait_for_selector("#parcel-status:has-text('ミニバスでお届け中')")
        assert page.locator("#handover-code").inner_text() == code  # still shown: it is needed now
        assert page.locator("#cancel").count() == 0  # on the minibus: too late to cancel
        axe(page, "delivery picked up")
        assert tablet.event(type="arrived", stop_id=ONO_WEST, booking_ids=[booking_id])["result"] == "applied"
        assert tablet.event(type="parcel_handed_over", booking_id=booking_id, code=code)["result"] == "applied"
    finally:
        tablet.close()
    page.wait_for_selector("#parcel-status:has-text('お届けしました')")
    assert page.locator("#handover-code").count() == 0  # handed over: the code is gone
    assert page.locator("#parcel-steps [data-step=delivered]").get_attribute("aria-current") == "step"
    axe(page, "delivery delivered")
    shot(page, "rider_delivery_delivered")
    page.click("#tab-list")
    item = page.locator(f"a[data-booking='{booking_id}']")
    item.wait_for()
    assert "お届けしました" in item.inner_text() and "おおくまーと" in item.inner_text()
    axe(page, "list with a delivery")
    assert page.js_errors == [] and desk.js_errors == []


def test_resident_cancels_a_delivery_and_the_store_is_told(page_for: Any, server: Any, codes: Codes) -> None:
    live, _ = server
    page = page_for()
    sign_in(page, live, codes, "090-4321-0004", "大熊 秋子")
    page.click("#tab-delivery")
    page.click("#lang-toggle")  # the form in English
    page.wait_for_selector("#delivery-title:has-text('Have your shopping delivered')")
    assert "Okumart" in page.locator("[data-store=okumart]").inner_text()
    assert "open 08:00–22:00" in page.locator("[data-store=okumart]").inner_text()
    assert page.locator("label[for=temp-chilled]").inner_text() == "Chilled"
    page.click("#delivery-search")
    assert "Please choose the store." in page.locator("#delivery-error").inner_text()
    axe(page, "delivery form, English")
    page.click("#lang-toggle")
    page.wait_for_selector("#delivery-title:has-text('お買い物を届けてもらう')")
    page.click("[data-store=kuma_sun_terrace]")
    page.fill("#shopping-list", "お米 5kg")
    page.click("#pick-delivery")
    page.click("[data-zone=ogawara]")
    page.click(f"[data-stop={HALL}]")
    page.select_option("#window-start", "11:00")
    page.select_option("#window-width", "120")
    page.click("#delivery-search")
    page.wait_for_selector("#delivery-window:has-text('11:00 〜 13:00')")
    page.click("#confirm")
    page.wait_for_selector("#handover-code")
    booking_id = page.url.rsplit("/", 1)[1]
    page.click("#cancel")
    page.wait_for_selector("#cancel-q")
    axe(page, "delivery cancel question")
    page.click("#cancel-yes")
    page.wait_for_selector("#parcel-status:has-text('取り消し済み')")
    assert page.locator("#handover-code").count() == 0 and page.locator("#cancel").count() == 0
    assert page.locator("#parcel-status-live").inner_text() == "お届けを取り消しました。"
    axe(page, "delivery cancelled")
    with _api(live, live.tokens["store2"]) as store:
        orders = store.get("/api/v1/store/orders").json()["orders"]
    assert [o["status"] for o in orders if o["booking_id"] == booking_id] == ["cancelled"]
    assert page.js_errors == []


def test_desk_links_a_family_member_the_relative_books_for_the_parent_and_the_desk_ends_it(
        page_for: Any, server: Any, codes: Codes, desk_page: Any) -> None:
    live, _ = server
    son = page_for()
    sign_in(son, live, codes, "090-4321-0002", "大熊 一郎")  # the son has the app; his mother has not

    desk = desk_page()
    _console(desk, live)
    tab_to(desk, "#desk-phone")
    desk.keyboard.type("090-4321-0002")
    desk.keyboard.press("Enter")
    desk.wait_for_selector("#desk-resident")
    assert "大熊 一郎 様" in desk.locator("#desk-resident").inner_text()
    assert "*******0002" in desk.locator("#desk-resident").inner_text()
    assert desk.locator("#desk-links-none").is_visible()
    axe(desk, "desk: resident found")
    desk.fill("#desk-member-name", "大熊 トメ")
    desk.fill("#desk-member-phone", "090-4321-0003")
    desk.click("#desk-link")  # consent not ticked: refused on the page
    assert "同意を確認してから" in desk.locator("#desk-error").inner_text()
    axe(desk, "desk: consent missing")
    tab_to(desk, "#desk-consent")
    desk.keyboard.press("Space")
    assert desk.is_checked("#desk-consent")
    tab_to(desk, "#desk-link")
    desk.keyboard.press("Enter")
    desk.wait_for_selector("#desk-links li")
    assert "大熊 トメ 様" in desk.locator("#desk-links").inner_text()
    assert "窓口で同意" in desk.locator("#desk-links").inner_text()
    assert "連携しました" in desk.locator("#desk-status").inner_text()
    axe(desk, "desk: linked")
    a11y(desk, min_target=40)
    shot(desk, "operator_family_desk")
    # unknown number: told, in Japanese
    desk.fill("#desk-phone", "090-4321-0999")
    desk.click("#desk-find")
    desk.wait_for_selector("#desk-error:has-text('登録されていません')")
    desk.fill("#desk-phone", "090-4321-0002")
    desk.click("#desk-find")
    desk.wait_for_selector("#desk-links li")

    # The son books a ride for his mother in the app.
    son.click("#tab-family")
    son.wait_for_selector("[data-book-for]")
    assert "大熊 トメさん(あなたが予約できます)" in son.locator("#family-list").inner_text()
    son.click("[data-book-for]")
    son.wait_for_selector("#for-whom")
    assert son.locator("#for-whom option:checked").inner_text() == "大熊 トメ"
    choose(son, HALL, "ogawara", ONO_WEST, "ono")
    son.click("#search")
    son.click("#confirm")
    son.wait_for_selector("#booking-status:has-text('予約済み')")
    assert son.locator("#passenger").inner_text() == "大熊 トメ"
    booking_id = son.url.rsplit("/", 1)[1]
    with _api(live, token_of(son)) as api:
        b = api.get(f"/api/v1/bookings/{booking_id}").json()
    assert b["account_id"] != b["booked_by_id"] and b["passenger_name"] == "大熊 トメ"

    # The desk ends the link (two steps); the son can no longer book for her.
    desk.click("[data-unlink]")
    assert desk.evaluate("document.activeElement.id") == "desk-unlink-yes"
    axe(desk, "desk: end the link?")
    desk.click("#desk-unlink-yes")
    desk.wait_for_selector("#desk-links-none")
    assert "連携をやめました" in desk.locator("#desk-status").inner_text()
    son.click("#tab-list")
    son.click("#tab-family")
    son.wait_for_selector("#family-list:has-text('連携しているご家族はいません')")
    assert son.js_errors == [] and desk.js_errors == []


def _door_to_door_rider(live: Any, name: str) -> str:
    """A rider registered for door-to-door (as `okuma accounts create --door-to-door` makes one)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from transit.accounts import create_account
    from transit.db import make_engine
    from transit.uow import UnitOfWorkFactory

    async def main() -> str:
        engine = make_engine(f"sqlite+aiosqlite:///{live.db_path}")
        try:
            async with UnitOfWorkFactory(engine, live.clock)() as uow:
                _, tok = await create_account(uow, role="rider", name=name, door_to_door=True)
                await uow.commit()
        finally:
            await engine.dispose()
        return tok

    # Playwright's sync API runs an event loop in this thread: the account is made in another one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(main())).result()


def test_a_door_to_door_rider_has_groceries_brought_home(browser: Any, server: Any) -> None:
    live, _ = server
    token = _door_to_door_rider(live, "大熊 ハル")
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, locale="ja-JP", timezone_id="Asia/Tokyo",
                              service_workers="block", geolocation={"latitude": 37.3850, "longitude": 140.9645},
                              permissions=["geolocation"])
    ctx.set_default_timeout(20000)
    try:
        page = ctx.new_page()
        page.clock.install(time=live.clock.now())
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        with_token(page, "rider", token)
        page.goto(live.url("/#/delivery"))
        page.wait_for_selector("#to-home")
        page.click("[data-store=okumart]")
        page.fill("#order-number", "B-7")
        page.click("#to-home")
        page.wait_for_selector("#home-address")
        page.click("#delivery-search")  # no address, no position yet: said on the page
        assert "自宅の住所と位置" in page.locator("#delivery-error").inner_text()
        page.fill("#home-address", "大熊町大川原 1-2-3")
        page.click("#use-location")
        page.wait_for_selector("#home-where:has-text('37.3850, 140.9645')")
        axe(page, "delivery form, home")
        page.select_option("#window-start", "10:30")
        page.click("#delivery-search")
        page.wait_for_selector("#delivery-window:has-text('10:30 〜 11:30')")
        assert page.locator("#offer-to").inner_text() == "自宅(大熊町大川原 1-2-3)"
        page.click("#confirm")
        page.wait_for_selector("#handover-code")
        assert page.locator("#parcel-to").inner_text() == "自宅(大熊町大川原 1-2-3)"
        booking_id = page.url.rsplit("/", 1)[1]
        with _api(live, token) as api:
            b = api.get(f"/api/v1/bookings/{booking_id}").json()
        assert b["destination"]["stop_id"] is None and b["destination"]["address"] == "大熊町大川原 1-2-3"
        assert abs(b["destination"]["lat"] - 37.3850) < 1e-6 and abs(b["destination"]["lon"] - 140.9645) < 1e-6
        axe(page, "delivery home, ordered")
        shot(page, "rider_delivery_home")
        assert errors == []
    finally:
        ctx.close()
