"""The what-if simulator runs a window of a day through the real app, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from api import simulate as sim
from api.server import demo_start
from tests.conftest import TOKYO, create_pg_database, drop_pg_database
from transit import scenarios
from transit.reference_data import load_okuma

WINDOW = {"start": "07:30", "end": "08:15"}  # requests asked for in this window; the run lasts until they end


def _check_counts(res: sim.SimResult) -> None:
    s, k = res.summary, res.kpis
    assert s["requests"] == k.served + k.refused
    assert k.served == sum(r.served for r in res.rides)
    assert k.refused == sum(k.refused_by_cause.values())
    assert s["requests"] > 5, "the window should hold several requests"
    assert k.served > 0
    for key in ("served_pct", "on_time_pct", "train_connections_made_pct"):
        assert 0.0 <= s[key] <= 100.0, key
    assert 0.0 <= s["mean_wait_min"] <= s["p95_wait_min"] + 1e-9 or s["p95_wait_min"] == 0
    assert s["vkm"] > 0 and s["vkm_no_pooling"] > 0
    assert s["ride_ratio_mean"] >= 0.9  # nobody rides faster than the direct drive
    assert s["offer_p95_ms"] > 0
    line = json.loads(sim.json_line(s))
    assert list(line) == ["scenario", "requests", "served_pct", "mean_wait_min", "p95_wait_min", "on_time_pct",
                          "ride_ratio_mean", "vkm", "vkm_no_pooling", "vkm_saved_pct", "pax_per_vehicle_hour_peak",
                          "train_connections_made_pct", "promises_broken", "plans_rejected", "invariant_violations",
                          "offer_p95_ms", "reopt_cycle_p95_s", "wall_s", "deliveries"]
    assert line["scenario"] == "okuma-weekday"


async def test_a_window_of_okuma_weekday_on_sqlite() -> None:
    """Requests go through the API, the fleet drives them, and the counts add up (SQLite)."""
    res = await sim.DaySimulation(sim.SimConfig("okuma-weekday", seed=3, progress=False, **WINDOW)).run()
    _check_counts(res)
    finished = [r for r in res.rides if r.status in ("completed", "cancelled", "no_show")]
    assert len(finished) == len(res.rides), "every booking of the window ends before the run stops"


@pytest.mark.postgres
async def test_a_window_of_okuma_weekday_on_postgresql() -> None:
    """The same window on PostgreSQL: the simulator makes (and drops) a fresh database on the server."""
    url = await create_pg_database()  # skips when PostgreSQL is missing (fails in CI)
    try:
        res = await sim.DaySimulation(sim.SimConfig("okuma-weekday", seed=3, progress=False, database_url=url,
                                                    **WINDOW)).run()
    finally:
        await drop_pg_database(url)
    _check_counts(res)


def test_the_same_seed_gives_the_same_demand() -> None:
    """Demand comes from the seed only: same seed, same requests; another seed, other requests."""
    scn = scenarios.load("okuma-weekday")
    a, b, c = scenarios.generate(scn, 7), scenarios.generate(scn, 7), scenarios.generate(scn, 8)
    assert a == b
    assert a != c
    assert 150 <= sum(t.kind == "ride" for t in a) <= 250, "okuma-weekday is about 200 rides"
    assert {t.channel for t in a} <= {"app", "kiosk", "phone"}
    assert any(t.mode == "arrive_by" and t.train for t in a), "residents catch trains (arrive-by)"
    assert any(t.train and t.train["connection"] == "from" for t in a), "and come from trains"
    assert len(scenarios.generate(scenarios.load("okuma-weekday-3x"), 7)) > 2.5 * len(a)


async def test_a_plan_broken_behind_the_simulators_back_is_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plan written straight to the database with its visits reversed is found by the checks."""
    done: list[str] = []
    original = sim.DaySimulation._after_step

    async def sabotage(self: sim.DaySimulation) -> None:
        if not done:
            async with self.services.uow() as uow:
                for v in await uow.vehicles.list():
                    kinds = [x.kind for x in v.plan]
                    if "pickup" in kinds and "dropoff" in kinds and kinds.index("pickup") < len(kinds) - 1:
                        v.plan = list(reversed(v.plan))  # drop-offs before their pickups
                        await uow.vehicles.save(v)  # no event: nobody is told
                        done.append(v.id)
                        break
                await uow.commit()
            if done:
                self._changes += 1
        await original(self)

    monkeypatch.setattr(sim.DaySimulation, "_after_step", sabotage)
    res = await sim.DaySimulation(sim.SimConfig("okuma-weekday", seed=3, progress=False, **WINDOW)).run()
    assert done, "a plan with a pickup and a later visit existed to break"
    # transit.invariants sees that the stored plan is not the one the scheduler timed
    assert set(res.violations) & {"untimed_plan", "schedule", "checker"}, res.violations
    assert res.summary["invariant_violations"] >= 1


@pytest.mark.parametrize(("local", "expected"), [
    (datetime(2026, 11, 26, 3, 0, tzinfo=TOKYO), datetime(2026, 11, 26, 8, 0, tzinfo=TOKYO)),
    (datetime(2026, 11, 26, 21, 30, tzinfo=TOKYO), datetime(2026, 11, 27, 8, 0, tzinfo=TOKYO)),
    (datetime(2026, 11, 26, 10, 15, tzinfo=TOKYO), datetime(2026, 11, 26, 10, 15, tzinfo=TOKYO)),
])
def test_the_demo_clock_starts_inside_service_hours(local: datetime, expected: datetime) -> None:
    """Started at 03:00 or 21:30 JST the demo runs from 08:00 of the next service day; inside hours, now."""
    rules = load_okuma().rules
    assert demo_start(local, rules) == expected


async def test_the_console_reads_todays_kpis_from_the_same_code(served) -> None:  # type: ignore[no-untyped-def]
    """GET /api/v1/kpis/today: operators only; a booking made counts as booked, nothing done yet."""
    c = served.client
    assert (await c.get("/api/v1/kpis/today", headers=served.auth("rider"))).status_code == 403
    empty = (await c.get("/api/v1/kpis/today", headers=served.auth("operator"))).json()
    assert (empty["booked"], empty["completed"]) == (0, 0)
    offer = (await c.post("/api/v1/offers", headers=served.auth("operator"), json={
        "origin": {"stop_id": "okuma_town_hall"}, "destination": {"stop_id": "ono_station_west_plaza"},
        "time_mode": "now", "passenger_name": "テスト"})).json()
    r = await c.post("/api/v1/bookings", json={"offer_id": offer["offer_id"]},
                     headers={**served.auth("operator"), "Idempotency-Key": "kpi-1"})
    assert r.status_code == 201
    k = (await c.get("/api/v1/kpis/today", headers=served.auth("operator"))).json()
    assert (k["booked"], k["completed"], k["on_board_now"]) == (1, 0, 0)


async def test_the_demo_books_scenario_demand_in_the_background(served) -> None:  # type: ignore[no-untyped-def]
    """demo_demand books the day's scenario requests through the handlers as their times come."""
    import asyncio
    import contextlib

    task = asyncio.create_task(sim.demo_demand(served.runtime.services, token=served.tokens["operator"]))
    try:
        for _ in range(200):
            await asyncio.sleep(0.1)
            r = await served.client.get("/api/v1/kpis/today", headers=served.auth("operator"))
            if r.json()["booked"] >= 3:
                break
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert r.json()["booked"] >= 3
    bookings = (await served.client.get("/api/v1/bookings", headers=served.auth("operator"))).json()
    assert all(b["channel"] == "phone" and b["passenger_name"].startswith("デモ乗客") for b in bookings)


def test_the_city_boots_without_the_okuma_stores() -> None:
    """A synthetic town (the city scenario) has none of the stores' stops: the app starts with no
    stores instead of refusing the reference data (it failed with 'okumart is not a stop')."""
    from transit.bootstrap import bootstrap
    from transit.settings import Settings

    scn = scenarios.load("city")
    ref = sim._city(scn, sim.SimConfig("city", progress=False))
    rt = bootstrap(Settings(database_url="sqlite+aiosqlite:///:memory:", dispatcher=False), reference=ref)
    assert dict(rt.services.stores) == {}
    assert len(ref.fleet) == 200


async def test_deliveries_go_through_the_stores_the_tablets_and_the_recipients(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The weekday's deliveries in a window of the day: residents (app, kiosk, desk) order through
    the API, the stores mark them ready through the store endpoint, the simulated driver picks
    them up and types the code the recipient shows from their own channel; absent recipients
    (half of them here) send the parcel back to the store, which records it. Every delivery ends
    delivered, returned or cancelled; no chilled limit is exceeded; no invariant is broken on a
    delivery."""
    import shutil

    from driver_app import protocol as p

    src = scenarios.SCENARIO_DIR
    raw = json.loads((src / "okuma-weekday.json").read_text(encoding="utf-8"))
    raw["rates"]["absent"] = 0.5
    (tmp_path / "okuma-weekday.json").write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
    shutil.copy(src / "joban_ono.json", tmp_path / "joban_ono.json")
    codes_from: list[str] = []
    day = sim.DaySimulation(sim.SimConfig(str(tmp_path / "okuma-weekday.json"), seed=1, progress=False,
                                          start="10:00", end="11:00"))
    original = day._recipient_code

    async def recipient(bid: str) -> str | None:
        order = day.goods.orders[bid]
        codes_from.append("receipt" if order.receipt_code else order.auth["Authorization"])
        return await original(bid)

    day._recipient_code = recipient  # type: ignore[method-assign]
    res = await day.run()
    d = res.summary["deliveries"]
    orders = day.goods.orders
    assert d["requested"] >= 3 and d["booked"] == d["requested"] - d["refused"] == len(orders)
    assert d["served"] + d["returned"] + d["cancelled"] == d["booked"], d
    absent = [o for o in orders.values() if o.trip.absent]
    assert absent and d["returned"] >= 1, d
    assert d["served"] >= 1
    assert d["chilled_limit_breaches"] == 0 and d["picked_up_before_ready"] == 0, d
    assert d["store_steps_refused"] == 0, day.goods.store_refused
    assert all(o.ready_at is not None for o in orders.values()), "every store marked its order ready"
    assert d["on_time_pct"] >= 80.0, d
    # the code came from the recipient's side only: the tablet's plan has no code to give
    assert codes_from and all(c == "receipt" or c.startswith("Bearer ") for c in codes_from)
    assert [f for f in p.VisitOut.model_fields if "code" in f] == ["handover_code_required"]
    log = [e for v in day.fleet.vehicles.values() for e in v.tally.log]
    assert sum(1 for what, bid in log if what == "parcel_handed_over" and bid in orders) == d["served"]
    assert sum(1 for what, bid in log if what == "parcel_returned" and bid in orders) == d["returned"]
    on_deliveries = [v for v in day.violations.values() if v.booking_id in orders]
    assert on_deliveries == [], on_deliveries
    assert all(r.booking_id not in orders for r in res.rides), "passenger figures hold rides only"
