"""The town desk's family screen: find a resident by phone, see their links, link after consent
given in person, end a link; riders cannot use the desk's endpoints. Also: the rider profile says
whether the rider is registered for door-to-door (the phone app offers home delivery then)."""

from __future__ import annotations

import re

from tests.conftest import Served


async def _phone_rider(served: Served, phone: str, name: str) -> tuple[str, str]:
    sent = served.runtime.notifier.log_channel.sent
    before = len(sent)
    r = await served.client.post("/api/v1/sign-in/code", json={"phone": phone})
    assert r.status_code == 202, r.text
    code = re.search(r"\b(\d{6})\b", sent[before].text).group(1)
    r = await served.client.post("/api/v1/sign-in/verify", json={"phone": phone, "code": code, "name": name})
    assert r.status_code == 200, r.text
    return r.json()["account_id"], r.json()["token"]


async def test_desk_finds_the_resident_links_after_consent_and_ends_the_link(served: Served) -> None:
    c, op = served.client, served.auth("operator")
    child_id, child_token = await _phone_rider(served, "090-3333-4444", "大熊 三郎")
    child = {"Authorization": f"Bearer {child_token}"}
    r = await c.post("/api/v1/family/desk-lookup", headers=op, json={"phone": "０９０ー３３３３ー４４４４"})
    assert r.status_code == 200, r.text
    found = r.json()
    assert found == {"account_id": child_id, "name": "大熊 三郎", "phone_masked": "*******4444", "links": []}
    r = await c.post("/api/v1/family/desk-links", headers=op, json={
        "guardian_phone": "090-3333-4444", "member_phone": "090-3333-5555", "member_name": "大熊 トメ"})
    assert r.status_code == 201, r.text
    link_id = r.json()["link_id"]
    (link,) = (await c.post("/api/v1/family/desk-lookup", headers=op, json={"phone": "09033334444"})).json()["links"]
    assert link["link_id"] == link_id and link["role"] == "guardian" and link["name"] == "大熊 トメ"
    assert link["consent"] == "desk"
    # the parent, seen from their side: the son books for them
    (seen,) = (await c.post("/api/v1/family/desk-lookup", headers=op, json={"phone": "090-3333-5555"})).json()["links"]
    assert seen["role"] == "member" and seen["name"] == "大熊 三郎"
    assert [f["link_id"] for f in (await c.get("/api/v1/family", headers=child)).json()] == [link_id]
    # the read is audited (subject: the resident's account, no personal data)
    async with served.runtime.services.uow(readonly=True) as uow:
        rows = await uow.audit.of_subject(child_id)
    assert [x["action"] for x in rows] == ["read_family_links", "read_family_links"]
    # the desk ends the link; the son no longer sees it
    assert (await c.delete(f"/api/v1/family/{link_id}", headers=op)).status_code == 204
    assert (await c.get("/api/v1/family", headers=child)).json() == []
    assert (await c.post("/api/v1/family/desk-lookup", headers=op, json={"phone": "09033334444"})).json()["links"] == []


async def test_desk_lookup_refuses_riders_unknown_phones_and_bad_numbers(served: Served) -> None:
    c, op = served.client, served.auth("operator")
    r = await c.post("/api/v1/family/desk-lookup", headers=served.auth("rider"), json={"phone": "090-3333-4444"})
    assert r.status_code == 403
    r = await c.post("/api/v1/family/desk-lookup", headers=op, json={"phone": "090-0000-0009"})
    assert r.status_code == 404 and r.json()["message_ja"] and r.json()["message_en"]
    r = await c.post("/api/v1/family/desk-lookup", headers=op, json={"phone": "12"})
    assert r.status_code in (400, 422) and r.json()["message_en"]
    # a rider cannot end somebody else's link
    await _phone_rider(served, "090-3333-6666", "大熊 四郎")
    link_id = (await c.post("/api/v1/family/desk-links", headers=op, json={
        "guardian_phone": "090-3333-6666", "member_phone": "090-3333-7777", "member_name": "大熊 キク"})).json()["link_id"]
    assert (await c.delete(f"/api/v1/family/{link_id}", headers=served.auth("rider"))).status_code == 404


async def test_profile_says_whether_the_rider_is_registered_for_door_to_door(served: Served) -> None:
    _, token = await _phone_rider(served, "090-3333-8888", "大熊 五郎")
    r = await served.client.get("/api/v1/rider/profile", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["door_to_door"] is False
    from transit.accounts import create_account

    async with served.runtime.services.uow() as uow:
        _, home = await create_account(uow, role="rider", name="大熊 六郎", door_to_door=True)
        await uow.commit()
    r = await served.client.get("/api/v1/rider/profile", headers={"Authorization": f"Bearer {home}"})
    assert r.status_code == 200 and r.json()["door_to_door"] is True
