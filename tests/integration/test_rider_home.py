"""A door-to-door rider's home: set once on the profile (inside the service area only), read by the
rider and by the town desk, by nobody else; retention forgets it when the rider stops riding."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from tests.conftest import Served
from tests.integration.test_family_desk import _phone_rider
from transit import tables as t
from transit.retention import purge_personal_data

HOME = {"address": "大熊町大川原字南平1234", "lat": 37.3840, "lon": 140.9620}
TOKYO = {"address": "東京都千代田区", "lat": 35.6812, "lon": 139.7671}


async def _door_to_door(served: Served, account_id: str) -> None:
    async with served.runtime.services.uow() as uow:
        await uow.connection.execute(update(t.accounts).where(t.accounts.c.id == account_id).values(door_to_door=True))
        await uow.commit()


async def test_rider_sets_home_inside_the_area_and_reads_it_back(served: Served) -> None:
    c = served.client
    rider_id, token = await _phone_rider(served, "090-4444-0001", "大熊 ハナ")
    await _door_to_door(served, rider_id)
    me = {"Authorization": f"Bearer {token}"}
    assert (await c.get("/api/v1/rider/profile", headers=me)).json()["home"] is None
    r = await c.patch("/api/v1/rider/profile", headers=me, json={"home": HOME})
    assert r.status_code == 200, r.text
    assert r.json()["home"] == HOME
    assert (await c.get("/api/v1/rider/profile", headers=me)).json()["home"] == HOME
    # moved the pin: the home changes, the other settings stay
    moved = {**HOME, "lat": 37.3845}
    r = await c.patch("/api/v1/rider/profile", headers=me, json={"home": moved, "near_minutes": 10})
    assert r.json()["home"] == moved and r.json()["near_minutes"] == 10
    assert (await c.patch("/api/v1/rider/profile", headers=me, json={"near_minutes": 5})).json()["home"] == moved
    # null clears it
    assert (await c.patch("/api/v1/rider/profile", headers=me, json={"home": None})).json()["home"] is None


async def test_home_outside_the_area_or_blank_is_refused_in_both_languages(served: Served) -> None:
    c = served.client
    rider_id, token = await _phone_rider(served, "090-4444-0002", "大熊 タロウ")
    await _door_to_door(served, rider_id)
    me = {"Authorization": f"Bearer {token}"}
    r = await c.patch("/api/v1/rider/profile", headers=me, json={"home": TOKYO})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"] == "OutsideServiceArea" and "運行エリア" in body["message_ja"] and "service area" in body["message_en"]
    r = await c.patch("/api/v1/rider/profile", headers=me, json={"home": {**HOME, "address": "  "}})
    assert r.status_code == 400 and r.json()["message_ja"] and r.json()["message_en"]
    r = await c.patch("/api/v1/rider/profile", headers=me, json={"home": {**HOME, "lat": 91}})
    assert r.status_code == 422 and r.json()["message_ja"] and r.json()["message_en"]
    assert (await c.get("/api/v1/rider/profile", headers=me)).json()["home"] is None  # nothing stored


async def test_only_door_to_door_riders_set_a_home(served: Served) -> None:
    _, token = await _phone_rider(served, "090-4444-0003", "大熊 ジロウ")
    r = await served.client.patch("/api/v1/rider/profile", headers={"Authorization": f"Bearer {token}"},
                                  json={"home": HOME})
    assert r.status_code == 403 and "ドアツードア" in r.json()["message_ja"] and r.json()["message_en"]


async def test_only_the_rider_and_the_desk_read_the_home(served: Served) -> None:
    c = served.client
    rider_id, token = await _phone_rider(served, "090-4444-0004", "大熊 トメ")
    await _door_to_door(served, rider_id)
    assert (await c.patch("/api/v1/rider/profile", headers={"Authorization": f"Bearer {token}"},
                          json={"home": HOME})).status_code == 200
    _, other = await _phone_rider(served, "090-4444-0005", "大熊 キク")
    # another rider sees only their own profile, and cannot use the desk's look-up
    assert (await c.get("/api/v1/rider/profile", headers={"Authorization": f"Bearer {other}"})).json()["home"] is None
    for who in ({"Authorization": f"Bearer {other}"}, served.auth("driver"), served.auth("kiosk")):
        r = await c.post("/api/v1/desk/rider-home", headers=who, json={"phone": "090-4444-0004"})
        assert r.status_code == 403, r.text
    r = await c.post("/api/v1/desk/rider-home", headers=served.auth("operator"), json={"phone": "09044440004"})
    assert r.status_code == 200, r.text
    assert r.json() == {"account_id": rider_id, "name": "大熊 トメ", "door_to_door": True, "home": HOME}
    async with served.runtime.services.uow(readonly=True) as uow:
        assert [x["action"] for x in await uow.audit.of_subject(rider_id)] == ["read_rider_home"]
    r = await c.post("/api/v1/desk/rider-home", headers=served.auth("operator"), json={"phone": "090-4444-0999"})
    assert r.status_code == 404 and r.json()["message_ja"] and r.json()["message_en"]


async def test_purge_forgets_the_home_of_a_rider_idle_for_the_retention_period(served: Served) -> None:
    c, svc = served.client, served.runtime.services
    rider_id, token = await _phone_rider(served, "090-4444-0006", "大熊 イネ")
    await _door_to_door(served, rider_id)
    me = {"Authorization": f"Bearer {token}"}
    assert (await c.patch("/api/v1/rider/profile", headers=me, json={"home": HOME})).status_code == 200
    assert (await purge_personal_data(svc)).homes_forgotten == 0  # recent: kept
    served.clock.advance(timedelta(days=svc.rules.personal_data_retention_days + 1).total_seconds())
    res = await purge_personal_data(svc)
    assert res.homes_forgotten == 1
    async with svc.uow(readonly=True) as uow:
        assert await uow.riders.home(rider_id) is None
