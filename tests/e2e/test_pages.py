"""The pages in real Chromium against a live server whose clock says Thursday 09:00 in Okuma."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import LiveServer

pytestmark = pytest.mark.browser

PHONE = (390, 844)
KIOSK = (1080, 1920)
DESKTOP = (1366, 900)

A11Y_CHECK = """
() => {
  const problems = [];
  const ids = new Map();
  for (const e of document.querySelectorAll('[id]')) ids.set(e.id, (ids.get(e.id) || 0) + 1);
  for (const [id, n] of ids) if (n > 1) problems.push('duplicate id ' + id);
  if (document.documentElement.lang !== 'ja') problems.push('html lang is ' + document.documentElement.lang);
  const visible = (e) => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  for (const e of document.querySelectorAll('input, select, textarea')) {
    if (e.type === 'hidden' || !visible(e)) continue;
    const ok = (e.id && document.querySelector(`label[for="${e.id}"]`)) || e.closest('label')
      || e.getAttribute('aria-label') || e.getAttribute('aria-labelledby');
    if (!ok) problems.push('input without label: ' + (e.id || e.name || e.outerHTML.slice(0, 60)));
  }
  for (const e of document.querySelectorAll('button, a[href], [role=button]')) {
    if (!visible(e)) continue;
    const name = (e.getAttribute('aria-label') || e.textContent || '').trim();
    if (!name) problems.push('control without a name: ' + e.outerHTML.slice(0, 80));
    const r = e.getBoundingClientRect();
    if (e.tagName !== 'A' && (r.width < MIN || r.height < MIN))
      problems.push(`target ${Math.round(r.width)}x${Math.round(r.height)} < ${MIN}: ` + name.slice(0, 30));
  }
  for (const e of document.querySelectorAll('svg[role=img]'))
    if (!e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby')) problems.push('svg without name');
  return problems;
}
"""


def a11y(page: Any, min_target: int = 24) -> None:
    problems = page.evaluate(A11Y_CHECK.replace("MIN", str(min_target)))
    assert problems == [], problems


def with_token(page: Any, role: str, token: str) -> None:
    page.add_init_script(f"localStorage.setItem('okuma.token.{role}', {json.dumps(token)})")


def choose_stops(page: Any, origin_query: str, origin: str, zone: str, destination: str) -> None:
    page.click("#pick-origin")
    page.fill("#stop-search", origin_query)  # kana search
    page.click(f"[data-stop={origin}]")
    page.click("#pick-destination")
    page.click(f"[data-zone={zone}]")  # by hub
    page.click(f"[data-stop={destination}]")


def test_rider_books_sees_and_cancels(new_page: Any, live_server: LiveServer) -> None:
    page = new_page(*PHONE)
    page.goto(live_server.url("/"))
    a11y(page)
    page.click("#token-details summary")  # the desk token, folded under the phone sign-in
    page.fill("#token", live_server.tokens["rider"])
    page.get_by_role("button", name="登録する").click()
    page.wait_for_selector("#pick-origin")
    a11y(page)
    page.screenshot(path="/tmp/rider_form.png", full_page=True)
    page.click("#pick-origin")
    page.fill("#stop-search", "ヤクバ")  # katakana finds the hiragana reading
    assert page.locator("#stop-list button").count() == 1
    page.fill("#stop-search", "やくば")
    a11y(page)
    page.screenshot(path="/tmp/rider_picker.png", full_page=True)
    page.click("[data-stop=okuma_town_hall]")
    page.click("#pick-destination")
    page.click("[data-zone=ono]")
    page.click("[data-stop=ono_station_west_plaza]")
    page.click("#party-plus")
    page.click("#search")
    window = page.locator("#pickup-window")
    window.wait_for()
    assert window.inner_text().startswith("9:")  # Asia/Tokyo, not UTC
    assert "0円" in page.locator("#fare").inner_text()
    a11y(page)
    page.screenshot(path="/tmp/rider_offer.png", full_page=True)
    page.click("#confirm")
    page.wait_for_selector("#booking-status")
    assert page.locator("#booking-status").inner_text() == "予約済み"
    assert page.locator("#eta").is_visible()
    # The live channel (/ws/bookings/{id}) names the vehicle; polling alone gives only its id.
    page.wait_for_function("() => /バス/.test(document.querySelector('#booking-body').textContent)")
    assert "null" not in page.locator("#booking-body").inner_text()
    page.screenshot(path="/tmp/rider_booking.png", full_page=True)
    booking_id = page.url.rsplit("/", 1)[1]

    page.click("#tab-list")
    page.wait_for_selector(f"[data-booking={booking_id}]")
    page.click(f"[data-booking={booking_id}]")
    page.click("#cancel")
    assert page.locator("#cancel-q").is_visible()  # a second, explicit step
    page.click("#cancel-yes")
    page.wait_for_selector("#booking-status:has-text('取り消し済み')")
    with live_server.api("rider") as api:
        assert api.get(f"/api/v1/bookings/{booking_id}").json()["status"] == "cancelled"
    assert page.js_errors == []


def test_double_click_on_confirm_books_once(new_page: Any, live_server: LiveServer) -> None:
    page = new_page(*PHONE)
    with_token(page, "rider", live_server.tokens["rider2"])
    page.goto(live_server.url("/#/new"))
    choose_stops(page, "おおくまーと", "okumart", "ono", "kuma_sun_terrace")
    page.click("#mode-leave_at")
    page.fill("#time", "10:00")
    page.click("#search")
    page.locator("#confirm").dblclick()
    page.wait_for_selector("#booking-status")
    # A second, scripted pair of clicks on a fresh offer: the Idempotency-Key and the guard hold.
    with live_server.api("rider2") as api:
        mine = [b for b in api.get("/api/v1/bookings").json() if b["status"] == "confirmed"]
    assert len(mine) == 1
    assert page.js_errors == []


def test_no_ride_shows_cause_and_alternatives(new_page: Any, live_server: LiveServer) -> None:
    # Fill every working vehicle's wheelchair space at 10:30 through the API.
    req = {"origin": {"stop_id": "okuma_town_hall"}, "destination": {"stop_id": "ono_station_east_plaza"},
           "time_mode": "leave_at", "time": "2026-11-26T10:30:00+09:00", "party_size": 1, "wheelchairs": 1,
           "passenger_name": "満席テスト"}
    with live_server.api("operator") as api:
        for i in range(8):
            r = api.post("/api/v1/offers", json=req)
            if r.status_code == 409:
                break
            assert r.status_code == 201, r.text
            api.post("/api/v1/bookings", json={"offer_id": r.json()["offer_id"]},
                     headers={"Idempotency-Key": f"fill-{i}"}).raise_for_status()
        else:
            pytest.fail("the fleet never filled up")
    page = new_page(*PHONE)
    with_token(page, "rider", live_server.tokens["rider"])
    page.goto(live_server.url("/#/new"))
    choose_stops(page, "やくば", "okuma_town_hall", "ono", "ono_station_east_plaza")
    page.click("#mode-leave_at")
    page.fill("#time", "10:30")
    page.check("#wheelchair")
    page.click("#search")
    page.wait_for_selector("#no-ride [role=alert]")
    assert "いっぱい" in page.locator("#cause").inner_text()
    alts = page.locator("#no-ride button.alt")
    assert alts.count() >= 1
    a11y(page)
    page.screenshot(path="/tmp/rider_noride.png", full_page=True)
    alts.first.click()  # one tap searches again at that time
    page.wait_for_selector("#confirm")
    assert page.js_errors == []


def tab_to(page: Any, selector: str, limit: int = 80) -> None:
    """Press Tab until the focused element matches selector (keyboard only)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement && document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def test_kiosk_books_with_big_buttons_and_keyboard_only(new_page: Any, live_server: LiveServer) -> None:
    page = new_page(*KIOSK)
    page.goto(live_server.url("/kiosk"))
    page.keyboard.type(live_server.tokens["kiosk"])  # the token field has focus
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-stop=ono_station_west_plaza]")
    assert "大熊町役場" in page.locator("#here").inner_text()
    a11y(page, min_target=64)
    page.screenshot(path="/tmp/kiosk_dest.png", full_page=True)
    tab_to(page, "[data-stop=ono_station_west_plaza]")
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-party='2']")
    a11y(page, min_target=64)
    tab_to(page, "[data-party='2']")
    page.keyboard.press("Enter")
    page.wait_for_selector("#wc-no")  # the wheelchair question on its own: never skipped
    a11y(page, min_target=64)
    tab_to(page, "#wc-no")
    page.keyboard.press("Enter")
    page.wait_for_selector("#when-now")
    a11y(page, min_target=64)
    tab_to(page, "#when-now")
    page.keyboard.press("Enter")
    page.wait_for_selector("#confirm")
    assert "大野駅西口" in page.evaluate("window.__kioskSpoken")  # the step is read out
    a11y(page, min_target=64)
    page.screenshot(path="/tmp/kiosk_confirm.png", full_page=True)
    tab_to(page, "#confirm")
    page.keyboard.press("Enter")
    page.wait_for_selector("#result-window")
    assert page.locator("#result-window").inner_text().startswith("9:")
    assert "予約できました" in page.evaluate("window.__kioskSpoken")
    page.screenshot(path="/tmp/kiosk_done.png", full_page=True)
    number = page.locator("#booking-number").inner_text()
    with live_server.api("operator") as api:  # other tests book at this kiosk too: find this one by its number
        b = api.get(f"/api/v1/bookings/by-number/{number}").json()
    assert b["channel"] == "kiosk" and b["party_size"] == 2 and b["wheelchairs"] == 0

    # Inactivity: a warning first (with time to answer), then back to the start.
    tab_to(page, "#finish")
    page.keyboard.press("Enter")
    page.click("[data-stop=okumart]")  # a common destination, shown first
    page.wait_for_selector("[data-party='1']")
    page.clock.run_for(91_000)
    assert page.locator("#idle-warning").is_visible()
    assert "30 秒" in page.locator("#idle-text").inner_text() or "29 秒" in page.locator("#idle-text").inner_text()
    page.screenshot(path="/tmp/kiosk_idle.png")
    page.clock.run_for(32_000)
    assert page.locator("#idle-warning").is_hidden()
    page.wait_for_selector("[data-stop=ono_station_west_plaza]")
    assert page.js_errors == []


def test_operator_books_for_a_caller(new_page: Any, live_server: LiveServer) -> None:
    page = new_page(*DESKTOP)
    page.goto(live_server.url("/operator"))
    page.fill("#op-token", live_server.tokens["operator"])
    page.keyboard.press("Enter")
    page.wait_for_selector("#phone-form")
    page.fill("#caller", "双葉 太郎")
    page.fill("#phone", "0240-00-0000")
    page.select_option("#origin", "ogawara_disaster_public_housing")
    page.select_option("#destination", "okuma_clinic_welfare_centre")
    page.fill("#time", "11:00")
    page.fill("#party", "2")
    page.click("#get-offer")
    page.wait_for_selector("#offer-window")
    page.click("#confirm")
    page.wait_for_selector("#booked")
    row = page.locator("#bookings-body tr", has_text="双葉 太郎")
    row.wait_for()
    assert "予約済み" in row.inner_text()
    assert page.locator("svg.map circle").count() >= 20
    a11y(page)
    page.screenshot(path="/tmp/operator.png", full_page=True)
    with live_server.api("operator") as api:
        mine = [b for b in api.get("/api/v1/bookings").json() if b["passenger_name"] == "双葉 太郎"]
    assert len(mine) == 1 and mine[0]["channel"] == "phone"
    assert page.js_errors == []


def _operator_js_ms(name: str) -> int:
    src = (Path(__file__).resolve().parents[2] / "api/static/js/operator.js").read_text(encoding="utf-8")
    m = re.search(rf"const {name} = (\d+);", src)
    assert m, name
    return int(m.group(1))


def _book_by_phone(live_server: LiveServer, name: str, hhmm: str, key: str) -> dict[str, Any]:
    """A booking for today made by another operator session, through the HTTP API."""
    req = {"origin": {"stop_id": "okumart"}, "destination": {"stop_id": "kuma_sun_terrace"},
           "time_mode": "leave_at", "time": f"{live_server.clock.now().date().isoformat()}T{hhmm}:00+09:00",
           "party_size": 1, "wheelchairs": 0, "passenger_name": name}
    with live_server.api("operator") as api:
        r = api.post("/api/v1/offers", json=req)
        assert r.status_code == 201, r.text
        b = api.post("/api/v1/bookings", json={"offer_id": r.json()["offer_id"]}, headers={"Idempotency-Key": key})
        assert b.status_code in (200, 201), b.text
        return dict(b.json())


def test_operator_console_updates_live(new_page: Any, live_server: LiveServer) -> None:
    # The live channel must beat the polling by far: polling alone could never pass this test.
    live_window_s = 5
    assert _operator_js_ms("REFRESH_MS") >= 4 * live_window_s * 1000
    assert _operator_js_ms("LIVE_POLL_MS") >= 4 * live_window_s * 1000
    page = new_page(*DESKTOP)
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    with_token(page, "operator", live_server.tokens["operator"])
    page.goto(live_server.url("/operator"))
    page.wait_for_selector("#live-status[data-state=live]")
    status = page.locator("#live-status")
    assert status.get_attribute("aria-live") == "polite"
    assert "ライブ更新中" in status.inner_text() and "Live" in status.inner_text()
    assert sockets and all("token" not in u for u in sockets)  # first-message auth, not the URL
    page.wait_for_selector("#bookings-body tr")
    page.wait_for_timeout(1000)  # the catch-up refresh on connecting is over before the booking is made
    assert page.locator("#bookings-body tr", has_text="大熊 ライブ").count() == 0

    b = _book_by_phone(live_server, "大熊 ライブ", "14:00", "live-console-1")
    row = page.locator(f"#bookings-body tr[data-booking={b['id']}]")
    row.wait_for(timeout=live_window_s * 1000)  # polling (>= 20 s) could not deliver it in time
    assert "大熊 ライブ" in row.inner_text() and "予約済み" in row.inner_text()
    assert page.locator("#kpi-booked strong").inner_text() != "0"
    a11y(page)
    assert page.js_errors == []


def test_operator_console_alerts_and_reconnects(new_page: Any, live_server: LiveServer) -> None:
    page = new_page(*DESKTOP)
    routes: list[Any] = []

    def through(ws: Any) -> None:  # the real server behind, so the test can also push frames itself
        ws.connect_to_server()
        routes.append(ws)

    page.route_web_socket(re.compile(r".*/ws/operator$"), through)
    with_token(page, "operator", live_server.tokens["operator"])
    b = _book_by_phone(live_server, "双葉 花子", "15:00", "live-console-2")
    page.goto(live_server.url("/operator"))
    page.wait_for_selector("#live-status[data-state=live]")
    page.wait_for_selector(f"#bookings-body tr[data-booking={b['id']}]")
    assert page.locator("#live-alerts .risk").count() == 0

    routes[-1].send(json.dumps({
        "type": "promise_at_risk", "booking_id": b["id"], "vehicle_id": b["vehicle_id"] or "minibus_1",
        "expected": f"{b['pickup_window_end'][:11]}15:40:00+09:00", "promised_latest": b["pickup_window_end"],
        "late_s": 600, "message_ja": "お約束の時刻に遅れる見込みです。", "message_en": "We expect to be late.",
    }))
    risk = page.locator(f"#live-alerts .risk[data-booking={b['id']}]")
    risk.wait_for(timeout=2000)
    assert page.locator("#live-alerts").get_attribute("role") == "alert"
    assert "遅れの恐れ" in risk.inner_text() and "双葉 花子" in risk.inner_text()
    assert "promised" in risk.locator(".risk-other[lang=en]").inner_text()  # English beside the Japanese
    page.wait_for_selector(f"#bookings-body tr[data-booking={b['id']}] .risk-badge")
    a11y(page)
    page.screenshot(path="/tmp/operator_live.png", full_page=True)

    risk.get_by_role("button").click()
    page.wait_for_selector("#live-alerts .risk", state="detached")

    # The link drops: the console says so, polls meanwhile, and comes back by itself.
    routes[-1].close()
    page.wait_for_selector("#live-status[data-state=reconnecting]", timeout=3000)
    assert "再接続中" in page.locator("#live-status").inner_text()
    page.wait_for_selector("#live-status[data-state=live]", timeout=6000)
    assert len(routes) >= 2
    assert page.js_errors == []


def test_english_toggle_switches_texts(new_page: Any, live_server: LiveServer) -> None:
    page = new_page(*PHONE)
    with_token(page, "rider", live_server.tokens["rider"])
    page.goto(live_server.url("/#/new"))
    page.wait_for_selector("#pick-origin")
    assert page.locator("header h1").inner_text() == "大熊町 のりあいミニバス"
    page.click("#lang-toggle")
    assert page.locator("header h1").inner_text() == "Okuma shared minibus"
    assert page.locator("#search").inner_text() == "Find a ride"
    assert page.evaluate("document.documentElement.lang") == "en"
    page.screenshot(path="/tmp/rider_en.png", full_page=True)
    page.reload()  # the choice is remembered
    page.wait_for_selector("#pick-origin")
    assert page.locator("#tab-list").inner_text() == "My bookings"
    page.click("#lang-toggle")
    assert page.locator("#search").inner_text() == "空きを調べる"


def test_pwa_manifest_service_worker_and_store_page(new_page: Any, live_server: LiveServer) -> None:
    page = new_page(*PHONE)
    manifest = page.request.get(live_server.url("/static/manifest.json")).json()
    assert manifest["start_url"] == "/" and manifest["lang"] == "ja"
    for icon in manifest["icons"]:
        assert page.request.get(live_server.url(icon["src"])).ok, icon
    sw = page.request.get(live_server.url("/sw.js"))
    assert sw.ok and "caches" in sw.text()
    page.goto(live_server.url("/store"))
    assert page.locator("h1").inner_text() == "お店の画面"
    page.locator("#store-token").wait_for()  # signed out: the store token is asked for
    a11y(page)
