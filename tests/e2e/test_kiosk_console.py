"""Kiosk, operator console, driver tablet and /docs in real Chromium: axe-core on every state,
touch targets, text size, 200 % zoom, keyboard only; screenshots in tests/e2e/artifacts/."""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
from typing import Any

import httpx
import pytest

from tests.e2e.a11y import axe, overflow, shot, targets_at_least, text_at_least
from tests.e2e.conftest import TEST_OFFICE_PHONE, LiveServer
from tests.e2e.test_pages import tab_to, with_token
from transit.accounts import hash_token

pytestmark = pytest.mark.browser

DESKTOP = (1366, 900)
TABLET = (1280, 800)


def test_docs_work_offline(new_page: Any, live_server: LiveServer) -> None:
    """/docs draws Swagger UI from the vendored copy with every request outside the server refused."""
    page = new_page(*DESKTOP)
    outside: list[str] = []

    def only_local(route: Any) -> None:
        if route.request.url.startswith(live_server.base_url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.goto(live_server.url("/docs"))
    page.wait_for_selector("#operations-bookings-confirm_offer")
    assert page.locator(".opblock").count() >= 8
    assert outside == []
    shot(page, "docs")
    # Swagger UI's own markup nests its expand button in a clickable summary, skips a heading level
    # and puts its title block outside its <main>: all three are in the vendored bundle's DOM.
    axe(page, "docs", skip=("nested-interactive", "heading-order", "region"))
    assert page.js_errors == []


def test_logins_have_no_axe_violations(new_page: Any, live_server: LiveServer) -> None:
    """The driver's and the console's login screens (the driver login had 2 violations)."""
    for path, ready, name in [("/driver/", "#login:not([hidden])", "driver_login"), ("/operator", "#op-token", "console_login")]:
        page = new_page(*(TABLET if name.startswith("driver") else DESKTOP))
        page.goto(live_server.url(path))
        page.wait_for_selector(ready)
        shot(page, name)
        axe(page, name)


KIOSK = (1080, 1920)
KIOSK_LANDSCAPE = (1920, 1080)
KIOSK_ZOOM_200 = (540, 960)  # the portrait kiosk at 200 % zoom: half the CSS pixels
NUMBER = re.compile(r"^[0-9ABCDEFGHJKMNPQRSTVWXYZ]{6}$")
EMOJI = "() => /\\p{Extended_Pictographic}/u.test(document.body.innerText)"


def add_account(db_path: Any, role: str, name: str, *, card: str | None = None, stop_id: str | None = None) -> str:
    """An account written straight into a live server's SQLite database; returns its token."""
    token = f"okm_{role}_{secrets.token_urlsafe(16)}"
    with sqlite3.connect(db_path) as db:
        db.execute(
            "INSERT INTO accounts (id, role, name, token_hash, door_to_door, locale, created_at, disabled, rider_card,"
            " stop_id) VALUES (?, ?, ?, ?, 0, 'ja', '2026-11-26 00:00:00', 0, ?, ?)",
            (f"acc_{secrets.token_hex(6)}", role, name, hash_token(token), card, stop_id))
    return token


def add_rider(live_server: LiveServer, name: str, card: str) -> str:
    """A registered rider with a rider card."""
    return add_account(live_server.db_path, "rider", name, card=card)


def kiosk_checks(page: Any, where: str, *, fits: bool = True) -> None:
    """Every kiosk state: axe-core clean, targets ≥ 60 px, text ≥ 24 px, no emoji, and (unless
    zoomed) nothing below the fold."""
    axe(page, where)
    targets_at_least(page, 60)
    text_at_least(page, 24)
    assert not page.evaluate(EMOJI), where
    w, h = overflow(page)
    assert w <= 0, f"{where}: {w} px too wide"
    if fits:
        assert h <= 0, f"{where}: {h} px below the fold"


def open_kiosk(new_page: Any, live_server: LiveServer, size: tuple[int, int]) -> Any:
    page = new_page(*size)
    with_token(page, "kiosk", live_server.tokens["kiosk"])
    page.goto(live_server.url("/kiosk"))
    page.wait_for_selector("[data-stop=ono_station_west_plaza]")
    return page


def test_kiosk_wheelchair_card_number_lookup_and_cancel(new_page: Any, live_server: LiveServer) -> None:
    """A wheelchair user books with a rider card in five taps plus the card; the number is read
    aloud; the booking is theirs under their name; they look it up by number and cancel it."""
    rider_token = add_rider(live_server, "大熊 ハナ", "KC-0001")
    page = open_kiosk(new_page, live_server, KIOSK)
    page.wait_for_selector("#approaching-list")
    kiosk_checks(page, "kiosk destinations")
    shot(page, "kiosk_dest_portrait")
    page.click("[data-stop=ono_station_west_plaza]")
    page.click("[data-party='1']")
    page.wait_for_selector("#wc-yes")  # one person does not skip the wheelchair question
    assert "車いす" in page.evaluate("window.__kioskSpoken")
    kiosk_checks(page, "kiosk wheelchair")
    shot(page, "kiosk_wheelchair")
    page.click("#wc-yes")
    page.click("#when-now")
    page.wait_for_selector("#confirm")
    assert "車いす" in page.locator(".summary").inner_text()
    kiosk_checks(page, "kiosk confirm")
    page.click("#add-card")
    page.wait_for_selector("#card:focus")  # the reader types into the focused field
    kiosk_checks(page, "kiosk card")
    shot(page, "kiosk_card")
    page.keyboard.type("OKUMA-CARD:kc-0001")  # what the QR code carries
    page.keyboard.press("Enter")
    page.wait_for_selector("#offer-name:has-text('大熊 ハナ')")
    shot(page, "kiosk_confirm_card")
    page.click("#confirm")
    page.wait_for_selector("#booking-number")
    number = page.locator("#booking-number").inner_text()
    assert NUMBER.match(number)
    assert "、".join(number) in page.evaluate("window.__kioskSpoken")  # read out one character at a time
    kiosk_checks(page, "kiosk done")
    shot(page, "kiosk_done")
    with httpx.Client(base_url=live_server.base_url, headers={"Authorization": f"Bearer {rider_token}"}) as api:
        theirs = api.get("/api/v1/bookings").json()
    assert [(b["number"], b["wheelchairs"], b["passenger_name"], b["channel"]) for b in theirs] == [
        (number, 1, "大熊 ハナ", "kiosk")]

    page.click("#finish")
    page.click("#lookup")
    page.wait_for_selector("#lookup-number")
    kiosk_checks(page, "kiosk look-up")
    shot(page, "kiosk_lookup")
    for ch in number:
        page.click(f"[data-key='{ch}']")
    page.click("#lookup-go")
    page.wait_for_selector("#found-status")
    assert "予約済み" in page.locator("#found-status").inner_text()
    kiosk_checks(page, "kiosk found")
    shot(page, "kiosk_found")
    page.click("#cancel-booking")
    page.wait_for_selector("#cancel-yes")
    kiosk_checks(page, "kiosk cancel question")
    page.click("#cancel-yes")
    page.wait_for_selector("main[data-step=cancelled]")
    kiosk_checks(page, "kiosk cancelled")
    with live_server.api("operator") as api:
        assert api.get(f"/api/v1/bookings/by-number/{number}").json()["status"] == "cancelled"
    # A number that does not exist: a clear message, the entry stays.
    page.click("#finish")
    page.click("#lookup")
    page.fill("#lookup-number", "ZZZZZZ")
    page.keyboard.press("Enter")
    page.wait_for_selector("#kiosk-error:has-text('見つかりません')")
    kiosk_checks(page, "kiosk look-up not found")
    assert page.js_errors == []


def test_kiosk_languages_call_button_and_kana_name(new_page: Any, live_server: LiveServer) -> None:
    """English and easy Japanese switch every text; the call button shows the office number from the
    service rules; a name entered with kana buttons (voiced marks too) reaches the booking."""
    page = open_kiosk(new_page, live_server, KIOSK)
    page.click("#lang-en")
    assert page.locator("#step-title").inner_text() == "Where are you going?"
    assert page.evaluate("document.documentElement.lang") == "en"
    assert page.locator("[data-stop=ono_station_west_plaza]").inner_text().startswith("Ono Station")
    assert page.evaluate("getComputedStyle(document.querySelector('#lang-en'), '::before').content") == '"✓ "'
    kiosk_checks(page, "kiosk English")
    shot(page, "kiosk_english")
    page.click("#call")
    page.wait_for_selector("#office-phone")
    assert page.locator("#office-phone").inner_text() == TEST_OFFICE_PHONE
    assert page.locator("#call-now").get_attribute("href") == "tel:" + TEST_OFFICE_PHONE.replace("-", "")
    assert page.evaluate("document.activeElement.id") == "call-close"
    kiosk_checks(page, "kiosk call dialog")
    shot(page, "kiosk_call")
    page.keyboard.press("Escape")
    assert page.locator("#call-box").is_hidden()
    page.click("#lang-easy")
    assert page.locator("#step-title").inner_text() == "どこへ いきますか"
    assert page.evaluate("document.documentElement.lang") == "ja"
    kiosk_checks(page, "kiosk easy Japanese")
    page.click("#lang-ja")
    page.click("[data-stop=okumart]")
    page.click("[data-party='1']")
    page.click("#wc-no")
    page.click("#when-now")
    page.click("#add-name")
    page.wait_for_selector("[data-kana=す]")
    kiosk_checks(page, "kiosk name")
    shot(page, "kiosk_name")
    for ch in ["す", "す", "゛", "き"]:
        page.click(f"[data-kana='{ch}']")
    assert page.locator("#name-value").inner_text() == "すずき"
    page.click("#name-ok")
    page.wait_for_selector("#offer-name:has-text('すずき')")
    page.click("#confirm")
    page.wait_for_selector("#booking-number")
    number = page.locator("#booking-number").inner_text()
    with live_server.api("operator") as api:
        b = api.get(f"/api/v1/bookings/by-number/{number}").json()
    assert b["passenger_name"] == "すずき" and b["wheelchairs"] == 0
    assert page.js_errors == []


@pytest.mark.parametrize("size", [KIOSK_LANDSCAPE, KIOSK], ids=["landscape", "portrait"])
def test_kiosk_every_step_fits_the_screen(new_page: Any, live_server: LiveServer, size: tuple[int, int]) -> None:
    """Portrait and landscape: every step of a booking fits the screen, nothing below the fold."""
    page = open_kiosk(new_page, live_server, size)
    name = "landscape" if size[0] > size[1] else "portrait"
    for where, action, wait in [
        ("destinations", None, "#more-stops"),
        ("people", "[data-stop=kuma_sun_terrace]", "[data-party='6']"),
        ("wheelchair", "[data-party='2']", "#wc-no"),
        ("when", "#wc-no", "#when-pick"),
        ("times", "#when-pick", "[data-time]"),
    ]:
        if action:
            page.click(action)
        page.wait_for_selector(wait)
        kiosk_checks(page, f"kiosk {name} {where}")
        shot(page, f"kiosk_{name}_{where}")
    page.click("[data-time] >> nth=2")
    page.wait_for_selector("#confirm")
    kiosk_checks(page, f"kiosk {name} confirm")
    shot(page, f"kiosk_{name}_confirm")
    page.click("#add-name")
    page.wait_for_selector("#name-ok")
    kiosk_checks(page, f"kiosk {name} name")
    page.click("#back")
    page.click("#restart")
    page.click("#lookup")
    page.wait_for_selector("#lookup-go")
    kiosk_checks(page, f"kiosk {name} look-up")
    assert page.js_errors == []


def test_kiosk_at_200_percent_zoom_by_keyboard(new_page: Any, live_server: LiveServer) -> None:
    """At 200 % zoom the kiosk reflows (no sideways scrolling) and books and looks up by keyboard alone."""
    page = open_kiosk(new_page, live_server, KIOSK_ZOOM_200)
    kiosk_checks(page, "kiosk 200% destinations", fits=False)
    shot(page, "kiosk_zoom200_dest")
    for target, wait in [("[data-stop=okuma_clinic_welfare_centre]", "[data-party='1']"),
                         ("[data-party='1']", "#wc-no"), ("#wc-no", "#when-now"), ("#when-now", "#confirm")]:
        tab_to(page, target)
        page.keyboard.press("Enter")
        page.wait_for_selector(wait)
        kiosk_checks(page, f"kiosk 200% before {wait}", fits=False)
    shot(page, "kiosk_zoom200_confirm")
    tab_to(page, "#confirm")
    page.keyboard.press("Enter")
    page.wait_for_selector("#booking-number")
    number = page.locator("#booking-number").inner_text()
    kiosk_checks(page, "kiosk 200% done", fits=False)
    tab_to(page, "#finish")
    page.keyboard.press("Enter")
    tab_to(page, "#lookup")
    page.keyboard.press("Enter")
    page.wait_for_selector("#lookup-number:focus-within, #step-title:focus")
    tab_to(page, "#lookup-number")
    page.keyboard.type(number.lower())
    page.keyboard.press("Enter")
    page.wait_for_selector("#found-status")
    kiosk_checks(page, "kiosk 200% found", fits=False)
    shot(page, "kiosk_zoom200_found")
    assert page.js_errors == []


NEAR_HALL = """() => {
  const g = [...document.querySelectorAll('svg.map g')].find((x) => (x.querySelector('title') || {}).textContent === '大熊町役場(端末あり)');
  const r = g.querySelector('circle').getBoundingClientRect();
  return [r.x + r.width / 2 + 14, r.y + r.height / 2 + 14];
}"""
LABELS_OVERLAP = """() => {
  const boxes = [...document.querySelectorAll('svg.map text, svg.map g.vehicle rect')].map((e) => e.getBoundingClientRect());
  const out = [];
  for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
    const a = boxes[i], b = boxes[j];
    if (a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1) out.push([i, j]);
  }
  return out;
}"""


@pytest.fixture
def own_server(tmp_path: Any) -> Any:
    from tests.conftest import T0
    from tests.integration.test_simulator import start_live_server
    from transit.clock import FakeClock

    srv = start_live_server(tmp_path, FakeClock(T0))
    srv.db_path = tmp_path / "okuma.db"  # type: ignore[attr-defined]
    try:
        yield srv
    finally:
        srv.stop()


def test_desk_books_door_to_door_and_the_driver_sees_it(new_page: Any, own_server: Any) -> None:
    """Staff book a caller door-to-door (address, a pin on the map, a note, the phone); the console
    lists it by number with the address and the vehicle's name; the driver's tablet shows the address,
    the note, a call button, the next leg on a map and the date."""
    srv = own_server
    page = new_page(*DESKTOP)
    page.add_init_script(f"localStorage.setItem('okuma.token.operator', {srv.tokens['operator']!r})")
    page.goto(srv.url + "/operator")
    page.wait_for_selector("#phone-form")
    axe(page, "console")
    page.fill("#caller", "大熊 ウメ")
    page.fill("#phone", "0240-33-4444")
    page.select_option("#origin", "__point__")
    page.fill("#origin-address", "大熊町大川原字南平 1-2")
    page.click("#origin-pin")
    assert page.locator("#origin-pin").get_attribute("aria-pressed") == "true"
    page.wait_for_selector("#map-hint:has-text('位置を指定')")
    page.evaluate("() => document.querySelector('svg.map').scrollIntoView({block: 'center'})")  # the live map may be redrawn meanwhile
    x, y = page.evaluate(NEAR_HALL)
    page.mouse.click(x, y)
    page.wait_for_selector("svg.map [data-pin=origin]")
    lat, lon = float(page.input_value("#origin-lat")), float(page.input_value("#origin-lon"))
    assert 37.37 < lat < 37.39 and 140.95 < lon < 140.97, (lat, lon)
    axe(page, "console door-to-door entry")
    shot(page, "console_door_to_door")
    page.select_option("#destination", "okuma_clinic_welfare_centre")
    page.select_option("#mode", "now")
    page.fill("#note", "玄関は裏手です")
    page.click("#get-offer")
    page.wait_for_selector("#offer-window")
    assert "大熊町大川原字南平 1-2" in page.locator("#offer").inner_text()
    axe(page, "console offer")
    page.click("#confirm")
    page.wait_for_selector("#booked-number")
    number = page.locator("#booked-number").inner_text()
    assert NUMBER.match(number)
    row = page.locator("#bookings-body tr", has_text=number)
    row.wait_for()
    with httpx.Client(base_url=srv.url, headers=srv.auth("operator")) as api:
        b = api.get(f"/api/v1/bookings/by-number/{number}").json()
        fleet = {v["vehicle_id"]: v["name_ja"] for v in api.get("/api/v1/vehicles").json()}
    assert b["origin"]["address"] == "大熊町大川原字南平 1-2" and b["driver_note"] == "玄関は裏手です"
    assert "大熊町大川原字南平 1-2" in row.inner_text()
    assert fleet[b["vehicle_id"]] in row.inner_text() and b["vehicle_id"] not in row.inner_text()
    assert page.evaluate(LABELS_OVERLAP) == []  # map labels and vehicles do not collide
    axe(page, "console booked")
    shot(page, "console_booked")
    row.get_by_role("button", name="大熊 ウメ 様の予約を取り消す").click()
    page.wait_for_selector("#bookings-body button.danger.primary")
    axe(page, "console cancel question")

    tablet = new_page(*TABLET)
    tablet.goto(f"{srv.url}/driver/?token={srv.drivers[b['vehicle_id']]}")
    tablet.wait_for_selector("#doorstep")
    assert "大熊町大川原字南平 1-2" in tablet.locator("#next-stop-name").inner_text()  # not 「地点 37.38…」
    assert "大熊町大川原字南平 1-2" in tablet.locator(".doorstep-address").inner_text()
    assert "玄関は裏手です" in tablet.locator(".doorstep-note").inner_text()
    assert tablet.locator("[data-action=call]").get_attribute("href") == "tel:0240334444"
    assert tablet.locator("#leg-map").get_attribute("aria-label").startswith("次の区間の地図")
    assert re.fullmatch(r"\d+月\d+日\(.\)", tablet.locator("#date").inner_text())
    axe(tablet, "tablet door-to-door")
    shot(tablet, "tablet_door_to_door")
    assert page.js_errors == [] and tablet.js_errors == []


def test_console_search_other_days_and_pages(new_page: Any, own_server: Any) -> None:
    """The console finds a booking by number, name or phone, shows other days, pages through a long
    day (50 a page), names vehicles; keyboard only for the search."""
    srv = own_server
    day = "2026-11-27"
    with httpx.Client(base_url=srv.url, headers=srv.auth("operator"), timeout=10) as api:
        made = []
        for i in range(52):
            hh, mm = divmod(7 * 60 + 14 * i, 60)
            r = api.post("/api/v1/offers", json={
                "origin": {"stop_id": "okumart"}, "destination": {"stop_id": "kuma_sun_terrace"},
                "time_mode": "leave_at", "time": f"{day}T{hh:02d}:{mm:02d}:00+09:00",
                "passenger_name": f"利用者 {i:02d}", "contact_phone": f"0240-55-{i:04d}"})
            assert r.status_code == 201, r.text
            made.append(api.post("/api/v1/bookings", json={"offer_id": r.json()["offer_id"]},
                                 headers={"Idempotency-Key": f"page-{i}"}).json())
    page = new_page(*DESKTOP)
    page.add_init_script(f"localStorage.setItem('okuma.token.operator', {srv.tokens['operator']!r})")
    page.goto(srv.url + "/operator")
    page.wait_for_selector("#search-form")
    page.select_option("#filter-day", day)
    page.click("#search")
    page.wait_for_selector("#page-info:has-text('52 件中 1〜50 件')")
    assert page.locator("#bookings-body tr").count() == 50
    assert page.locator("#table-h").inner_text() != "今日の予約"
    axe(page, "console other day")
    shot(page, "console_other_day")
    page.click("#page-next")
    page.wait_for_selector("#page-info:has-text('52 件中 51〜52 件')")
    assert page.locator("#bookings-body tr").count() == 2 and page.locator("#page-next").is_disabled()
    names = page.locator("#bookings-body td:nth-child(7)").all_inner_texts()
    assert names and all(n and not re.fullmatch(r"[a-z0-9_]+", n) for n in names)  # vehicle names, not ids
    # Keyboard only: the search box, a number typed in lower case, Enter.
    page.focus("#filter-q")
    page.keyboard.type(made[17]["number"].lower())
    page.keyboard.press("Enter")
    page.wait_for_selector("#page-info:has-text('1 件中 1〜1 件')")
    assert made[17]["number"] in page.locator("#bookings-body").inner_text()
    axe(page, "console search result")
    shot(page, "console_search")
    page.fill("#filter-q", "0240550033")  # a phone typed without hyphens
    page.keyboard.press("Enter")
    page.wait_for_selector("#bookings-body tr:has-text('利用者 33')")
    assert page.locator("#bookings-body tr").count() == 1
    page.fill("#filter-q", "")
    page.select_option("#filter-status", "cancelled")
    page.click("#search")
    page.wait_for_selector("#bookings-body:has-text('条件に合う予約はありません')")
    axe(page, "console nothing found")
    page.click("#search-reset")
    page.wait_for_selector("#table-h:has-text('今日の予約')")
    assert page.js_errors == []


def test_tablet_calls_a_nameless_kiosk_rider_by_booking_number(new_page: Any, own_server: Any) -> None:
    """A walk-up booked at the kiosk without a name shows on the tablet by its booking number, never
    by the kiosk's name."""
    srv = own_server
    kiosk = add_account(srv.db_path, "kiosk", "役場前キオスク (demo kiosk)", stop_id="okuma_town_hall")
    with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {kiosk}"}, timeout=10) as api:
        stop = api.get("/api/v1/me").json()["stop_id"]
        dest = "okumart" if stop != "okumart" else "okuma_town_hall"
        r = api.post("/api/v1/offers", json={"origin": {"stop_id": stop}, "destination": {"stop_id": dest}})
        assert r.status_code == 201, r.text
        b = api.post("/api/v1/bookings", json={"offer_id": r.json()["offer_id"]}, headers={"Idempotency-Key": "walk-up"}).json()
    assert b["passenger_name"] == ""
    tablet = new_page(*TABLET)
    tablet.goto(f"{srv.url}/driver/?token={srv.drivers[b['vehicle_id']]}")
    who = tablet.locator(f"li.rider[data-booking='{b['id']}'] .who")
    who.wait_for()
    assert who.inner_text() == f"予約番号 {b['number']}"
    axe(tablet, "tablet next stop")
    shot(tablet, "tablet_kiosk_rider")
    assert tablet.js_errors == []


def test_console_and_tablet_at_200_percent_zoom(new_page: Any, own_server: Any) -> None:
    """At 200 % zoom the console and the tablet reflow without sideways scrolling and stay axe-clean."""
    srv = own_server
    with httpx.Client(base_url=srv.url, headers=srv.auth("operator"), timeout=10) as api:
        r = api.post("/api/v1/offers", json={"origin": {"lat": 37.3850, "lon": 140.9645, "address": "大熊町大川原 1-2"},
                                             "destination": {"stop_id": "okumart"}, "passenger_name": "大熊 ウメ",
                                             "contact_phone": "0240-33-4444", "driver_note": "玄関は裏手です"})
        assert r.status_code == 201, r.text
        b = api.post("/api/v1/bookings", json={"offer_id": r.json()["offer_id"]}, headers={"Idempotency-Key": "z"}).json()
    page = new_page(DESKTOP[0] // 2, DESKTOP[1] // 2)
    page.add_init_script(f"localStorage.setItem('okuma.token.operator', {srv.tokens['operator']!r})")
    page.goto(srv.url + "/operator")
    page.wait_for_selector(f"#bookings-body tr[data-booking='{b['id']}']")
    assert overflow(page)[0] <= 0
    axe(page, "console 200%")
    shot(page, "console_zoom200")
    tablet = new_page(TABLET[0] // 2, TABLET[1] // 2)
    tablet.goto(f"{srv.url}/driver/?token={srv.drivers[b['vehicle_id']]}")
    tablet.wait_for_selector("#doorstep")
    assert overflow(tablet)[0] <= 0
    axe(tablet, "tablet 200%")
    shot(tablet, "tablet_zoom200")
    assert page.js_errors == [] and tablet.js_errors == []


def test_kiosk_setup_and_idle_warning_pass_axe(new_page: Any, live_server: LiveServer) -> None:
    """The staff setup screen and the inactivity warning: axe-core clean, kiosk-sized."""
    page = new_page(*KIOSK)
    page.goto(live_server.url("/kiosk"))
    page.wait_for_selector("#kiosk-token:focus")
    kiosk_checks(page, "kiosk setup")
    shot(page, "kiosk_setup")
    page.keyboard.type(live_server.tokens["kiosk"])
    page.keyboard.press("Enter")
    page.click("[data-stop=okumart]")
    page.wait_for_selector("[data-party='1']")
    page.clock.run_for(91_000)
    page.wait_for_selector("#idle-warning:not([hidden])")
    kiosk_checks(page, "kiosk idle warning")
    shot(page, "kiosk_idle", full_page=False)
    page.click("#idle-continue")
    assert page.locator("#idle-warning").is_hidden()
    assert page.js_errors == []


NO_RIDE = {"error": "NoRideAvailable", "message_ja": "その時刻には乗れる車両がありません。",
           "message_en": "No ride is possible at that time.", "detail": "…", "cause": "no_feasible_insertion",
           "alternatives": ["2026-11-26T10:15:00+09:00", "2026-11-26T10:45:00+09:00"]}


def _no_ride_once(page: Any) -> None:
    """The next offer request is answered 409 NoRideAvailable (the page's no-ride state), later ones go through."""
    done: list[bool] = []

    def handle(route: Any) -> None:
        if route.request.method == "POST" and not done:
            done.append(True)
            route.fulfill(status=409, content_type="application/json", body=json.dumps(NO_RIDE))
        else:
            route.continue_()

    page.route("**/api/v1/offers", handle)


def test_no_ride_states_pass_axe(new_page: Any, live_server: LiveServer) -> None:
    """The kiosk's and the console's no-ride answers (cause and alternatives): axe-core clean, and one
    tap on an alternative asks again."""
    page = open_kiosk(new_page, live_server, KIOSK)
    _no_ride_once(page)
    page.click("[data-stop=okumart]")
    page.click("[data-party='1']")
    page.click("#wc-no")
    page.click("#when-now")
    page.wait_for_selector("#cause")
    assert page.locator("button.alt").count() == 2
    kiosk_checks(page, "kiosk no ride")
    shot(page, "kiosk_no_ride")
    page.click("button.alt >> nth=0")
    page.wait_for_selector("#confirm")

    console = new_page(*DESKTOP)
    with_token(console, "operator", live_server.tokens["operator"])
    console.goto(live_server.url("/operator"))
    console.wait_for_selector("#phone-form")
    _no_ride_once(console)
    console.fill("#caller", "双葉 太郎")
    console.select_option("#origin", "okumart")
    console.select_option("#destination", "kuma_sun_terrace")
    console.click("#get-offer")
    console.wait_for_selector("#no-ride")
    axe(console, "console no ride")
    shot(console, "console_no_ride")
    assert page.js_errors == [] and console.js_errors == []
