"""The TOMP interface driven as an outside MaaS app would: HTTP only, its own token and maas-id."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.conftest import Served
from transit.accounts import create_account
from transit.operations import ReportArrival, ReportBoarded, ReportNoShow

HALL = "okuma_town_hall"
WEST = "ono_station_west_plaza"


async def _maas(served: Served, name: str = "maas app") -> dict[str, str]:
    async with served.runtime.services.uow() as uow:  # type: ignore[attr-defined]
        _, token = await create_account(uow, role="maas", name=name)
        await uow.commit()
    return {"Authorization": f"Bearer {token}", "maas-id": f"{name.replace(' ', '-')}", "Api": "TOMP",
            "Api-Version": "1.6"}


def _plan(start: datetime | None = None, travelers: int = 1) -> dict:
    body: dict = {"from": {"stopReference": [{"referenceType": "GTFS_STOP_ID", "stopReference": HALL}]},
                  "to": {"stopReference": [{"referenceType": "GTFS_STOP_ID", "stopReference": WEST}]},
                  "nrOfTravelers": travelers, "customer": {"firstName": "はなこ"}}
    if start is not None:
        body["startTime"] = start.isoformat()
    return body


async def _offer(served: Served, h: dict, **kw: object) -> dict:
    r = await served.client.post("/tomp/planning/offers", json=_plan(**kw), headers=h)  # type: ignore[arg-type]
    assert r.status_code == 201, r.text
    [option] = r.json()["options"]
    return option


async def _event(served: Served, h: dict, bid: str, op: str):  # type: ignore[no-untyped-def]
    return await served.client.post(f"/tomp/bookings/{bid}/events", json={"operation": op}, headers=h)


async def test_inquiry_offer_pending_commit(served: Served) -> None:
    """Inquiry (no id) -> offer -> PENDING -> COMMIT: CONFIRMED with the offered promise, booked once."""
    c, h = served.client, await _maas(served)
    r = await c.post("/tomp/planning/inquiries", json=_plan(), headers=h)
    assert r.status_code == 201, r.text
    [inq] = r.json()["options"]
    assert inq["id"] == "" and inq["state"] == "NEW" and inq["legs"][0]["assetType"]["assetClass"] == "SHUTTLE"

    option = await _offer(served, h)
    assert option["id"] and option["state"] == "PENDING" and option["legs"][0]["id"] == option["id"]
    assert option["from"]["stopReference"][0]["stopReference"] == HALL
    assert option["pricing"]["parts"][0] == {"amount": 0.0, "currencyCode": "JPY", "type": "FIXED"}
    r = await c.post("/tomp/bookings", json={"id": option["id"]}, headers=h)
    assert r.status_code == 201, r.text
    pending = r.json()
    assert pending["state"] == "PENDING" and r.headers["Expires"].endswith("GMT")
    assert pending["validUntil"] == option["validUntil"]
    assert (await c.get(f"/tomp/bookings/{option['id']}", headers=h)).json()["state"] == "PENDING"

    r = await _event(served, h, option["id"], "COMMIT")
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["state"] == "CONFIRMED" and done["legs"][0]["state"] == "NOT_STARTED"
    assert done["extraData"] == option["extraData"]  # the promise offered is the promise kept
    again = await _event(served, h, option["id"], "COMMIT")
    assert again.status_code == 200 and again.json()["state"] == "CONFIRMED"

    # The town sees one booking from the maas channel with the same promise, like any other.
    ops = [b for b in (await c.get("/api/v1/bookings", headers=served.auth("operator"))).json()]
    assert len(ops) == 1 and ops[0]["channel"] == "maas" and ops[0]["passenger_name"] == "はなこ"
    assert ops[0]["pickup_window_start"] == done["extraData"]["pickupWindowStart"]
    assert ops[0]["latest_dropoff"] == done["extraData"]["latestArrival"]


async def test_same_promise_as_the_app(served: Served) -> None:
    """The same ride asked through the app and through TOMP gets the same window and latest arrival."""
    start = served.clock.now() + timedelta(hours=1)
    app = (await served.client.post("/api/v1/offers", json={
        "origin": {"stop_id": HALL}, "destination": {"stop_id": WEST}, "time_mode": "leave_at",
        "time": start.isoformat()}, headers=served.auth("rider"))).json()
    maas = (await _offer(served, await _maas(served), start=start))["extraData"]
    assert (maas["pickupWindowStart"], maas["pickupWindowEnd"], maas["latestArrival"]) == (
        app["pickup_window_start"], app["pickup_window_end"], app["latest_dropoff"])


async def test_cancel_pending_releases_and_cancel_confirmed_cancels(served: Served) -> None:
    """A released offer cannot be committed; a committed booking is cancelled by the one cancel handler."""
    c, h = served.client, await _maas(served)
    first = await _offer(served, h)
    await c.post("/tomp/bookings", json={"id": first["id"]}, headers=h)
    r = await _event(served, h, first["id"], "CANCEL")
    assert r.status_code == 200 and r.json()["state"] == "RELEASED"
    r = await _event(served, h, first["id"], "COMMIT")
    assert r.status_code == 409 and r.json()["message_ja"] and r.json()["message_en"]
    assert (await c.post("/tomp/bookings", json={"id": first["id"]}, headers=h)).status_code == 409

    second = await _offer(served, h)
    await c.post("/tomp/bookings", json={"id": second["id"]}, headers=h)
    assert (await _event(served, h, second["id"], "COMMIT")).json()["state"] == "CONFIRMED"
    r = await c.post(f"/tomp/legs/{second['id']}/events", json={"event": "CANCEL"}, headers=h)
    assert r.status_code == 200 and r.json()["state"] == "CANCELLED"
    assert (await c.get(f"/tomp/bookings/{second['id']}", headers=h)).json()["state"] == "CANCELLED"
    listed = (await c.get("/api/v1/bookings", headers=served.auth("operator"))).json()
    assert [(b["status"], b["cancel_reason"]) for b in listed] == [("cancelled", "maas")]


async def test_an_expired_offer_cannot_be_booked(served: Served) -> None:
    """After offer_ttl_s the option is EXPIRED: booking it answers 410."""
    c, h = served.client, await _maas(served)
    option = await _offer(served, h)
    served.clock.advance(served.runtime.reference.rules.offer_ttl_s + 1)  # type: ignore[attr-defined]
    assert (await c.get(f"/tomp/bookings/{option['id']}", headers=h)).json()["state"] == "EXPIRED"
    r = await c.post("/tomp/bookings", json={"id": option["id"]}, headers=h)
    assert r.status_code == 410 and r.json()["error"] == "OfferExpired"


async def test_leg_follows_the_ride_with_eta_and_progress(served: Served) -> None:
    """ETA notification before pickup; boarding makes the leg IN_USE and the booking STARTED."""
    c, h = served.client, await _maas(served)
    option = await _offer(served, h, travelers=2)
    await c.post("/tomp/bookings", json={"id": option["id"]}, headers=h)
    await _event(served, h, option["id"], "COMMIT")
    r = await c.get(f"/tomp/bookings/{option['id']}/notifications", headers={**h, "Accept-Language": "en"})
    assert r.status_code == 200, r.text
    [n] = r.json()
    assert n["notificationType"] == "ETA" and n["message"] == n["messageEn"] and "Pickup" in n["message"]
    assert n["type"] == "ETA" and n["legId"] == option["id"] and n["comment"] == n["message"] and n["minutes"] >= 0
    window = (option["extraData"]["pickupWindowStart"], option["extraData"]["pickupWindowEnd"])
    assert window[0] <= n["eta"] <= window[1]
    p = (await c.get(f"/tomp/legs/{option['id']}/progress", headers=h)).json()
    assert p["pickupEta"] == n["eta"] and p["coordinates"] and p["arrivalEta"] > p["pickupEta"]

    booking = (await c.get("/api/v1/bookings", headers=served.auth("operator"))).json()[0]
    ops = served.runtime.operations  # type: ignore[attr-defined]
    await ops.report(ReportArrival(booking["vehicle_id"], "t-a", None, HALL, (booking["id"],)))
    assert (await c.get(f"/tomp/legs/{option['id']}", headers=h)).json()["state"] == "PREPARING"
    await ops.report(ReportBoarded(booking["vehicle_id"], "t-b", None, booking["id"], 2))
    assert (await c.get(f"/tomp/legs/{option['id']}", headers=h)).json()["state"] == "IN_USE"
    assert (await c.get(f"/tomp/bookings/{option['id']}", headers=h)).json()["state"] == "STARTED"
    [n] = (await c.get(f"/tomp/bookings/{option['id']}/notifications", headers=h)).json()
    assert n["notificationType"] == "ETA" and n["message"] == n["messageJa"] and "到着" in n["message"]
    r = await c.post(f"/tomp/legs/{option['id']}/events", json={"event": "CANCEL"}, headers=h)
    assert r.status_code == 409  # on board: cannot be cancelled
    r = await c.post(f"/tomp/legs/{option['id']}/events", json={"event": "FINISH"}, headers=h)
    assert r.status_code == 400 and "driver" in r.json()["message_en"]


async def test_no_show_is_notified(served: Served) -> None:
    """The driver's no-show (after the wait) reaches the MaaS app as USER_NO_SHOW; the booking ends."""
    c, h = served.client, await _maas(served)
    option = await _offer(served, h)
    await c.post("/tomp/bookings", json={"id": option["id"]}, headers=h)
    await _event(served, h, option["id"], "COMMIT")
    booking = (await c.get("/api/v1/bookings", headers=served.auth("operator"))).json()[0]
    ops = served.runtime.operations  # type: ignore[attr-defined]
    await ops.report(ReportArrival(booking["vehicle_id"], "n-a", None, HALL, (booking["id"],)))
    served.clock.advance(served.runtime.reference.rules.no_show_wait_s + 1)  # type: ignore[attr-defined]
    assert (await ops.report(ReportNoShow(booking["vehicle_id"], "n-n", None, booking["id"]))).result == "applied"
    [n] = (await c.get(f"/tomp/bookings/{option['id']}/notifications", headers=h)).json()
    assert n["notificationType"] == "USER_NO_SHOW"
    assert (await c.get(f"/tomp/legs/{option['id']}", headers=h)).json()["state"] == "CANCELLED"


@pytest.mark.parametrize("who", ["rider", "operator"])
async def test_only_the_maas_role_may_call(served: Served, who: str) -> None:
    """Other roles get 403 on the TOMP routes."""
    r = await served.client.post("/tomp/planning/offers", json=_plan(),
                                 headers={**served.auth(who), "maas-id": "x"})
    assert r.status_code == 403


async def test_a_maas_app_sees_only_its_own_bookings(served: Served) -> None:
    """Another MaaS app's booking is 404, and the maas-id header is required (400, bilingual)."""
    a, b = await _maas(served, "app a"), await _maas(served, "app b")
    option = await _offer(served, a)
    assert (await served.client.get(f"/tomp/bookings/{option['id']}", headers=b)).status_code == 404
    assert (await _event(served, b, option["id"], "COMMIT")).status_code == 404
    no_id = {k: v for k, v in a.items() if k != "maas-id"}
    r = await served.client.post("/tomp/planning/offers", json=_plan(), headers=no_id)
    assert r.status_code == 400 and r.json()["message_ja"] and "maas-id" in r.json()["message_en"]


async def test_tomp_has_its_own_openapi_section(served: Served) -> None:
    """Every /tomp route is under the TOMP tag, and nothing else is."""
    spec = (await served.client.get("/openapi.json")).json()
    tagged = {p for p, ops in spec["paths"].items() for op in ops.values() if "TOMP (MaaS) / MaaS連携" in op["tags"]}
    assert tagged == {p for p in spec["paths"] if p.startswith("/tomp/")}
    assert {"/tomp/planning/offers", "/tomp/bookings/{booking_id}/events", "/tomp/legs/{leg_id}/progress"} <= tagged


async def test_stations_are_the_gtfs_stops(served: Served) -> None:
    """/tomp/operator/stations lists every stop under its GTFS stop_id, named per Accept-Language."""
    h = await _maas(served)
    ref = served.runtime.reference  # type: ignore[attr-defined]
    ja = (await served.client.get("/tomp/operator/stations", headers=h)).json()
    en = (await served.client.get("/tomp/operator/stations", headers={**h, "Accept-Language": "en"})).json()
    assert [s["stationId"] for s in ja] == [s.stop_id for s in ref.stops]
    assert [s["name"] for s in ja] == [s.name_ja for s in ref.stops]
    assert [s["name"] for s in en] == [s.name_en for s in ref.stops]
    assert all(s["extraInfo"]["nameKana"] for s in ja)
    # a station id can be used as a stopReference straight away
    hall = next(s for s in ja if s["stationId"] == HALL)
    assert (hall["coordinates"]["lat"], hall["coordinates"]["lng"]) == (ref.stop(HALL).lat, ref.stop(HALL).lon)
