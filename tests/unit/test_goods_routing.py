"""Deliveries in the routing core: parcel loads, the chilled limit as the ride limit, passengers first."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import numpy as np

from routing import insertion as ins
from routing import model as rm
from routing.check import check, check_routes
from routing.optimise import optimise
from routing.traveltime import StraightLineTravelTimes
from transit.clock import to_epoch
from transit.reference_data import load_okuma
from transit.stores import delivery_timing, load_stores


def _okuma() -> tuple[rm.Problem, dict[str, int], object]:
    ref = load_okuma()
    rules = ref.rules
    stops = list(ref.stops)
    tt = StraightLineTravelTimes(rules.circuity, rules.speed_kmh, min_s=30).matrix(
        np.array([s.lat for s in stops]), np.array([s.lon for s in stops]))
    index = {s.stop_id: i for i, s in enumerate(stops)}
    depot = index["okuma_town_hall"]
    t0 = to_epoch(datetime(2026, 11, 26, 9, 0, tzinfo=rules.tz))
    vehicles = tuple(rm.Vehicle(f"v{k}", depot, t0, depot, t0 + 8 * 3600, rm.Load(10, 1, 6)) for k in range(2))
    return rm.Problem(vehicles, {}, tt), index, ref


def _book(problem: rm.Problem, req: rm.Request, promise: bool) -> rm.Problem:
    res = ins.find_insertions(problem, req, max_options=1)
    assert res.options, req.id
    best = res.options[0]
    if promise:
        req = ins.promised_request(req, ins.make_promise(best, req, pickup_window_s=600))
    reqs = dict(problem.requests)
    reqs[req.id] = req
    return rm.Problem(tuple(replace(v, route=best.route) if v.id == best.vehicle_id else v
                            for v in problem.vehicles), reqs, problem.travel_s)


def test_chilled_limit_holds_in_optimised_plans_and_the_checker_judges_it() -> None:
    """Chilled deliveries get chilled_max_out_of_store_s as their max ride; the optimiser's plans
    keep it (routing.check finds nothing) and the checker flags a plan that would exceed it."""
    problem, ix, ref = _okuma()
    rules = ref.rules
    stores = load_stores(stop_ids=ix)
    t0 = problem.vehicles[0].start_time_s
    homes = ["ogawara_disaster_public_housing", "hara_regen_housing", "ono_minami_regen_housing",
             "ogawara_public_housing_north"]
    trips = [("ogawara_disaster_public_housing", "ono_station_west_plaza"), ("ono_minami_regen_housing", "okuma_town_hall"),
             ("okuma_clinic_welfare_centre", "hara_regen_housing"), ("ono_station_east_plaza", "okumart")]
    for k in range(8):  # passengers, promised as the service promises them
        o, d = trips[k % len(trips)]
        direct = problem.travel(ix[o], ix[d])
        mr = rules.max_ride_s(direct)
        t = t0 + 600 + 900 * k
        svc = rules.dwell_s(boardings=1)
        problem = _book(problem, rm.Request(f"p{k}", ix[o], ix[d], rm.Load(1, 0, 0), rm.TimeWindow(t, t + 1200),
                                            rm.TimeWindow(t, t + 1200 + svc + mr), mr, svc, svc), promise=True)
    chilled = []
    for k in range(6):  # chilled deliveries, timed by the service's own rule
        store = list(stores.values())[k % 2]
        dest = homes[k % len(homes)]
        direct = problem.travel(ix[store.stop_id], ix[dest])
        svc = rules.dwell_s(boardings=0, parcels=1)
        ws = datetime.fromtimestamp(t0 + 3600 + 1200 * k, rules.tz)
        timing = delivery_timing(store, tz=rules.tz, now=datetime.fromtimestamp(t0, rules.tz), window_start=ws,
                                 window_end=datetime.fromtimestamp(t0 + 7200 + 1200 * k, rules.tz),
                                 temperature="chilled", direct_s=direct, service_s=svc,
                                 chilled_max_s=rules.chilled_max_out_of_store_s)
        assert timing.max_ride_s == rules.chilled_max_out_of_store_s
        req = rm.Request(f"d{k}", ix[store.stop_id], ix[dest], rm.Load(0, 0, 1),
                         rm.TimeWindow(timing.pickup_earliest_s, timing.pickup_latest_s),
                         rm.TimeWindow(timing.window_start_s, timing.window_end_s), timing.max_ride_s, svc, svc)
        problem = _book(problem, req, promise=False)
        chilled.append(req.id)
    sol = optimise(problem, time_limit_s=2.0, seed=1, max_iterations=300)
    assert not sol.unserved
    assert check(problem, sol) == []
    starts = {(s.stop.request_id, s.stop.kind): s.start_s for r in sol.routes for s in r.stops}
    rides = {rid: starts[(rid, "dropoff")] - starts[(rid, "pickup")] - problem.requests[rid].pickup_service_s
             for rid in chilled}
    assert max(rides.values()) <= rules.chilled_max_out_of_store_s
    # The checker really checks it: with a tighter limit than this plan's ride, it reports ride_time.
    longest = max(rides, key=rides.__getitem__)
    tighter = dict(problem.requests)
    tighter[longest] = replace(problem.requests[longest], max_ride_s=max(0, rides[longest] - 1))
    kinds = {(v.kind, v.request_id) for v in check(replace(problem, requests=tighter), sol)}
    assert ("ride_time", longest) in kinds


def _line() -> rm.Problem:
    """Depot 0; passenger 1 → 2; store 3; home 4; every drive 600 s."""
    tt = np.full((5, 5), 600, dtype=np.int64)
    np.fill_diagonal(tt, 0)
    p = rm.Request("passenger", 1, 2, rm.Load(1, 0, 0), rm.TimeWindow(600, 660), rm.TimeWindow(600, 1400), 700, 30, 30)
    v = rm.Vehicle("v", 0, 0, 0, 20_000, rm.Load(4, 0, 2),
                   route=(rm.Stop("passenger", "pickup"), rm.Stop("passenger", "dropoff")))
    return rm.Problem((v,), {"passenger": p}, tt)


def test_a_parcel_never_breaks_a_passenger_promise() -> None:
    """A delivery that fits only by making a promised passenger late gets no insertion; in a later
    window it goes after the passenger, whose promise still holds."""
    problem = _line()
    parcel = rm.Request("parcel", 3, 4, rm.Load(0, 0, 1), rm.TimeWindow(0, 2000), rm.TimeWindow(1200, 1500),
                        2700, 60, 60)
    assert ins.find_insertions(problem, parcel).options == ()
    later = replace(parcel, pickup_window=rm.TimeWindow(0, 4000), dropoff_window=rm.TimeWindow(2400, 3600))
    res = ins.find_insertions(problem, later)
    assert res.options
    best = res.options[0]
    assert [s.request_id for s in best.route[:2]] == ["passenger", "passenger"]
    reqs = {**problem.requests, "parcel": later}
    _, violations = check_routes(replace(problem, requests=reqs), {"v": best.route})
    assert violations == []


def test_parcels_take_parcel_space_not_seats() -> None:
    """A full minibus (every seat taken) still carries a parcel; parcels beyond the parcel space do not fit."""
    problem = _line()
    v = replace(problem.vehicles[0], capacity=rm.Load(1, 0, 2))
    problem = replace(problem, vehicles=(v,))
    parcel = rm.Request("parcel", 3, 4, rm.Load(0, 0, 2), rm.TimeWindow(0, 4000), rm.TimeWindow(2400, 3600),
                        2700, 60, 60)
    assert ins.find_insertions(problem, parcel).options
    too_many = replace(parcel, load=rm.Load(0, 0, 3))
    assert ins.find_insertions(problem, too_many).options == ()


def test_chilled_goods_ordered_early_still_fit_and_leave_the_store_late_enough() -> None:
    """Ready long before the window: the pickup may not start before window start - chilled limit
    - dwell, so an empty minibus can take it and the ride stays within the limit."""
    problem, ix, ref = _okuma()
    rules = ref.rules
    store = load_stores(stop_ids=ix)["kuma_sun_terrace"]
    dest = ix["ogawara_disaster_public_housing"]
    direct = problem.travel(ix[store.stop_id], dest)
    svc = rules.dwell_s(boardings=0, parcels=1)
    now = datetime.fromtimestamp(problem.vehicles[0].start_time_s, rules.tz)
    ws = datetime.fromtimestamp(problem.vehicles[0].start_time_s + 3 * 3600, rules.tz)  # ready 2 h 40 min early
    timing = delivery_timing(store, tz=rules.tz, now=now, window_start=ws,
                             window_end=datetime.fromtimestamp(to_epoch(ws) + 3600, rules.tz), temperature="chilled",
                             direct_s=direct, service_s=svc, chilled_max_s=rules.chilled_max_out_of_store_s)
    assert timing.ready_s < timing.pickup_earliest_s == to_epoch(ws) - rules.chilled_max_out_of_store_s - svc
    req = rm.Request("d", ix[store.stop_id], dest, rm.Load(0, 0, 1),
                     rm.TimeWindow(timing.pickup_earliest_s, timing.pickup_latest_s),
                     rm.TimeWindow(timing.window_start_s, timing.window_end_s), timing.max_ride_s, svc, svc)
    best = ins.find_insertions(problem, req).options[0]
    assert best.dropoff_s - best.pickup_s - svc <= rules.chilled_max_out_of_store_s
    _, violations = check_routes(rm.Problem(problem.vehicles, {"d": req}, problem.travel_s),
                                 {best.vehicle_id: best.route})
    assert violations == []
