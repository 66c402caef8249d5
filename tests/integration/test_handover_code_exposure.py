"""Who is given a delivery's handover code, and where (docs/goods.md, docs/privacy.md).

The desk (operator, admin) reads a code out only on purpose: ``GET /api/v1/deliveries/{id}``, which
is audited. The booking answers an operator sees (the list, one booking) carry no code, so a list
of the day does not hold every resident's code. The recipient still gets theirs on confirm."""

from __future__ import annotations

from tests.conftest import Served
from tests.integration.test_deliveries import order


async def test_operator_booking_list_and_read_carry_no_handover_code(served: Served) -> None:
    b = await order(served, store="okumart", dest="ono_station_west_plaza")
    code = b["delivery"]["handover_code"]
    assert code and len(code) == 4  # the recipient's own confirm answer keeps it
    c = served.client
    for role in ("operator", "admin"):
        h = served.auth(role)
        r = await c.get("/api/v1/bookings", headers=h)
        assert r.status_code == 200, r.text
        [row] = [x for x in r.json() if x["id"] == b["id"]]
        assert row["delivery"] is not None and row["delivery"]["status"] == "ordered"
        assert row["delivery"]["handover_code"] is None, role
        assert code not in r.text
        r = await c.get(f"/api/v1/bookings/{b['id']}", headers=h)
        assert r.status_code == 200 and r.json()["delivery"]["handover_code"] is None, role


async def test_the_desk_read_out_keeps_the_code_and_is_audited(served: Served) -> None:
    b = await order(served, store="okumart", dest="ono_station_west_plaza")
    code = b["delivery"]["handover_code"]
    r = await served.client.get(f"/api/v1/deliveries/{b['id']}", headers=served.auth("operator"))
    assert r.status_code == 200 and r.json()["handover_code"] == code
    async with served.runtime.services.uow(readonly=True) as uow:  # type: ignore[attr-defined]
        rows = await uow.audit.of_subject(b["id"])
    assert [x["action"] for x in rows if x["actor_role"] == "operator"].count("read_handover_code") == 1
    # the rider's own read of the delivery is not an audited desk read, and keeps the code
    r = await served.client.get(f"/api/v1/deliveries/{b['id']}", headers=served.auth("rider"))
    assert r.status_code == 200 and r.json()["handover_code"] == code


async def test_a_kiosk_at_the_store_stop_cannot_read_a_delivery_it_did_not_book(served: Served) -> None:
    """A delivery leaves from its store's stop; a kiosk standing there is not the recipient's side
    (that is the rider who ordered it, or the kiosk that booked it): no delivery, no code."""
    from transit.accounts import create_account

    b = await order(served, store="kuma_sun_terrace")
    assert b["origin"]["stop_id"] == "kuma_sun_terrace"
    async with served.runtime.services.uow() as uow:  # type: ignore[attr-defined]
        _, tok = await create_account(uow, role="kiosk", name="店前の端末", stop_id="kuma_sun_terrace")
        await uow.commit()
    r = await served.client.get(f"/api/v1/deliveries/{b['id']}", headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 404, r.text
    assert b["delivery"]["handover_code"] not in r.text
    # nor choose where someone else's groceries go back to
    r = await served.client.post(f"/api/v1/deliveries/{b['id']}/return", json={},
                                 headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 404, r.text
