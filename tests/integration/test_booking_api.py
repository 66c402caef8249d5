"""Booking API v1 through an HTTP client, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from tests.conftest import Served

HALL = "okuma_town_hall"
WEST = "ono_station_west_plaza"


def ride(origin: str = HALL, dest: str = WEST, **kw: object) -> dict:
    return {"origin": {"stop_id": origin}, "destination": {"stop_id": dest}, **kw}


async def test_stops_are_listed_with_kana(served: Served) -> None:
    """Every stop comes with a Japanese name, a kana reading and an English name."""
    r = await served.client.get("/api/v1/stops")
    assert r.status_code == 200
    stops = r.json()
    assert len(stops) >= 25
    assert all(s["name_ja"] and s["name_kana"] and s["name_en"] for s in stops)


async def test_offer_confirm_read_cancel(served: Served) -> None:
    """A rider gets an offer, confirms it, reads it back, sees it listed and cancels it."""
    c, h = served.client, served.auth("rider")
    r = await c.post("/api/v1/offers", json=ride(), headers=h)
    assert r.status_code == 201, r.text
    offer = r.json()
    assert offer["pickup_window_start"] <= offer["planned_pickup"] <= offer["pickup_window_end"]
    assert offer["planned_dropoff"] <= offer["latest_dropoff"]
    assert offer["pickup_window_start"].endswith("+09:00")
    r = await c.post("/api/v1/bookings", json={"offer_id": offer["offer_id"]},
                     headers={**h, "Idempotency-Key": "k1"})
    assert r.status_code == 201, r.text
    booking = r.json()
    assert booking["status"] == "confirmed"
    assert booking["pickup_window_start"] == offer["pickup_window_start"]
    r = await c.get(f"/api/v1/bookings/{booking['id']}", headers=h)
    assert r.status_code == 200 and r.json()["id"] == booking["id"]
    r = await c.get("/api/v1/bookings", headers=h)
    assert [b["id"] for b in r.json()] == [booking["id"]]
    r = await c.post(f"/api/v1/bookings/{booking['id']}/cancel", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"


async def test_repeated_confirm_returns_the_same_booking(served: Served) -> None:
    """The same Idempotency-Key returns the same booking, never a second one."""
    c, h = served.client, served.auth("rider")
    offer = (await c.post("/api/v1/offers", json=ride(), headers=h)).json()
    hk = {**h, "Idempotency-Key": "same-key"}
    a = await c.post("/api/v1/bookings", json={"offer_id": offer["offer_id"]}, headers=hk)
    b = await c.post("/api/v1/bookings", json={"offer_id": offer["offer_id"]}, headers=hk)
    assert a.status_code == 201 and b.status_code == 201
    assert a.json()["id"] == b.json()["id"]
    listed = (await c.get("/api/v1/bookings", headers=h)).json()
    assert len(listed) == 1


async def test_a_rider_sees_only_their_own_bookings(served: Served) -> None:
    """Another rider gets 404 for my booking and an empty list."""
    c = served.client
    offer = (await c.post("/api/v1/offers", json=ride(), headers=served.auth("rider"))).json()
    b = (await c.post("/api/v1/bookings", json={"offer_id": offer["offer_id"]},
                      headers={**served.auth("rider"), "Idempotency-Key": "x"})).json()
    r = await c.get(f"/api/v1/bookings/{b['id']}", headers=served.auth("rider2"))
    assert r.status_code == 404
    assert (await c.get("/api/v1/bookings", headers=served.auth("rider2"))).json() == []
    r = await c.post(f"/api/v1/bookings/{b['id']}/cancel", headers=served.auth("rider2"))
    assert r.status_code == 404
    # the operator (phone desk) sees it
    r = await c.get(f"/api/v1/bookings/{b['id']}", headers=served.auth("operator"))
    assert r.status_code == 200


async def test_offers_expire(served: Served) -> None:
    """An offer confirmed after its time-to-live is refused with 410 and nothing is booked."""
    c, h = served.client, served.auth("rider")
    offer = (await c.post("/api/v1/offers", json=ride(), headers=h)).json()
    served.clock.advance(served.runtime.reference.rules.offer_ttl_s + 1)
    r = await c.post("/api/v1/bookings", json={"offer_id": offer["offer_id"]},
                     headers={**h, "Idempotency-Key": "late"})
    assert r.status_code == 410
    assert r.json()["error"] == "OfferExpired" and r.json()["message_ja"]
    assert (await c.get("/api/v1/bookings", headers=h)).json() == []


async def test_kiosk_books_only_from_its_stop(served: Served) -> None:
    """A kiosk books walk-ups from its own stop, and is refused for any other origin."""
    c, h = served.client, served.auth("kiosk")
    me = (await c.get("/api/v1/me", headers=h)).json()
    other = HALL if me["stop_id"] != HALL else WEST
    r = await c.post("/api/v1/offers", json=ride(other, "okumart"), headers=h)
    assert r.status_code == 403
    dest = WEST if me["stop_id"] != WEST else HALL
    r = await c.post("/api/v1/offers", json=ride(me["stop_id"], dest), headers=h)
    assert r.status_code == 201, r.text
    r = await c.post("/api/v1/bookings", json={"offer_id": r.json()["offer_id"]},
                     headers={**h, "Idempotency-Key": "kiosk-1"})
    assert r.status_code == 201 and r.json()["channel"] == "kiosk"


async def test_operator_books_for_a_named_caller(served: Served) -> None:
    """The phone desk books for a caller by name; the booking carries the caller's name."""
    c, h = served.client, served.auth("operator")
    r = await c.post("/api/v1/offers", json=ride(passenger_name="大熊 太郎", contact_phone="0240-00-0000"), headers=h)
    assert r.status_code == 201, r.text
    r = await c.post("/api/v1/bookings", json={"offer_id": r.json()["offer_id"]},
                     headers={**h, "Idempotency-Key": "phone-1"})
    assert r.status_code == 201
    assert r.json()["passenger_name"] == "大熊 太郎" and r.json()["channel"] == "phone"


async def test_roles_are_checked(served: Served) -> None:
    """Drivers and stores cannot book; no token means 401."""
    c = served.client
    assert (await c.post("/api/v1/offers", json=ride())).status_code == 401
    assert (await c.post("/api/v1/offers", json=ride(), headers={"Authorization": "Bearer nope"})).status_code == 401
    assert (await c.post("/api/v1/offers", json=ride(), headers=served.auth("driver"))).status_code == 403
    assert (await c.post("/api/v1/offers", json=ride(), headers=served.auth("store"))).status_code == 403


async def test_bad_input_gets_a_clear_4xx(served: Served) -> None:
    """Every bad input is a 4xx with a Japanese and an English message, never a 500."""
    c, h = served.client, served.auth("rider")
    now = served.clock.now()
    cases = [
        (ride("no_such_stop"), 400, "UnknownStop"),
        (ride(HALL, HALL), 400, "SameOriginDestination"),
        (ride(party_size=40), 400, "PartyTooLarge"),
        (ride(time_mode="leave_at", time=(now - timedelta(hours=2)).isoformat()), 400, "TimeInPast"),
        (ride(time_mode="leave_at", time=(now + timedelta(days=30)).isoformat()), 400, "TooFarAhead"),
        (ride(time_mode="leave_at", time=(now + timedelta(hours=15)).isoformat()), 400, "OutsideServiceHours"),
        (ride(time_mode="leave_at"), 400, "InvalidInput"),
        ({"origin": {"lat": 37.3337, "lon": 141.0224}, "destination": {"stop_id": HALL}}, 403, "Forbidden"),
        ({"origin": "town hall"}, 422, "InvalidInput"),
        (ride(time_mode="leave_at", time="2026-11-26T10:00:00"), 422, "InvalidInput"),
        (ride(party_size="two"), 422, "InvalidInput"),
    ]
    for payload, code, err in cases:
        r = await c.post("/api/v1/offers", json=payload, headers=h)
        assert r.status_code == code, (payload, r.text)
        body = r.json()
        assert body["error"] == err, (payload, body)
        assert body["message_ja"] and body["message_en"]
    r = await c.post("/api/v1/offers", content=b"{not json", headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["message_ja"]
    r = await c.post("/api/v1/bookings", json={"offer_id": "off_missing"}, headers={**h, "Idempotency-Key": "z"})
    assert r.status_code == 404
    r = await c.post("/api/v1/bookings", json={"offer_id": "off_missing"}, headers=h)
    assert r.status_code == 422 and "Idempotency-Key" in r.json()["message_en"]  # a required header


async def test_outside_the_area_is_refused(served: Served) -> None:
    """A door-to-door point outside the service area gets OutsideServiceArea (operator may use points)."""
    r = await served.client.post(
        "/api/v1/offers",
        json={"origin": {"lat": 37.3337, "lon": 141.0224}, "destination": {"stop_id": HALL}},
        headers=served.auth("operator"),
    )
    assert r.status_code == 400 and r.json()["error"] == "OutsideServiceArea"


async def test_no_vehicle_fits_reports_a_cause(served: Served) -> None:
    """Two wheelchairs in one booking exceed every vehicle's wheelchair spaces: 409 with a cause."""
    r = await served.client.post("/api/v1/offers", json=ride(party_size=2, wheelchairs=2),
                                 headers=served.auth("rider"))
    assert r.status_code == 409
    assert r.json()["cause"] == "no_vehicle_fits"
