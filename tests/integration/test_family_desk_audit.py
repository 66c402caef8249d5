"""The town desk ending a family link is recorded: who ended whose link and when (audit_log, no
personal data), as the desk's lookup is; a rider ending their own link is not a desk action."""

from __future__ import annotations

from tests.conftest import Served
from tests.integration.test_family_desk import _phone_rider


async def test_the_desk_ending_a_link_is_audited_for_both_sides(served: Served) -> None:
    c, op = served.client, served.auth("operator")
    guardian_id, _ = await _phone_rider(served, "090-4444-1111", "大熊 一郎")
    r = await c.post("/api/v1/family/desk-links", headers=op, json={
        "guardian_phone": "090-4444-1111", "member_phone": "090-4444-2222", "member_name": "大熊 ハル"})
    assert r.status_code == 201, r.text
    link_id = r.json()["link_id"]
    (link,) = (await c.post("/api/v1/family/desk-lookup", headers=op, json={"phone": "090-4444-1111"})).json()["links"]
    member_id = link["account_id"]
    assert (await c.delete(f"/api/v1/family/{link_id}", headers=op)).status_code == 204
    async with served.runtime.services.uow(readonly=True) as uow:  # type: ignore[attr-defined]
        for subject in (guardian_id, member_id):
            rows = [x for x in await uow.audit.of_subject(subject) if x["action"] == "end_family_link"]
            assert len(rows) == 1, subject
            assert rows[0]["actor_role"] == "operator"
