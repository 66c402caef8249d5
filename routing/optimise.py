"""Public entry of the optimiser: plan (or re-plan) every vehicle's route within a time budget.

Search = OR-Tools routing model (``routing.ortools_solver``) driven as the repair engine of a
large-neighbourhood search:

1. first solution: the warm start (the plan being followed) if OR-Tools accepts it, else
   parallel cheapest insertion + guided local search for a slice of the budget;
2. ruin & recreate until the budget is spent: remove a set of related requests (close in space
   and time, or one whole route, or random), read the rest back with
   ``ReadAssignmentFromRoutes``, let OR-Tools re-insert and improve with a short local search,
   accept when not worse (plus a small random-walk allowance), keep the best;
3. extract: every route gets its own schedule (earliest feasible, pickups delayed to cut ride
   time) and is verified; unserved requests come back with a cause.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Mapping, Sequence

import numpy as np

from routing import ortools_solver as ort
from routing.model import (
    Objective,
    Problem,
    Route,
    Solution,
    Stop,
    UnservedCause,
)

log = logging.getLogger(__name__)

#: run a short OR-Tools local search on LNS solutions now and then
POLISH = False
#: share of the budget for OR-Tools' own first solution + guided local search
FIRST_SHARE = 0.1
#: start temperature of the acceptance rule, as a fraction of the plan's travel cost
TEMP = 0.005
#: largest number of requests removed by one ruin step
QMAX = 15
#: ... and at most this fraction of all requests
QFRAC = 0.5
#: relative noise on insertion costs in one recreate out of three
NOISE = 0.1
#: probabilities of the ruin operators (Shaw/related, worst, whole route; the rest random)
P_SHAW, P_WORST, P_ROUTE = 0.6, 0.0, 0.15


def default_penalty(problem: Problem) -> int:
    """A penalty per unserved request far above any detour: 100 x the largest travel time x
    (number of requests + 2), so serving is always preferred when feasible."""
    big = int(problem.travel_s.max()) if problem.travel_s.size else 1
    return max(1, big) * 100 * (len(problem.requests) + 2)


def optimise(
    problem: Problem,
    *,
    time_limit_s: float,
    seed: int = 0,
    warm_start: Mapping[str, Sequence[Stop]] | None = None,
    unserved_penalty: int | None = None,
    lns: bool = True,
) -> Solution:
    """Plan routes for ``problem`` minimising total travel, serving as many requests as possible.

    Parameters
    ----------
    problem:
        Vehicles (with on-board riders and current plans), requests, integer travel matrix.
    time_limit_s:
        Wall-clock budget in seconds (the call returns within about this time plus model
        building and extraction, a few tens of milliseconds).
    seed:
        Random seed of the neighbourhood choice and node ordering; same seed, same machine
        speed -> same search.
    warm_start:
        Vehicle id -> stop sequence to start from (defaults to each vehicle's ``route``). If
        OR-Tools rejects it (it breaks a constraint), the search starts from scratch and the
        promised requests it could not keep come back as ``PROMISE_INFEASIBLE``.
    unserved_penalty:
        Objective penalty per unserved request (travel units); default ``default_penalty``.
    lns:
        ``False`` runs the plain OR-Tools model (first solution + GLS) for the whole budget.

    Returns
    -------
    Solution
        Routes with schedules (integer times), unserved requests with causes, objective parts
        (``travel`` = summed integer travel, ``unserved_penalty``).
    """
    t_start = time.perf_counter()
    deadline = t_start + max(0.05, float(time_limit_s))
    penalty = default_penalty(problem) if unserved_penalty is None else int(unserved_penalty)
    rng = random.Random(seed)

    # requests whose load fits no vehicle never enter the model
    unserved: dict[str, UnservedCause] = {}
    reqs = problem.requests
    onboard = {rid for v in problem.vehicles for rid in v.onboard}
    model_reqs = {}
    for rid, r in reqs.items():
        if rid not in onboard and not ort.request_fits_somewhere(problem, r):
            unserved[rid] = UnservedCause.NO_VEHICLE_FITS
        else:
            model_reqs[rid] = r
    sub = Problem(problem.vehicles, model_reqs, problem.travel_s) if unserved else problem

    if warm_start is None and any(v.route for v in problem.vehicles):
        warm_start = {v.id: v.route for v in problem.vehicles}
    promised = {s.request_id for stops in (warm_start or {}).values() for s in stops}

    built = ort.build(sub, unserved_penalty=penalty, seed=seed)
    remaining = deadline - time.perf_counter()
    first_share = remaining if not lns else max(0.05, min(remaining * FIRST_SHARE, 1.5))
    params = ort.search_parameters(
        first_share, first_solution="parallel_cheapest_insertion", lns_operators=lns
    )
    init = ort.node_routes_from_stops(built, warm_start) if warm_start else None
    res = ort.solve(built, params, initial_routes=init)
    timing = problem
    if res.routes is None and any(v.onboard for v in sub.vehicles):
        # Riders on board must be dropped by their vehicle; if no plan can do it in time, plan
        # with their latest drop-off opened and let the checker report the late drop-off.
        log.warning("no plan keeps every on-board rider's promise; relaxing their drop-off times")
        relaxed = _relax_onboard(sub)
        timing = Problem(
            problem.vehicles, {**problem.requests, **relaxed.requests}, problem.travel_s
        )
        built = ort.build(relaxed, unserved_penalty=penalty, seed=seed)
        res = ort.solve(built, ort.search_parameters(max(0.05, deadline - time.perf_counter())))
    if res.routes is None:
        for rid in model_reqs:
            unserved[rid] = UnservedCause.TIME_LIMIT
        return Solution((), unserved, Objective(0, 0, penalty * len(unserved)))

    best = res.routes
    best_cost = _cost(built, best, penalty)
    if lns:
        best, best_cost = _lns(built, best, best_cost, penalty, deadline, rng)

    return _extract(problem, timing, built, best, unserved, promised, penalty)


# ---------------------------------------------------------------------------------------------


def _cost(built: ort.Built, routes: list[list[int]], penalty: int) -> int:
    p = built.problem
    travel = 0
    served = 0
    for k, seq in enumerate(routes):
        travel += ort.route_travel(p, k, ort.node_stops(built, seq))
        served += sum(1 for n in seq if built.nodes.kind[n] == ort.PICKUP)
    return travel + penalty * (len(built.optional) - served)


class _Fast:
    """Node-level arrays for the Python insertion (recreate) step and its exact time check."""

    def __init__(self, built: ort.Built) -> None:
        nodes = built.nodes
        p = built.problem
        loc = np.asarray(nodes.location, dtype=np.int64)
        self.arc = np.asarray(p.travel_s, dtype=np.int64)[np.ix_(loc, loc)]
        self.arc_l = self.arc.tolist()
        self.svc = list(nodes.service)
        self.lo = list(nodes.earliest)
        self.hi = list(nodes.latest)
        for rid, pn in nodes.pickup_node.items():  # implied windows prune insertions early
            (p_lo, p_hi), (d_lo, d_hi) = ort.tightened_windows(p, p.requests[rid])
            dn = nodes.dropoff_node[rid]
            self.lo[pn], self.hi[pn] = max(self.lo[pn], p_lo), min(self.hi[pn], p_hi)
            self.lo[dn], self.hi[dn] = max(self.lo[dn], d_lo), min(self.hi[dn], d_hi)
        self.kind = list(nodes.kind)
        self.req = list(nodes.request)
        n = len(loc)
        self.partner = [-1] * n
        self.ride = [0] * n  # at a drop-off node: L + s(pickup)
        self.load: list[tuple[int, ...]] = [(0,) * 3] * n
        for rid, pn in nodes.pickup_node.items():
            dn = nodes.dropoff_node[rid]
            r = p.requests[rid]
            self.partner[pn], self.partner[dn] = dn, pn
            self.ride[dn] = r.max_ride_s + r.pickup_service_s
            self.load[pn] = r.load.as_tuple()
            self.load[dn] = tuple(-x for x in r.load.as_tuple())
        for rid, dn in nodes.dropoff_node.items():
            if rid not in nodes.pickup_node:
                self.load[dn] = tuple(-x for x in p.requests[rid].load.as_tuple())
        self.starts, self.ends = built.starts, built.ends
        self.cap = [v.capacity.as_tuple() for v in p.vehicles]
        self.init_load = [
            tuple(
                sum(p.requests[r].load.as_tuple()[d] for r in v.onboard if r in p.requests)
                for d in range(3)
            )
            for v in p.vehicles
        ]
        self.dur = [v.max_route_duration_s for v in p.vehicles]
        self._cache: dict = {}
        self._best_cache: dict = {}
        self._feas: dict = {}
        self._tril: dict = {}
        self.svc_arr = np.asarray(self.svc, dtype=np.int64)
        self.hi_arr = np.asarray(self.hi, dtype=np.int64)
        self.load_arr = np.asarray(self.load, dtype=np.int64).reshape(n, 3)
        for st in self.starts:
            self.load_arr[st] = 0
        self.init_load_arr = [np.asarray(x, dtype=np.int64) for x in self.init_load]

    def times(self, k: int, seq: Sequence[int]) -> list[int] | None:
        """Least feasible schedule of start + seq + end for vehicle k, or None."""
        a = [self.starts[k], *seq, self.ends[k]]
        m = len(a)
        arc, svc, lo, hi = self.arc_l, self.svc, self.lo, self.hi
        step = [svc[a[i]] + arc[a[i]][a[i + 1]] for i in range(m - 1)]
        pos = {}
        rides = []
        for i in range(1, m - 1):
            node = a[i]
            if self.kind[node] == ort.PICKUP:
                pos[node] = i
            else:
                pp = self.partner[node]
                if pp >= 0 and pp in pos:
                    rides.append((pos[pp], i, self.ride[node]))
        t = [lo[x] for x in a]
        hi_a = [hi[x] for x in a]
        dur = self.dur[k]
        start = 0
        for _ in range(2 * m + 4):
            for i in range(start, m - 1):
                v = t[i] + step[i]
                if t[i + 1] < v:
                    if v > hi_a[i + 1]:
                        return None
                    t[i + 1] = v
            start = m  # raising a stop only pushes the stops after it: re-run from there
            for pi, di, lim in rides:
                need = t[di] - lim
                if t[pi] < need:
                    if need > hi_a[pi]:
                        return None
                    t[pi] = need
                    start = min(start, pi)
            if dur is not None:
                need = t[-1] - dur
                if t[0] < need:
                    if need > hi_a[0]:
                        return None
                    t[0] = need
                    start = 0
            if start == m:
                return t
        return None

    def savings(self, routes) -> dict[str, int]:
        """Request id -> travel saved by taking its two stops out of its route."""
        arc = self.arc_l
        out: dict[str, int] = {}
        for k, seq in enumerate(routes):
            a = [self.starts[k], *seq, self.ends[k]]
            for i in range(1, len(a) - 1):
                x = a[i]
                if self.kind[x] != ort.PICKUP:
                    continue
                sv = arc[a[i - 1]][x] + arc[x][a[i + 1]] - arc[a[i - 1]][a[i + 1]]
                out[self.req[x]] = out.get(self.req[x], 0) + sv
            for i in range(1, len(a) - 1):
                x = a[i]
                if self.kind[x] == ort.DROPOFF and self.req[x] in out:
                    sv = arc[a[i - 1]][x] + arc[x][a[i + 1]] - arc[a[i - 1]][a[i + 1]]
                    out[self.req[x]] += sv
        return out

    def loads(self, k: int, seq: Sequence[int]) -> list[tuple[int, ...]]:
        cur = self.init_load[k]
        out = [cur]
        for node in seq:
            cur = tuple(x + y for x, y in zip(cur, self.load[node]))
            out.append(cur)
        return out  # load after start, after each stop

    def cost(self, k: int, seq: Sequence[int]) -> int:
        a = [self.starts[k], *seq, self.ends[k]]
        arc = self.arc_l
        return sum(arc[a[i]][a[i + 1]] for i in range(len(a) - 1))

    def feasible(self, k: int, seq: tuple[int, ...]) -> bool:
        """Memoised exact feasibility of a stop sequence (schedule only, no arrays)."""
        key = (k, seq)
        data = self._cache.get(key, 0)
        if data != 0:
            return data is not None
        hit = self._feas.get(key)
        if hit is None:
            if len(self._feas) > 200000:
                self._feas.clear()
            hit = self._feas[key] = self.times(k, seq) is not None
        return hit

    def _route_data(self, k: int, seq: tuple[int, ...]):
        """Cached per-route arrays: nodes, least times, latest times, loads (or None)."""
        key = (k, seq)
        hit = self._cache.get(key)
        if hit is not None or key in self._cache:
            return hit
        if len(self._cache) > 20000:
            self._cache.clear()
        t = self.times(k, seq)
        if t is None:
            self._cache[key] = None
            return None
        arc = self.arc
        a = np.asarray((self.starts[k], *seq, self.ends[k]), dtype=np.int64)
        n = len(a) - 1
        svc = self.svc_arr[a]
        base = arc[a[:-1], a[1:]]
        step = (svc[:-1] + base).tolist()
        late = self.hi_arr[a].tolist()
        for i in range(n - 1, -1, -1):
            v = late[i + 1] - step[i]
            late[i] = min(late[i], v)
        lds = self.init_load_arr[k] + np.cumsum(self.load_arr[a[:-1]], axis=0)
        data = (
            a,
            np.asarray(t[:-1], dtype=np.int64) + svc[:-1],
            np.asarray(late[1:], dtype=np.int64),
            lds,
            base,
        )
        self._cache[key] = data
        return data

    def route_best(self, k: int, seq: tuple[int, ...], pn: int, dn: int, max_checks: int = 25):
        """Cheapest feasible insertion of pair (pn, dn) into route k: (delta, new seq) or None.

        Necessary conditions (windows against the route's earliest/latest times, the new
        rider's ride limit, capacity over the span) prune the positions; the survivors are
        tried cheapest first with the exact schedule until one is feasible."""
        key = (k, seq, pn)
        memo = self._best_cache
        if key in memo:
            return memo[key]
        if len(memo) > 200000:
            memo.clear()
        res = memo[key] = self._route_best(k, seq, pn, dn, max_checks)
        return res

    def _route_best(self, k: int, seq: tuple[int, ...], pn: int, dn: int, max_checks: int):
        lp = self.load[pn]
        cap = self.cap[k]
        if any(q > c for q, c in zip(lp, cap)):
            return None
        data = self._route_data(k, seq)
        if data is None:
            return None
        a, dep, late1, lds, base = data
        arc = self.arc
        a0, a1 = a[:-1], a[1:]
        svp, svd = self.svc[pn], self.svc[dn]
        to_p = arc[a0, pn]
        p_to = arc[pn, a1]
        arr_p = np.maximum(dep + to_p, self.lo[pn])
        ok_p = (arr_p <= self.hi[pn]) & (arr_p + (svp + p_to) <= late1)
        ip = np.flatnonzero(ok_p).tolist()
        if not ip:
            return None
        to_d = arc[a0, dn]
        d_to = arc[dn, a1]
        arr_d = np.maximum(dep + to_d, self.lo[dn])
        ok_d = (arr_d <= self.hi[dn]) & (arr_d + (svd + d_to) <= late1)
        jd = np.flatnonzero(ok_d).tolist()
        ride = self.ride[dn]
        pd = int(arc[pn, dn])
        hi_p, hi_d, lo_d = self.hi[pn], self.hi[dn], self.lo[dn]
        late_l = late1.tolist()
        dep_l = dep.tolist()
        arr_p_l, arr_d_l = arr_p.tolist(), arr_d.tolist()
        to_p_l, p_to_l, to_d_l, d_to_l, base_l = (
            to_p.tolist(),
            p_to.tolist(),
            to_d.tolist(),
            d_to.tolist(),
            base.tolist(),
        )
        # capacity: prefix count of positions where the new load does not fit
        fits = np.all(lds + np.asarray(lp) <= np.asarray(cap), axis=1)
        badpre = np.concatenate(([0], np.cumsum(~fits))).tolist()
        cands = []
        for i in ip:
            if badpre[i + 1] - badpre[i]:
                continue
            latest_p = min(hi_p, late_l[i] - svp - p_to_l[i])
            dpi = to_p_l[i] + p_to_l[i] - base_l[i]
            # drop-off right after the pickup
            lat_d = min(hi_d, late_l[i] - svd - d_to_l[i])
            lat_pp = min(hi_p, lat_d - svp - pd)
            if (
                lat_pp >= arr_p_l[i]
                and lo_d <= lat_d
                and svp + pd <= ride
                and lo_d - lat_pp <= ride
            ):
                cands.append((to_p_l[i] + pd + d_to_l[i] - base_l[i], i, i))
            for j in jd:
                if j <= i:
                    continue
                if badpre[j + 1] - badpre[i]:
                    break
                if dep_l[j] - latest_p > ride:  # departures only grow along the route
                    break
                if arr_d_l[j] - latest_p > ride:
                    continue
                cands.append((dpi + to_d_l[j] + d_to_l[j] - base_l[j], i, j))
        if not cands:
            return None
        cands.sort()
        for c, i, j in cands[:max_checks]:
            new = (*seq[:i], pn, *seq[i:j], dn, *seq[j:])
            if self.feasible(k, new):
                return c, new
        return None

    def recreate(
        self,
        routes: list[tuple[int, ...]],
        pending: list[str],
        nodes,
        rng,
        regret: int,
        noise: float,
    ):
        """Insert ``pending`` requests (regret-k; k=1 is greedy); returns (added cost, missing)."""
        table = {}
        for rid in pending:
            pn, dn = nodes.pickup_node[rid], nodes.dropoff_node[rid]
            table[rid] = [self.route_best(k, seq, pn, dn) for k, seq in enumerate(routes)]
        added = 0
        missing = []
        pending = list(pending)
        while pending:
            best_key, best_rid, best_choice = None, None, None
            for rid in pending:
                opts = sorted(
                    (c[0] * (1.0 + noise * rng.random()), k)
                    for k, c in enumerate(table[rid])
                    if c is not None
                )
                if not opts:
                    continue
                if regret <= 1:
                    key = opts[0][0]
                else:
                    far = opts[min(regret, len(opts)) - 1][0] if len(opts) > 1 else 1e18
                    key = -(far - opts[0][0]) if len(opts) >= regret else -1e18 + opts[0][0]
                if best_key is None or key < best_key:
                    best_key, best_rid, best_choice = key, rid, opts[0][1]
            if best_rid is None:
                missing.extend(pending)
                break
            assert best_choice is not None
            k = best_choice
            c, new = table[best_rid][k]
            routes[k] = new
            added += c
            pending.remove(best_rid)
            del table[best_rid]
            for rid in pending:
                table[rid][k] = self.route_best(
                    k, new, nodes.pickup_node[rid], nodes.dropoff_node[rid]
                )
        return added, missing


def _lns(built, current, current_cost, penalty, deadline, rng):
    """Ruin & recreate: Python removal + cheapest feasible re-insertion, OR-Tools local search
    as the periodic polisher. Returns (best routes, best cost)."""
    nodes = built.nodes
    p = built.problem
    manager = built.manager
    fast = _Fast(built)
    best, best_cost = current, current_cost
    n_req = len(built.optional)
    if n_req < 2:
        return best, best_cost
    info = {}
    for rid in built.optional:
        r = p.requests[rid]
        info[rid] = (
            r.pickup,
            r.dropoff,
            (r.pickup_window.earliest_s + r.dropoff_window.latest_s) // 2,
        )
    tt = p.travel_s
    it = 0
    accepted = improved = 0
    temp0 = TEMP * sum(fast.cost(k, r) for k, r in enumerate(current))
    t_begin = time.perf_counter()
    span = max(1e-3, deadline - t_begin)
    polish_every = 25
    current = [tuple(x) for x in current]
    best = current
    from collections import Counter

    stats: Counter = Counter()

    def mode_name(m):
        return (
            "shaw"
            if m < P_SHAW
            else "worst"
            if m < P_SHAW + P_WORST
            else "route"
            if m < P_SHAW + P_WORST + P_ROUTE
            else "rand"
        )

    while time.perf_counter() < deadline - 0.02:
        it += 1
        served = [nodes.request[n] for seq in current for n in seq if nodes.kind[n] == ort.PICKUP]
        served_set = set(served)
        unrouted = [rid for rid in built.optional if rid not in served_set]
        if not served and not unrouted:
            break
        q = rng.randint(2, max(3, min(int(n_req * QFRAC), QMAX)))
        mode = rng.random()
        if not served:  # nothing routed yet: just try to insert everything
            removed = set()
        elif mode < P_SHAW:  # related (Shaw) removal
            a = info[rng.choice(served)]

            def rel(rid, a=a):
                b = info[rid]
                return (tt[a[0], b[0]] + tt[a[1], b[1]] + abs(a[2] - b[2]) * 0.5) * (
                    0.7 + 0.6 * rng.random()
                )

            removed = set(sorted(served, key=rel)[:q])
        elif mode < P_SHAW + P_WORST:  # worst removal: requests whose stops cost most
            saving = fast.savings(current)
            ranked = sorted(saving, key=lambda rid: -saving[rid])
            removed = set()
            while len(removed) < q and ranked:
                pick = ranked[int(len(ranked) * rng.random() ** 4)]
                ranked.remove(pick)
                removed.add(pick)
        elif mode < P_SHAW + P_WORST + P_ROUTE:  # a whole short route
            used = [k for k, seq in enumerate(current) if seq]
            kk = min(rng.sample(used, min(2, len(used))), key=lambda k: len(current[k]))
            removed = {nodes.request[x] for x in current[kk] if nodes.request[x] in info}
        else:
            removed = set(rng.sample(served, min(q, len(served))))
        routes = [tuple(n for n in seq if nodes.request[n] not in removed) for seq in current]
        order = list(removed) + unrouted
        rng.shuffle(order)
        regret = rng.choice((1, 2, 2, 3))
        noise = rng.choice((0.0, 0.0, NOISE))
        _, missing = fast.recreate(routes, order, nodes, rng, regret, noise)
        cost = sum(fast.cost(k, r) for k, r in enumerate(routes)) + penalty * len(missing)
        stats[
            mode_name(mode) + ("_miss" if missing else ("_imp" if cost < current_cost else "_ok"))
        ] += 1
        if POLISH and (it % polish_every == 0 or (cost < best_cost and rng.random() < 0.1)):
            left = deadline - time.perf_counter()
            if left > 0.1:
                params = ort.search_parameters(min(left, 0.3), metaheuristic="greedy")
                res = ort.solve(
                    built,
                    params,
                    initial_routes=[[manager.NodeToIndex(x) for x in s] for s in routes],
                )
                if res.routes is not None:
                    c2 = _cost(built, res.routes, penalty)
                    if c2 <= cost:
                        routes, cost = [tuple(x) for x in res.routes], c2
        frac = (time.perf_counter() - t_begin) / span
        temp = temp0 * (0.01**frac) if frac < 0.97 else 0.0  # exponential cooling, then descent
        if cost < best_cost:
            best, best_cost = routes, cost
            improved += 1
        if cost < current_cost or (
            temp > 0 and rng.random() < math.exp(-(cost - current_cost) / temp)
        ):
            current, current_cost = routes, cost
            accepted += 1
    log.debug(
        "lns: %d iterations, %d accepted, %d improved, best %d %s",
        it,
        accepted,
        improved,
        best_cost,
        dict(stats),
    )
    return [list(x) for x in best], best_cost


def _relax_onboard(problem: Problem) -> Problem:
    """Same problem with the latest drop-off of every on-board rider opened to the shift end."""
    from dataclasses import replace

    from routing.model import TimeWindow

    reqs = dict(problem.requests)
    for v in problem.vehicles:
        for rid in v.onboard:
            r = reqs.get(rid)
            if r is None:
                continue
            reqs[rid] = replace(
                r,
                dropoff_window=TimeWindow(
                    r.dropoff_window.earliest_s, max(v.shift_end_s, r.dropoff_window.latest_s)
                ),
                max_ride_s=max(r.max_ride_s, v.shift_end_s),
            )
    return Problem(problem.vehicles, reqs, problem.travel_s)


def _extract(problem, timing, built, routes, unserved, promised, penalty) -> Solution:
    """Schedules (computed on ``timing``: the problem, or its on-board-relaxed copy),
    verification and unserved causes."""
    nodes = built.nodes
    out: list[Route] = []
    travel = 0
    served: set[str] = set()
    for k, seq in enumerate(routes):
        stops = ort.node_stops(built, seq)
        route = ort.scheduled_route(timing, k, stops)
        if route is None:
            # OR-Tools accepted it but our own scheduler cannot time it: drop the new requests
            # of this route one by one until it can be timed (on-board drop-offs stay).
            log.warning(
                "route %s could not be scheduled; dropping requests", problem.vehicles[k].id
            )
            keep = list(stops)
            for rid in [s.request_id for s in stops if s.kind == "pickup"][::-1]:
                keep = [s for s in keep if s.request_id != rid]
                unserved[rid] = UnservedCause.NO_FEASIBLE_INSERTION
                route = ort.scheduled_route(timing, k, keep)
                if route is not None:
                    break
            if route is None:
                route = ort.scheduled_route(timing, k, [s for s in keep if s.kind == "dropoff"])
            if route is None:
                continue
            stops = [s.stop for s in route.stops]
        if route.stops or problem.vehicles[k].onboard:
            out.append(route)
        travel += ort.route_travel(problem, k, stops)
        served.update(s.request_id for s in stops)
    for rid in problem.requests:
        if rid in served or rid in unserved:
            continue
        unserved[rid] = (
            UnservedCause.PROMISE_INFEASIBLE
            if rid in promised
            else UnservedCause.NO_FEASIBLE_INSERTION
        )
    del nodes
    return Solution(
        tuple(out),
        unserved,
        Objective(travel=travel, ride=0, unserved_penalty=penalty * len(unserved)),
    )
