"""The console's refreshes overlap (a search, a live event, the poll): an older answer, asked with
the filters of before, must never overwrite a newer search's result."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.e2e.test_kiosk_console import DESKTOP, own_server  # noqa: F401 - a fixture


def test_an_older_refresh_answering_late_does_not_overwrite_the_search(new_page: Any, own_server: Any) -> None:
    srv = own_server
    day = "2026-11-27"
    with httpx.Client(base_url=srv.url, headers=srv.auth("operator"), timeout=10) as api:
        made = []
        for i in range(3):
            r = api.post("/api/v1/offers", json={
                "origin": {"stop_id": "okumart"}, "destination": {"stop_id": "kuma_sun_terrace"},
                "time_mode": "leave_at", "time": f"{day}T{9 + i:02d}:00:00+09:00",
                "passenger_name": f"利用者 {i:02d}", "contact_phone": f"0240-56-{i:04d}"})
            assert r.status_code == 201, r.text
            made.append(api.post("/api/v1/bookings", json={"offer_id": r.json()["offer_id"]},
                                 headers={"Idempotency-Key": f"race-{i}"}).json())
    page = new_page(*DESKTOP)
    page.add_init_script(f"localStorage.setItem('okuma.token.operator', {srv.tokens['operator']!r})")
    page.goto(srv.url + "/operator")
    page.wait_for_selector("#search-form")
    page.select_option("#filter-day", day)
    page.click("#search")
    page.wait_for_selector("#page-info:has-text('3 件中 1〜3 件')")

    held: list[Any] = []

    def hold_unfiltered(route: Any) -> None:
        # the day's page without a search term: held back, answered after the search's own answer
        if f"day={day}" in route.request.url and "q=" not in route.request.url:
            held.append(route)
        else:
            route.continue_()

    page.route("**/api/v1/bookings?*", hold_unfiltered)
    page.click("#search")  # a refresh with the filters of now (no search term) ...
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert held, "the unfiltered refresh was not asked"
    page.fill("#filter-q", made[1]["number"])  # ... then the operator searches one booking
    page.keyboard.press("Enter")
    page.wait_for_selector("#page-info:has-text('1 件中 1〜1 件')")
    for route in held:  # the older answer arrives last
        route.continue_()
    page.wait_for_timeout(1500)
    assert page.locator("#page-info").inner_text().startswith("1 件中"), page.locator("#page-info").inner_text()
    assert page.locator("#bookings-body tr").count() == 1
    assert made[1]["number"] in page.locator("#bookings-body").inner_text()
    assert page.js_errors == []
