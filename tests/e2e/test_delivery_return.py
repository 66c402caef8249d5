"""In real Chromium: groceries on the minibus that the resident cannot receive go back where the
resident chooses on the delivery status screen (#/parcel/<id>): a stop (told, confirmed, then the
result), then changed back to the store; by the keyboard; in English too. The choice reaches the
server (POST /api/v1/deliveries/{id}/return, its return_stop_id). axe-core finds 0 violations in
every state; screenshots in tests/e2e/artifacts/.
"""

# ruff: noqa: F811 - the rider app's module fixtures are imported, then requested by name
from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import T0
from tests.e2e.a11y import axe, shot
from tests.e2e.test_pages import a11y, tab_to, with_token
from tests.e2e.test_rider_live import HALL, ONO_WEST, Tablet, page_for, server  # noqa: F401 - fixtures used by name

pytestmark = pytest.mark.browser


def _order_on_the_minibus(live: Any, drivers: dict[str, str]) -> tuple[str, Tablet]:
    """A resident's grocery order, packed by the store and picked up by the minibus."""
    start = T0.replace(hour=10)
    with httpx.Client(base_url=live.base_url, headers={"Authorization": f"Bearer {live.tokens['rider']}"}, timeout=10) as rider:
        r = rider.post("/api/v1/offers", json={
            "kind": "delivery", "destination": {"stop_id": ONO_WEST}, "passenger_name": "大熊 花子",
            "delivery": {"store_id": "okumart", "order_number": "R-301",
                         "window_start": start.isoformat(), "window_end": start.replace(hour=11).isoformat()},
        })
        assert r.status_code == 201, r.text
        r = rider.post("/api/v1/bookings", json={"offer_id": r.json()["offer_id"]}, headers={"Idempotency-Key": "e2e-ret-1"})
        assert r.status_code == 201, r.text
        b = r.json()
    with httpx.Client(base_url=live.base_url, headers={"Authorization": f"Bearer {live.tokens['store']}"}, timeout=10) as store:
        r = store.post(f"/api/v1/store/orders/{b['id']}/ready", json={"parcels": 1, "temperature": "chilled"})
        assert r.status_code == 200, r.text
    tablet = Tablet(live.base_url, drivers[b["vehicle_id"]])
    assert tablet.event(type="arrived", stop_id="okumart", booking_ids=[b["id"]])["result"] == "applied"
    assert tablet.event(type="parcel_picked_up", booking_id=b["id"])["result"] == "applied"
    return b["id"], tablet


def _return_stop(live: Any, booking_id: str) -> Any:
    with httpx.Client(base_url=live.base_url, headers={"Authorization": f"Bearer {live.tokens['rider']}"}, timeout=10) as rider:
        r = rider.get(f"/api/v1/deliveries/{booking_id}")
        assert r.status_code == 200, r.text
        return r.json()


def test_resident_sends_groceries_back_to_a_stop_then_to_the_store(page_for: Any, server: Any) -> None:
    live, drivers = server
    booking_id, tablet = _order_on_the_minibus(live, drivers)
    try:
        page = page_for()
        with_token(page, "rider", live.tokens["rider"])
        page.goto(live.url(f"/#/parcel/{booking_id}"))
        page.wait_for_selector("#parcel-status:has-text('ミニバスでお届け中')")
        opener = page.locator("#return-open")
        assert opener.inner_text() == "受け取れないとき(戻し先を選ぶ)"
        assert page.locator("#return-place").count() == 0  # nothing chosen yet
        axe(page, "parcel picked up, return offered")
        a11y(page, min_target=44)

        tab_to(page, "#return-open")  # keyboard only, from here to the answer
        page.keyboard.press("Enter")
        page.wait_for_selector("#return-form")
        assert page.evaluate("document.activeElement.id") == "return-title"
        assert page.locator("#return-to-store").is_checked()  # the store is the default
        assert "おおくまーと" in page.locator("label[for=return-to-store]").inner_text()
        assert page.locator("#return-stop").is_disabled()
        axe(page, "return chooser")
        a11y(page, min_target=44)
        shot(page, "rider_delivery_return_choose")
        tab_to(page, "#return-to-store")  # a radio group: Tab reaches the chosen one, arrows change it
        page.keyboard.press("ArrowDown")
        assert page.locator("#return-to-stop").is_checked() and page.locator("#return-stop").is_enabled()
        assert page.locator("#return-stop option[value=okumart]").count() == 0  # the store's own stop is "the store"
        tab_to(page, "#return-next")
        page.keyboard.press("Enter")  # no stop chosen: told, nothing sent
        assert page.locator("#return-error").inner_text() == "停留所を選んでください。"
        assert _return_stop(live, booking_id)["return_stop_id"] is None
        page.select_option("#return-stop", HALL)
        tab_to(page, "#return-next")
        page.keyboard.press("Enter")
        page.wait_for_selector("#return-q")
        assert page.locator("#return-q").inner_text() == "荷物を「大熊町役場」へ戻します。よろしいですか?"
        assert page.evaluate("document.activeElement.id") == "return-yes"
        axe(page, "return confirm")
        assert _return_stop(live, booking_id)["return_stop_id"] is None  # not before the confirmation
        page.keyboard.press("Enter")

        page.wait_for_selector("#parcel-status:has-text('戻しています')")
        assert page.locator("#parcel-status-live").inner_text() == "荷物は「大熊町役場」へ戻ります。お店にも伝わります。"
        assert page.locator("#return-place").inner_text() == "大熊町役場"
        d = _return_stop(live, booking_id)
        assert d["status"] == "returning" and d["return_stop_id"] == HALL
        assert page.locator("#return-open").inner_text() == "戻し先を変える"
        axe(page, "returning to a stop")
        shot(page, "rider_delivery_return_stop")

        # Changed again, in English: back to the store
        page.click("#lang-toggle")
        page.wait_for_selector("#return-open:has-text('Change where it goes back')")
        assert page.locator("#parcel-status").inner_text() == "Going back"
        assert page.locator("#return-place").inner_text() == "Okuma Town Hall"
        page.click("#return-open")
        page.wait_for_selector("#return-form")
        assert "Back to the store (Okumart)" in page.locator("label[for=return-to-store]").inner_text()
        axe(page, "return chooser, English")
        page.click("#return-next")
        assert page.locator("#return-q").inner_text() == "The groceries go back to “Okumart”. Is that right?"
        page.click("#return-yes")
        page.wait_for_selector("#return-place:has-text('Okumart')")
        assert "The groceries go back to “Okumart”." in page.locator("#parcel-status-live").inner_text()
        assert _return_stop(live, booking_id)["return_stop_id"] == "okumart"
        axe(page, "returning to the store, English")
        shot(page, "rider_delivery_return_store_en")
        assert page.js_errors == []
    finally:
        tablet.close()
