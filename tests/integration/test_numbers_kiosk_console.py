"""Booking numbers, rider cards at the kiosk, the console's search and door-to-door details,
through the HTTP API on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta

import pytest

from tests.conftest import TOKYO, Served, start_served
from transit import numbers
from transit.accounts import create_account

HALL = "okuma_town_hall"
WEST = "ono_station_west_plaza"
NUMBER = re.compile(r"^[0-9ABCDEFGHJKMNPQRSTVWXYZ]{6}$")
HOME = {"lat": 37.3850, "lon": 140.9645, "address": "大熊町大川原字南平 1-2"}


def ride(origin: object = HALL, dest: object = WEST, **kw: object) -> dict:
    place = lambda p: p if isinstance(p, dict) else {"stop_id": p}  # noqa: E731
    return {"origin": place(origin), "destination": place(dest), **kw}


async def book(served: Served, role: str, key: str, **kw: object) -> dict:
    c, h = served.client, served.auth(role)
    r = await c.post("/api/v1/offers", json=ride(**kw) if "origin" not in kw else kw, headers=h)
    assert r.status_code == 201, r.text
    b = await c.post("/api/v1/bookings", json={"offer_id": r.json()["offer_id"]}, headers={**h, "Idempotency-Key": key})
    assert b.status_code == 201, b.text
    return dict(b.json())


async def kiosk_stop(served: Served) -> str:
    return str((await served.client.get("/api/v1/me", headers=served.auth("kiosk"))).json()["stop_id"])


async def add_rider(served: Served, name: str, card: str) -> str:
    async with served.runtime.services.uow() as uow:  # type: ignore[attr-defined]
        _, token = await create_account(uow, role="rider", name=name, rider_card=card)
        await uow.commit()
    return token


def test_number_format_and_reading() -> None:
    """Numbers are 6 Crockford characters; typing them leniently (case, O, I, L, hyphens) finds the same."""
    drawn = {numbers.new_number() for _ in range(2000)}
    assert all(NUMBER.match(n) for n in drawn) and len(drawn) > 1990
    assert not set("ILOU") & set("".join(drawn))
    assert numbers.normalise("7k3-m9q") == "7K3M9Q"
    assert numbers.normalise(" ｏ１ｌ ２３４ ") == "011234"  # full-width, as a Japanese keyboard types it
    assert numbers.normalise("ABCDEU") is None and numbers.normalise("ABC") is None


async def test_every_booking_has_a_unique_number_the_same_on_every_channel(served: Served) -> None:
    """Confirm, read, list and cancel all answer the same number; kiosk, app and desk bookings get one."""
    stop = await kiosk_stop(served)
    dest = WEST if stop != WEST else HALL
    app = await book(served, "rider", "n1")
    kiosk = await book(served, "kiosk", "n2", origin={"stop_id": stop}, destination={"stop_id": dest})
    desk = await book(served, "operator", "n3", passenger_name="大熊 一郎")
    assert all(NUMBER.match(b["number"]) for b in (app, kiosk, desk))
    assert len({app["number"], kiosk["number"], desk["number"]}) == 3
    c = served.client
    assert (await c.get(f"/api/v1/bookings/{app['id']}", headers=served.auth("rider"))).json()["number"] == app["number"]
    listed = {b["id"]: b["number"] for b in (await c.get("/api/v1/bookings", headers=served.auth("operator"))).json()}
    assert listed[app["id"]] == app["number"] and listed[kiosk["id"]] == kiosk["number"]
    r = await c.post(f"/api/v1/bookings/{kiosk['id']}/cancel", json={"reason": "rider"}, headers=served.auth("kiosk"))
    assert r.status_code == 200 and r.json()["number"] == kiosk["number"]


async def test_a_number_clash_draws_again(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the drawn number is taken, the repository draws again: no two bookings share one."""
    first = await book(served, "rider", "c1")
    draws = iter([first["number"], first["number"], "ZZZZZ9"])
    monkeypatch.setattr(numbers, "new_number", lambda: next(draws))
    second = await book(served, "rider", "c2", time_mode="leave_at",
                        time=(served.clock.now() + timedelta(hours=1)).isoformat())
    assert second["number"] == "ZZZZZ9"


async def test_kiosk_looks_up_and_cancels_by_number(served: Served) -> None:
    """A kiosk finds its bookings and those leaving its stop by number (no name shown for others),
    cancels them; other stops' bookings and bad numbers are refused clearly."""
    c, h = served.client, served.auth("kiosk")
    stop = await kiosk_stop(served)
    dest = WEST if stop != WEST else HALL
    mine = await book(served, "kiosk", "k1", origin={"stop_id": stop}, destination={"stop_id": dest})
    phoned = await book(served, "operator", "k2", origin={"stop_id": stop}, destination={"stop_id": dest},
                        passenger_name="双葉 花子")
    elsewhere = await book(served, "operator", "k3", origin={"stop_id": "okumart"}, destination={"stop_id": dest},
                           passenger_name="双葉 次郎")
    r = await c.get(f"/api/v1/bookings/by-number/{mine['number'].lower()}", headers=h)
    assert r.status_code == 200 and r.json()["id"] == mine["id"]
    r = await c.get(f"/api/v1/bookings/by-number/{phoned['number']}", headers=h)
    assert r.status_code == 200 and r.json()["id"] == phoned["id"] and r.json()["passenger_name"] == ""
    r = await c.get(f"/api/v1/bookings/by-number/{elsewhere['number']}", headers=h)
    assert r.status_code == 404 and r.json()["message_ja"] and r.json()["message_en"]
    r = await c.get("/api/v1/bookings/by-number/12", headers=h)
    assert r.status_code == 400 and r.json()["error"] == "InvalidInput"
    r = await c.post(f"/api/v1/bookings/{phoned['id']}/cancel", json={"reason": "kiosk"}, headers=h)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    # Riders find only their own bookings by number.
    assert (await c.get(f"/api/v1/bookings/by-number/{mine['number']}", headers=served.auth("rider"))).status_code == 404


async def test_kiosk_card_attaches_the_booking_to_the_registered_rider(served: Served) -> None:
    """With a rider card the booking is the card holder's, under their name (never the kiosk's);
    without one the name is blank or as given; an unknown card is refused before booking."""
    token = await add_rider(served, "大熊 ハナ", "okm-1234")
    c, h = served.client, served.auth("kiosk")
    stop = await kiosk_stop(served)
    dest = WEST if stop != WEST else HALL
    r = await c.post("/api/v1/offers", json=ride(stop, dest, rider_card="OKM-1234"), headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["passenger_name"] == "大熊 ハナ"
    b = (await c.post("/api/v1/bookings", json={"offer_id": r.json()["offer_id"]},
                      headers={**h, "Idempotency-Key": "card-1"})).json()
    assert b["passenger_name"] == "大熊 ハナ" and b["channel"] == "kiosk"
    theirs = (await c.get("/api/v1/bookings", headers={"Authorization": f"Bearer {token}"})).json()
    assert [x["id"] for x in theirs] == [b["id"]]

    r = await c.post("/api/v1/offers", json=ride(stop, dest, rider_card="NOPE-9"), headers=h)
    assert r.status_code == 404 and r.json()["error"] == "UnknownRiderCard" and r.json()["field"] == "rider_card"

    anon = await book(served, "kiosk", "card-2", origin={"stop_id": stop}, destination={"stop_id": dest},
                      time_mode="leave_at", time=(served.clock.now() + timedelta(hours=1)).isoformat())
    assert anon["passenger_name"] == ""  # not 「test kiosk」
    named = await book(served, "kiosk", "card-3", origin={"stop_id": stop}, destination={"stop_id": dest},
                       passenger_name="おおくま", time_mode="leave_at",
                       time=(served.clock.now() + timedelta(hours=2)).isoformat())
    assert named["passenger_name"] == "おおくま"


async def test_console_search_filters_days_and_pages(served: Served) -> None:
    """Operators filter by number, name, phone (any spelling), status, vehicle and day, page by
    page with the total in X-Total-Count; a bad status is a clear 400; riders cannot search others."""
    c, h = served.client, served.auth("operator")
    today = served.clock.now().astimezone(TOKYO).date()
    tomorrow = today + timedelta(days=1)
    made = []
    for i, name in enumerate(["大熊 一郎", "大熊 二郎", "双葉 三郎"]):
        made.append(await book(served, "operator", f"s{i}", passenger_name=name, contact_phone=f"0240-11-222{i}",
                               time_mode="leave_at", time=f"{today}T1{i}:00:00+09:00"))
    later = await book(served, "operator", "s9", passenger_name="大熊 四郎", time_mode="leave_at",
                       time=f"{tomorrow}T10:00:00+09:00")
    await c.post(f"/api/v1/bookings/{made[1]['id']}/cancel", json={"reason": "caller"}, headers=h)

    async def ids(**params: object) -> tuple[list[str], int]:
        r = await c.get("/api/v1/bookings", params=params, headers=h)
        assert r.status_code == 200, r.text
        return [b["id"] for b in r.json()], int(r.headers["X-Total-Count"])

    assert await ids(day=str(today)) == ([b["id"] for b in made], 3)
    assert await ids(day=str(tomorrow)) == ([later["id"]], 1)
    assert await ids(q=made[2]["number"].lower()) == ([made[2]["id"]], 1)
    assert (await ids(q="大熊", day=str(today)))[0] == [made[0]["id"], made[1]["id"]]
    assert await ids(q="0240112222") == ([made[2]["id"]], 1)  # typed without hyphens
    assert await ids(q="11-2221") == ([made[1]["id"]], 1)
    assert await ids(status="cancelled") == ([made[1]["id"]], 1)
    vehicle = made[0]["vehicle_id"]
    on_it, _ = await ids(day=str(today), vehicle_id=vehicle)
    assert made[0]["id"] in on_it and all(b["vehicle_id"] == vehicle for b in (await c.get(
        "/api/v1/bookings", params={"vehicle_id": vehicle}, headers=h)).json())
    page1, total = await ids(day=str(today), limit=2, offset=0)
    page2, _ = await ids(day=str(today), limit=2, offset=2)
    assert total == 3 and page1 + page2 == [b["id"] for b in made]
    assert await ids(q="100%_") == ([], 0)  # LIKE wildcards match only themselves
    r = await c.get("/api/v1/bookings", params={"status": "lost"}, headers=h)
    assert r.status_code == 400 and r.json()["field"] == "status"
    r = await c.get("/api/v1/bookings", params={"limit": 0}, headers=h)
    assert r.status_code == 422
    for far in ("0001-01-01", "9999-12-31"):  # found by the fuzz test: a 500 before
        r = await c.get("/api/v1/bookings", params={"day": far}, headers=h)
        assert r.status_code == 400 and r.json()["field"] == "day", r.text
    mine = (await c.get("/api/v1/bookings", params={"q": "大熊"}, headers=served.auth("rider"))).json()
    assert mine == []  # a rider's list holds only their own bookings, whatever the filters
    assert (await c.get("/api/v1/bookings", headers=served.auth("kiosk"))).status_code == 403


async def test_door_to_door_address_note_and_phone_reach_the_driver(served: Served) -> None:
    """The desk books from a pin with an address, a note and a phone; the booking keeps the address
    and the driver's plan shows address, note and the number to call (stop visits carry no phone)."""
    b = await book(served, "operator", "d1", origin=HOME, destination={"stop_id": HALL},
                   passenger_name="大熊 ウメ", contact_phone="0240-33-4444", driver_note="玄関は裏手です")
    assert b["origin"] == {"stop_id": None, **HOME} and b["driver_note"] == "玄関は裏手です"
    c = served.client
    async with served.runtime.services.uow() as uow:  # type: ignore[attr-defined]
        await create_account(uow, role="driver", name="d", vehicle_id=b["vehicle_id"], token="okm_driver_d2d")
        await uow.commit()
    plan = (await c.get(f"/api/v1/vehicles/{b['vehicle_id']}/plan",
                        headers={"Authorization": "Bearer okm_driver_d2d"})).json()
    visits = {v["kind"]: v for v in plan["visits"] if v["booking_id"] == b["id"]}
    assert visits["pickup"]["address"] == HOME["address"] and visits["pickup"]["note"] == "玄関は裏手です"
    assert visits["pickup"]["contact_phone"] == "0240-33-4444" and visits["pickup"]["booking_number"] == b["number"]
    assert visits["dropoff"]["stop_id"] == HALL and visits["dropoff"]["contact_phone"] is None
    assert visits["dropoff"]["address"] is None
    r = await c.post("/api/v1/offers", json={**ride(HOME, HALL), "origin": {**HOME, "address": "x" * 201}},
                     headers=served.auth("operator"))
    assert r.status_code == 422


async def test_service_rules_give_the_office_phone(served: Served, clock, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """/api/v1/service tells the pages the office number from the rules (null when not set)."""
    r = await served.client.get("/api/v1/service")
    assert r.status_code == 200 and r.json()["office_phone"] == served.runtime.reference.rules.office_phone  # type: ignore[attr-defined]
    ref = served.runtime.reference  # type: ignore[attr-defined]
    other = dataclasses.replace(ref, rules=dataclasses.replace(ref.rules, office_phone="0240-00-1234"))
    s2, ctx = await start_served(f"sqlite+aiosqlite:///{tmp_path}/phone.db", clock, reference=other)
    try:
        body = (await s2.client.get("/api/v1/service")).json()
        assert body["office_phone"] == "0240-00-1234" and body["service_start"] == "07:00"
    finally:
        await s2.client.aclose()
        await ctx.__aexit__(None, None, None)


async def test_migration_numbers_existing_bookings(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Upgrading a database with bookings gives each one a distinct number (the column is NOT NULL)."""
    from sqlalchemy import text

    from transit.db import make_engine, migrate

    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/old.db")
    try:
        await migrate(engine, "0001")
        async with engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO accounts (id, role, name, token_hash, door_to_door, locale, created_at, disabled) "
                "VALUES ('a1', 'operator', 'desk', 'h', 0, 'ja', '2026-11-26 00:00:00', 0)"))
            for i in range(3):
                await conn.execute(text(
                    "INSERT INTO bookings (id, booked_by_id, channel, kind, passenger_name, party_size, wheelchairs,"
                    " parcels, origin_lat, origin_lon, destination_lat, destination_lon, status, pickup_earliest,"
                    " pickup_latest, dropoff_latest, max_ride_s, pickup_service_s, dropoff_service_s, created_at,"
                    f" updated_at) VALUES ('b{i}', 'a1', 'phone', 'ride', 'x', 1, 0, 0, 37.4, 141.0, 37.41, 141.0,"
                    " 'completed', '2026-11-26 00:00:00', '2026-11-26 00:10:00', '2026-11-26 00:30:00', 900, 30, 30,"
                    " '2026-11-26 00:00:00', '2026-11-26 00:00:00')"))
        await migrate(engine)
        async with engine.connect() as conn:
            got = [r[0] for r in (await conn.execute(text("SELECT number FROM bookings"))).all()]
        assert len(set(got)) == 3 and all(NUMBER.match(n) for n in got)
    finally:
        await engine.dispose()


async def test_kiosk_sees_the_minibuses_approaching_its_stop(served: Served) -> None:
    """A minibus whose plan calls at the kiosk's stop within the hour is listed by name; other stops are refused."""
    c, h = served.client, served.auth("kiosk")
    stop = await kiosk_stop(served)
    assert (await c.get(f"/api/v1/stops/{stop}/approaching", headers=h)).json() == []
    dest = WEST if stop != WEST else HALL
    b = await book(served, "operator", "a1", origin={"stop_id": stop}, destination={"stop_id": dest},
                   passenger_name="x", time_mode="leave_at",
                   time=(served.clock.now() + timedelta(minutes=20)).isoformat())
    got = (await c.get(f"/api/v1/stops/{stop}/approaching", headers=h)).json()
    assert [a["vehicle_id"] for a in got] == [b["vehicle_id"]] and got[0]["name_ja"]
    assert got[0]["planned_at"].endswith("+09:00")
    other = "okumart" if stop != "okumart" else HALL
    assert (await c.get(f"/api/v1/stops/{other}/approaching", headers=h)).status_code == 403
    assert (await c.get(f"/api/v1/stops/{stop}/approaching", headers=served.auth("rider"))).status_code == 403
