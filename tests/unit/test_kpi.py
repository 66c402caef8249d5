"""The KPI definitions shared by the simulator's report and the operator console."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.conftest import TOKYO
from transit import kpi

T = datetime(2026, 11, 26, 9, 0, tzinfo=TOKYO)


def ride(bid: str, *, status: str = "completed", arrive_min: float = 5, ride_min: float = 10, direct_s: int = 400,
         latest_min: float = 10, party: int = 1, train=None) -> kpi.RideOutcome:  # type: ignore[no-untyped-def]
    pick = T + timedelta(minutes=arrive_min)
    done = status == "completed"
    return kpi.RideOutcome(bid, status, party, T, T + timedelta(minutes=latest_min), T + timedelta(minutes=40),
                           direct_s, 2000.0, requested_at=T, arrived_at=pick if done else None,
                           picked_up_at=pick if done else None,
                           completed_at=pick + timedelta(minutes=ride_min) if done else None, train=train)


def test_requests_are_served_plus_refused_and_cancellations_apart() -> None:
    """requests = served + refused; cancellations and no-shows are counted apart."""
    k = kpi.summarise([ride("a"), ride("b"), ride("c", status="cancelled"), ride("d", status="no_show")],
                      ["no_feasible_insertion", "no_feasible_insertion", "outside_service_hours"])
    assert (k.requests, k.served, k.refused, k.cancelled, k.no_shows) == (5, 2, 3, 1, 1)
    assert k.served_pct == 40.0
    assert k.refused_by_cause == {"no_feasible_insertion": 2, "outside_service_hours": 1}


def test_wait_on_time_ride_ratio_and_broken_promises() -> None:
    """Wait runs from the asked time to the vehicle at the pickup; late pickups break promises."""
    k = kpi.summarise([ride("a", arrive_min=4), ride("b", arrive_min=12, latest_min=10), ride("c", arrive_min=8)])
    assert k.mean_wait_min == 8.0
    assert k.on_time_pct == round(100 * 2 / 3, 1)
    assert k.promises_broken == 1
    assert k.ride_ratio_mean == 1.5  # 10 min ride on a 400 s direct drive


def test_train_connection_made_only_with_three_minutes_to_spare() -> None:
    """Catching a train: dropped at the station at least 3 min before it leaves."""
    made = ride("a", arrive_min=5, ride_min=10, train={"connection": "catch", "time": T + timedelta(minutes=18)})
    missed = ride("b", arrive_min=5, ride_min=10, train={"connection": "catch", "time": T + timedelta(minutes=17)})
    k = kpi.summarise([made, missed], [], refused_train_connections=2)
    assert (k.train_connections, k.train_connections_made) == (4, 1)


def test_passengers_per_vehicle_hour_at_the_busiest_hour() -> None:
    """Busiest hour by boardings, divided by the vehicle-hours on shift in that hour."""
    shifts = [(T - timedelta(hours=2), T + timedelta(hours=8))] * 2
    k = kpi.summarise([ride("a", party=3), ride("b", party=3)], [], shifts, TOKYO)
    assert (k.peak_hour, k.pax_per_vehicle_hour_peak) == ("09:00", 3.0)


def test_no_pooling_drives_every_ride_alone() -> None:
    """Without pooling the empty drive to each pickup and each loaded drive are added up."""
    a, b = ride("a"), ride("b", arrive_min=6)
    coords = {"a": ((0.0, 0.0), (0.0, 1.0)), "b": ((0.0, 0.0), (0.0, 1.0))}
    km = kpi.no_pooling_vkm([a, b], coords, [(0.0, 0.0, T)], 30.0, 1.0, lambda p, q: abs(p[1] - q[1]) * 1000)
    assert km == 3.0  # a: 0 empty + 1 loaded; b: 1 empty back + 1 loaded
