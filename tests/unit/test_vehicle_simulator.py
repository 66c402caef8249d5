"""driver_app.simulator.VehicleSimulator against a scripted tablet client (no server)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from driver_app import protocol as p
from driver_app.client import PlanState
from driver_app.simulator import ARRIVAL_TRIES, SimulationOptions, VehicleSimulator
from transit.clock import FakeClock

T0 = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)


def visit(bid: str, kind: str, stop: str, lat: float = 37.38, lon: float = 140.95) -> p.VisitOut:
    return p.VisitOut(visit_id=f"{bid}:{kind}", booking_id=bid, kind=kind, status="confirmed", stop_id=stop,
                      lat=lat, lon=lon, planned_at=T0, party_size=1)  # type: ignore[arg-type]


class ScriptedClient:
    """The tablet side: answers every event with ``answer`` and records it; ``on_event`` may change the plan."""

    def __init__(self, visits: list[p.VisitOut], answer: str = "applied") -> None:
        self.plan = PlanState(seq=1, visits=visits)
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.answer = answer
        self.hello = None

    async def event(self, kind: str, **fields: Any) -> p.Ack:
        self.sent.append((kind, fields))
        if kind == "arrived" and self.answer == "rejected":
            return p.Ack(client_event_id="x", result="rejected", code="PlanRejected")
        return p.Ack(client_event_id="x", result="applied")

    async def wait_changed(self, timeout: float | None = None) -> None:
        await asyncio.sleep(0)


class TickingClock(FakeClock):
    """Every reading is 5 s later: waits end after a few readings."""

    def now(self) -> datetime:
        return self.advance(5)


def simulator(client: ScriptedClient) -> VehicleSimulator:
    clock = TickingClock(T0, speed=1e9)
    return VehicleSimulator("http://x", "t", clock, vehicle_id="v1", client=client,  # type: ignore[arg-type]
                            options=SimulationOptions(seed=1))


async def test_a_stop_is_served_as_the_current_plan_has_it_not_as_chosen_before_a_re_plan() -> None:
    """The group was chosen from the old plan (b2 boarding here too); a re-plan moved b2 away while
    the vehicle drove: the arrival names only what the plan now has at this stop."""
    stale = [visit("b1", "pickup", "x"), visit("b2", "pickup", "x")]
    client = ScriptedClient([visit("b1", "pickup", "x"), visit("b1", "dropoff", "y", 37.39, 140.96)])
    sim = simulator(client)
    await sim._serve(stale)
    arrivals = [f for k, f in client.sent if k == "arrived"]
    assert arrivals and arrivals[0]["booking_ids"] == ["b1"]
    assert [f["booking_id"] for k, f in client.sent if k == "boarded"] == ["b1"]


async def test_a_stop_no_longer_next_is_not_served() -> None:
    client = ScriptedClient([visit("b3", "pickup", "z", 37.40, 140.97)])
    sim = simulator(client)
    await sim._serve([visit("b1", "pickup", "x")])
    assert client.sent == []


async def test_a_refused_arrival_is_sent_again_before_the_stop_is_given_up() -> None:
    client = ScriptedClient([visit("b1", "pickup", "x")], answer="rejected")
    sim = simulator(client)
    for _ in range(ARRIVAL_TRIES - 1):
        await sim._serve(sim._next_stop())
        assert sim._next_stop(), "given up too early"
    await sim._serve(sim._next_stop())
    assert sim._next_stop() == []
    assert [k for k, _ in client.sent].count("arrived") == ARRIVAL_TRIES


def test_a_visit_the_plan_waits_for_at_the_same_stop_is_not_served_with_the_one_before() -> None:
    """Two pickups at one stop 40 min apart (the vehicle drops others off in between, or waits):
    the later rider is not boarded with the first (they were boarded early, rode far past their
    limit and filled a seat the plan had given to someone else: 11 on board of 10)."""
    from datetime import timedelta

    first = visit("b1", "pickup", "x")
    later = visit("b2", "pickup", "x").model_copy(update={"planned_at": T0 + timedelta(minutes=40)})
    held = visit("b3", "pickup", "x").model_copy(update={"wait_until": T0 + timedelta(minutes=2)})
    right_after = visit("b4", "pickup", "x").model_copy(update={"planned_at": T0 + timedelta(seconds=30)})
    sim = simulator(ScriptedClient([first, right_after, later]))
    assert [v.booking_id for v in sim._next_stop()] == ["b1", "b4"]
    sim = simulator(ScriptedClient([first, held]))
    assert [v.booking_id for v in sim._next_stop()] == ["b1"]
