"""Compiled ruin-and-recreate search: the improvement phase of :func:`routing.optimise.optimise`.

OR-Tools gives the first plan; this module then improves it by large neighbourhood search,
compiled with numba so that it runs tens of thousands of ruin-and-recreate iterations in the
time a Python loop needs for a few thousand (measured in ``docs/optimiser.md``).

The search works on *node sequences*, one per vehicle, over a flat node table:

* every request has one pickup node and one drop-off node; a rider already on board has only
  its drop-off node, which is pinned to its vehicle and never removed;
* every vehicle has a start node and an end node, which are not part of its sequence.

Per node: location-free arrays (travel between nodes ``arc``, service ``svc``, window
``lo``/``hi``, ``kind``, ``partner`` = the other node of the request, ``ride`` = at a drop-off,
the longest allowed pickup-start-to-drop-off-start time, i.e. maximum ride + pickup service),
and per vehicle: start/end node, capacity by dimension, load on board, maximum route duration.

One iteration: copy the current plan, *ruin* it (related, string, random, route or worst
removal), *recreate* it (regret-k or greedy-with-blinks insertion; each position is screened by
necessary conditions on the route's earliest departures, latest starts and loads, then proved
by the exact schedule below, cheapest first), then accept by simulated annealing.

Feasibility of a sequence is exact and decided by the one scheduler of the service,
``routing.schedule.least_times`` (compiled, called from here): all its rules are difference
constraints (travel, windows, ride limits, route duration), so repeatedly raising every start
time to its lower bound either reaches the least-time schedule or passes a latest time
(infeasible). The plan the search returns is timed again by ``routing.schedule.evaluate``, i.e.
by the same function.

Pinned pickups (``Vehicle.pinned``; ``Instance.pinned`` counts them per vehicle) have no request
index, so no ruin removes them, and no insertion goes before them: they stay first.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from numba import njit

from routing.schedule import least_times

PICK, DROP, OTHER = 0, 1, 2
INF = 1 << 60

#: ruin operators (index -> name, for the statistics)
OPERATORS = ("related", "string", "random", "route", "worst")


@dataclass
class Instance:
    """Flat arrays of one search (see the module docstring)."""

    arc: np.ndarray  # (N, N) int64
    svc: np.ndarray  # (N,) int64
    lo: np.ndarray  # (N,) int64
    hi: np.ndarray  # (N,) int64
    kind: np.ndarray  # (N,) int64: PICK / DROP / OTHER
    partner: np.ndarray  # (N,) int64, -1 = none
    ride: np.ndarray  # (N,) int64, at a drop-off with a pickup node
    load: np.ndarray  # (N, D) int64 (+ at the pickup, - at the drop-off)
    req_of: np.ndarray  # (N,) int64: request index of a removable node, -1 otherwise
    pick: np.ndarray  # (R,) int64
    drop: np.ndarray  # (R,) int64
    starts: np.ndarray  # (K,) int64
    ends: np.ndarray  # (K,) int64
    cap: np.ndarray  # (K, D) int64
    init_load: np.ndarray  # (K, D) int64
    dur: np.ndarray  # (K,) int64, -1 = no limit
    related: np.ndarray  # (R, R) int64: per request, the others from most to least related
    penalty: int  # cost of one unserved request
    pinned: np.ndarray | None = None  # (K,) int64: leading stops of each route that are fixed
    # the riders' term (docs/optimiser.md): per node, the weight at a rider's drop-off (0 elsewhere)
    # and that drop-off's earliest possible start; None: no term (the cost is travel only)
    rider_w: np.ndarray | None = None  # (N,) int64
    rider_due: np.ndarray | None = None  # (N,) int64

    def as_tuple(self):
        return (
            self.arc,
            self.svc,
            self.lo,
            self.hi,
            self.kind,
            self.partner,
            self.ride,
            self.load,
            self.starts,
            self.ends,
            self.cap,
            self.init_load,
            self.dur,
            np.zeros(len(self.starts), dtype=np.int64) if self.pinned is None else self.pinned,
            np.zeros(len(self.svc), dtype=np.int64) if self.rider_w is None else self.rider_w,
            np.zeros(len(self.svc), dtype=np.int64) if self.rider_due is None else self.rider_due,
            np.array([int(self.rider_w is not None and bool((self.rider_w > 0).any()))], dtype=np.int64),
        )


# ---------------------------------------------------------------------------------------------
# exact schedule


@njit(cache=True, nogil=True)
def _least_times(P, S, k, seq, m):
    """Least-time schedule of start + seq[:m] + end for vehicle k into ``S[0]`` by the one
    scheduler (``routing.schedule.least_times``); False if the sequence cannot be timed.
    ``S[1]`` receives the extended node sequence."""
    arc, svc, lo, hi, kind, partner, ride = P[0], P[1], P[2], P[3], P[4], P[5], P[6]
    starts, ends, dur = P[8], P[9], P[12]
    t, a, pos, stamp, tagc, rpi, rpj, rpl = S[0], S[1], S[2], S[3], S[4], S[5], S[6], S[7]
    step, plo, phi = S[22], S[23], S[24]
    big_m = m + 2
    a[0] = starts[k]
    for x in range(m):
        a[x + 1] = seq[x]
    a[big_m - 1] = ends[k]
    tagc[0] += 1
    tag = tagc[0]
    nr = 0
    for i in range(big_m):
        node = a[i]
        plo[i] = lo[node]
        phi[i] = hi[node]
        if i < big_m - 1:
            step[i] = svc[node] + arc[node, a[i + 1]]
        if i == 0 or i == big_m - 1:
            continue
        if kind[node] == PICK:
            pos[node] = i
            stamp[node] = tag
        elif kind[node] == DROP:
            pp = partner[node]
            if pp >= 0 and stamp[pp] == tag:
                rpi[nr] = pos[pp]
                rpj[nr] = i
                rpl[nr] = ride[node]
                nr += 1
    return least_times(big_m, step, plo, phi, nr, rpi, rpj, rpl, dur[k], t)


@njit(cache=True, nogil=True)
def _route_cost(P, k, seq, m):
    arc, starts, ends = P[0], P[8], P[9]
    prev = starts[k]
    c = 0
    for x in range(m):
        c += arc[prev, seq[x]]
        prev = seq[x]
    return c + arc[prev, ends[k]]


@njit(cache=True, nogil=True)
def _rider_cost(P, S, k, seq, m):
    """The riders' term of route k: sum over its riders' drop-offs of weight x (start of service
    in the least-time schedule - the earliest it could be). 0 when the instance has no term."""
    if P[16][0] == 0:
        return 0
    rw, due = P[14], P[15]
    has = False
    for x in range(m):
        if rw[seq[x]] > 0:
            has = True
            break
    if not has or not _least_times(P, S, k, seq, m):
        return 0
    t = S[0]
    c = 0
    for x in range(m):
        node = seq[x]
        if rw[node] > 0 and t[x + 1] > due[node]:
            c += rw[node] * (t[x + 1] - due[node])
    return c


@njit(cache=True, nogil=True)
def _route_data(P, S, k, seq, m, dep, late, lds):
    """Earliest departures, latest starts (windows only) and loads of route k; False if the
    route cannot be timed."""
    arc, svc, hi, load, init_load = P[0], P[1], P[3], P[7], P[11]
    t, a = S[0], S[1]
    if not _least_times(P, S, k, seq, m):
        return False
    big_m = m + 2
    for i in range(big_m - 1):
        dep[i] = t[i] + svc[a[i]]
    late[big_m - 1] = hi[a[big_m - 1]]
    for i in range(big_m - 2, -1, -1):
        v = late[i + 1] - svc[a[i]] - arc[a[i], a[i + 1]]
        late[i] = min(v, hi[a[i]])
    nd = load.shape[1]
    for d in range(nd):
        lds[0, d] = init_load[k, d]
    for i in range(1, big_m - 1):
        for d in range(nd):
            lds[i, d] = lds[i - 1, d] + load[a[i], d]
    return True


@njit(cache=True, nogil=True)
def _best_insert(P, S, k, seq, m, dep, late, lds, p, d, blink, max_checks):
    """Cheapest feasible insertion of pickup p / drop-off d into route k.

    Returns (delta cost, i, j): p goes after extended position i (0 = the start) and d after
    extended position j >= i of the original route (j == i: right after p). INF when none."""
    arc, svc, lo, hi, ride, load, starts, ends, cap = (
        P[0],
        P[1],
        P[2],
        P[3],
        P[6],
        P[7],
        P[8],
        P[9],
        P[10],
    )
    nd = load.shape[1]
    for x in range(nd):
        if load[p, x] > cap[k, x]:
            return INF, -1, -1
    a = S[8]
    big_m = m + 2
    a[0] = starts[k]
    for x in range(m):
        a[x + 1] = seq[x]
    a[big_m - 1] = ends[k]
    cc, ci, cj = S[9], S[10], S[11]
    nc = 0
    svp, svd = svc[p], svc[d]
    lim = ride[d]
    pd = arc[p, d]
    hi_p, hi_d, lo_d = hi[p], hi[d], lo[d]
    for i in range(P[13][k], big_m - 1):  # never before the pinned pickups
        ai, an = a[i], a[i + 1]
        arr_p = dep[i] + arc[ai, p]
        arr_p = max(arr_p, lo[p])
        if arr_p > hi_p:
            continue
        fits = True
        for x in range(nd):
            if lds[i, x] + load[p, x] > cap[k, x]:
                fits = False
        if not fits:
            continue
        base_i = arc[ai, an]
        # drop-off right after the pickup
        arr_d = arr_p + svp + pd
        arr_d = max(arr_d, lo_d)
        if arr_d <= hi_d and arr_d + svd + arc[d, an] <= late[i + 1] and svp + pd <= lim:
            lat_d = late[i + 1] - svd - arc[d, an]
            lat_d = min(lat_d, hi_d)
            lat_p = lat_d - svp - pd
            lat_p = min(lat_p, hi_p)
            if (
                lat_p >= arr_p
                and lo_d - lat_p <= lim
                and (blink <= 0.0 or np.random.random() >= blink)
            ):
                cc[nc] = arc[ai, p] + pd + arc[d, an] - base_i
                ci[nc] = i
                cj[nc] = i
                nc += 1
        if arr_p + svp + arc[p, an] > late[i + 1]:
            continue
        latest_p = late[i + 1] - svp - arc[p, an]
        latest_p = min(latest_p, hi_p)
        dpi = arc[ai, p] + arc[p, an] - base_i
        for j in range(i + 1, big_m - 1):
            # the new load rides over stop j
            ok = True
            for x in range(nd):
                if lds[j, x] + load[p, x] > cap[k, x]:
                    ok = False
            if not ok:
                break
            if dep[j] - latest_p > lim:  # departures only grow along the route
                break
            aj, bj = a[j], a[j + 1]
            arr_d = dep[j] + arc[aj, d]
            arr_d = max(arr_d, lo_d)
            if arr_d > hi_d or arr_d - latest_p > lim:
                continue
            if arr_d + svd + arc[d, bj] > late[j + 1]:
                continue
            if blink > 0.0 and np.random.random() < blink:
                continue
            cc[nc] = dpi + arc[aj, d] + arc[d, bj] - arc[aj, bj]
            ci[nc] = i
            cj[nc] = j
            nc += 1
    if nc == 0:
        return INF, -1, -1
    order = np.argsort(cc[:nc], kind="mergesort")
    new = S[12]
    for checks, o in enumerate(order):
        if checks >= max_checks:
            break
        i, j = ci[o], cj[o]
        _splice(seq, m, i, j, p, d, new)
        if _least_times(P, S, k, new, m + 2):
            return cc[o], i, j
    return INF, -1, -1


@njit(cache=True, nogil=True)
def _splice(seq, m, i, j, p, d, out):
    """out = seq[:i] + [p] + seq[i:j] + [d] + seq[j:]"""
    w = 0
    for x in range(i):
        out[w] = seq[x]
        w += 1
    out[w] = p
    w += 1
    for x in range(i, j):
        out[w] = seq[x]
        w += 1
    out[w] = d
    w += 1
    for x in range(j, m):
        out[w] = seq[x]
        w += 1


# ---------------------------------------------------------------------------------------------
# recreate


@njit(cache=True, nogil=True)
def _refresh(P, S, W, wl, k, dep, late, lds, okr):
    okr[k] = _route_data(P, S, k, W[k], wl[k], dep[k], late[k], lds[k])


@njit(cache=True, nogil=True)
def _best_in(P, S, W, wl, dep, late, lds, okr, k, p, d, blink, max_checks):
    """``_best_insert`` into route k of the plan W, with its cached route data; INF when the
    route cannot be timed."""
    if not okr[k]:
        return INF, -1, -1
    return _best_insert(P, S, k, W[k], wl[k], dep[k], late[k], lds[k], p, d, blink, max_checks)


@njit(cache=True, nogil=True)
def _place(P, S, W, wl, dep, late, lds, okr, k, i, j, p, d):
    """Insert p after position i and d after position j of route k; refresh its data."""
    new = S[12]
    _splice(W[k], wl[k], i, j, p, d, new)
    wl[k] += 2
    for y in range(wl[k]):
        W[k, y] = new[y]
    _refresh(P, S, W, wl, k, dep, late, lds, okr)


@njit(cache=True, nogil=True)
def _eject_insert(P, S, W, wl, r, pick, drop, req_of, fails, max_checks, buf):
    """Fit request r, which fits nowhere as the plan stands, by taking out one request that
    failed to fit less often than r (guided ejection, for tight fleets); the cheapest such swap
    is applied. Returns the request taken out, or -1."""
    kind = P[4]
    tmp, best_seq, tdep, tlate, tlds = buf
    best_c, best_k, best_u, best_len = INF, -1, -1, 0
    for k in range(W.shape[0]):
        m = wl[k]
        full = _route_cost(P, k, W[k], m)
        for x in range(m):
            node = W[k, x]
            u = req_of[node]
            if u < 0 or kind[node] != PICK or fails[u] >= fails[r]:
                continue
            w = 0
            for y in range(m):
                if req_of[W[k, y]] != u:
                    tmp[w] = W[k, y]
                    w += 1
            if not _route_data(P, S, k, tmp, w, tdep, tlate, tlds):
                continue
            c, i, j = _best_insert(
                P, S, k, tmp, w, tdep, tlate, tlds, pick[r], drop[r], 0.0, max_checks
            )
            if c >= INF:
                continue
            c += _route_cost(P, k, tmp, w) - full
            if c < best_c:
                best_c, best_k, best_u, best_len = c, k, u, w + 2
                _splice(tmp, w, i, j, pick[r], drop[r], best_seq)
    if best_k >= 0:
        for y in range(best_len):
            W[best_k, y] = best_seq[y]
        wl[best_k] = best_len
    return best_u


@njit(cache=True, nogil=True)
def _route_holding(W, wl, node):
    """The route whose sequence holds ``node`` (-1 if none)."""
    for k in range(W.shape[0]):
        for x in range(wl[k]):
            if W[k, x] == node:
                return k
    return -1


@njit(cache=True, nogil=True)
def _insert_all(
    P, S, W, wl, pending, npend, pick, drop, mode, regret, noise, blink, max_checks, req_of, fails
):
    """Insert the pending requests; returns (how many could not be inserted, new pending count).

    In greedy mode a request that fits nowhere may take the place of one that failed less
    often (``_eject_insert``); the request taken out joins the end of ``pending``, as long as
    ``pending`` has room (one ejection per slot beyond ``npend``; no ejection after that)."""
    n_k = W.shape[0]
    dep, late, lds, okr = S[13], S[14], S[15], S[16]
    for k in range(n_k):
        _refresh(P, S, W, wl, k, dep, late, lds, okr)
    missing = 0
    if mode == 0:
        # greedy in the given order, each to its cheapest route (with blinks)
        buf = (
            np.empty(W.shape[1] + 2, dtype=np.int64),
            np.empty(W.shape[1] + 2, dtype=np.int64),
            np.empty(W.shape[1] + 2, dtype=np.int64),
            np.empty(W.shape[1] + 2, dtype=np.int64),
            np.empty((W.shape[1] + 2, lds.shape[2]), dtype=np.int64),
        )
        x = -1
        while x + 1 < npend:
            x += 1
            r = pending[x]
            best, bk, bi, bj = INF, -1, -1, -1
            for k in range(n_k):
                c, i, j = _best_in(
                    P, S, W, wl, dep, late, lds, okr, k, pick[r], drop[r], blink, max_checks
                )
                if c < best:
                    best, bk, bi, bj = c, k, i, j
            if bk < 0:
                # the request taken out is appended to ``pending``: never past its end (the
                # caller sizes it for one ejection per request), which also bounds the work
                u = -1
                if npend < pending.shape[0]:
                    u = _eject_insert(P, S, W, wl, r, pick, drop, req_of, fails, max_checks, buf)
                if u < 0:
                    missing += 1
                    continue
                pending[npend] = u
                npend += 1
                _refresh(P, S, W, wl, _route_holding(W, wl, pick[r]), dep, late, lds, okr)
                continue
            _place(P, S, W, wl, dep, late, lds, okr, bk, bi, bj, pick[r], drop[r])
        return missing, npend
    # regret-k with a table of per-route best insertions
    bc, bi_t, bj_t = S[17], S[18], S[19]
    for x in range(npend):
        r = pending[x]
        for k in range(n_k):
            bc[x, k], bi_t[x, k], bj_t[x, k] = _best_in(
                P, S, W, wl, dep, late, lds, okr, k, pick[r], drop[r], 0.0, max_checks
            )
    alive = S[20]
    for x in range(npend):
        alive[x] = True
    left = npend
    vals = S[21]
    while left > 0:
        best_key = np.inf
        bx = -1
        bk = -1
        for x in range(npend):
            if not alive[x]:
                continue
            nv = 0
            for k in range(n_k):
                if bc[x, k] < INF:
                    f = 1.0 + noise * np.random.random() if noise > 0.0 else 1.0
                    vals[nv] = bc[x, k] * f
                    nv += 1
            if nv == 0:
                continue
            srt = np.sort(vals[:nv])
            if regret <= 1:
                key = srt[0]
            elif nv >= regret:
                key = -(srt[regret - 1] - srt[0])
            else:
                key = -1e30 + srt[0]  # few options left: insert first
            if key < best_key:
                best_key = key
                bx = x
        if bx < 0:
            break
        # its cheapest route
        c0 = INF
        for k in range(n_k):
            if bc[bx, k] < c0:
                c0 = bc[bx, k]
                bk = k
        r = pending[bx]
        _place(P, S, W, wl, dep, late, lds, okr, bk, bi_t[bx, bk], bj_t[bx, bk], pick[r], drop[r])
        alive[bx] = False
        left -= 1
        for x in range(npend):
            if alive[x]:
                q = pending[x]
                bc[x, bk], bi_t[x, bk], bj_t[x, bk] = _best_in(
                    P, S, W, wl, dep, late, lds, okr, bk, pick[q], drop[q], 0.0, max_checks
                )
    for x in range(npend):
        if alive[x]:
            missing += 1
    return missing, npend


# ---------------------------------------------------------------------------------------------
# ruin


@njit(cache=True, nogil=True)
def _locate(P, W, wl, req_of, route_of, at):
    """route_of[r] / at[r] = route and position of request r's pickup (or -1)."""
    kind = P[4]
    route_of[:] = -1
    for k in range(W.shape[0]):
        for x in range(wl[k]):
            node = W[k, x]
            r = req_of[node]
            if r >= 0 and kind[node] == PICK:
                route_of[r] = k
                at[r] = x


@njit(cache=True, nogil=True)
def _ruin(P, W, wl, req_of, related, route_of, at, removed, op, q, served, n_served, max_str):
    """Mark up to q served requests as removed; returns how many."""
    arc, starts, ends = P[0], P[8], P[9]
    n_k = W.shape[0]
    count = 0
    if op == 0:  # related (Shaw) removal, randomised walk over the seed's neighbours
        s = served[np.random.randint(n_served)]
        removed[s] = True
        count = 1
        row = related[s]
        for y in range(row.shape[0]):
            if count >= q:
                break
            r = row[y]
            if route_of[r] >= 0 and not removed[r] and np.random.random() < 0.75:
                removed[r] = True
                count += 1
    elif op == 1:  # strings of consecutive stops around the seed's neighbours (SISR-like)
        s = served[np.random.randint(n_served)]
        n_used = 0
        for k in range(n_k):
            if wl[k] > 0:
                n_used += 1
        k_max = 1 + np.random.randint(min(3, n_used))
        ruined = np.zeros(n_k, dtype=np.bool_)
        n_ruined = 0
        row = related[s]
        for y in range(-1, row.shape[0]):
            r = s if y < 0 else row[y]
            k = route_of[r]
            if k < 0 or ruined[k]:
                continue
            ruined[k] = True
            n_ruined += 1
            length = 1 + np.random.randint(min(max_str, wl[k]))
            first = at[r] - np.random.randint(length)
            first = max(first, 0)
            if first + length > wl[k]:
                first = wl[k] - length
            for x in range(first, first + length):
                rr = req_of[W[k, x]]
                if rr >= 0 and not removed[rr]:
                    removed[rr] = True
                    count += 1
            if n_ruined >= k_max or count >= q:
                break
    elif op == 2:  # random
        for x in range(n_served):
            if count >= q:
                break
            # selection sampling: each of the remaining with the right probability
            if np.random.random() * (n_served - x) < q - count:
                removed[served[x]] = True
                count += 1
    elif op == 3:  # a whole short route (the shorter of two sampled used routes)
        k1 = -1
        for _ in range(2):
            k = np.random.randint(n_k)
            for _ in range(n_k):
                if wl[k] > 0:
                    break
                k = (k + 1) % n_k
            if wl[k] > 0 and (k1 < 0 or wl[k] < wl[k1]):
                k1 = k
        if k1 >= 0:
            for x in range(wl[k1]):
                rr = req_of[W[k1, x]]
                if rr >= 0 and not removed[rr]:
                    removed[rr] = True
                    count += 1
    else:  # worst: requests whose two stops cost most, rank drawn with a bias to the top
        save = np.zeros(related.shape[0], dtype=np.float64)
        for k in range(n_k):
            m = wl[k]
            for x in range(m):
                node = W[k, x]
                r = req_of[node]
                if r < 0:
                    continue
                prev = starts[k] if x == 0 else W[k, x - 1]
                nxt = ends[k] if x == m - 1 else W[k, x + 1]
                save[r] += arc[prev, node] + arc[node, nxt] - arc[prev, nxt]
        keys = np.empty(n_served, dtype=np.float64)
        for z in range(n_served):
            keys[z] = -save[served[z]]
        order = np.argsort(keys)
        left = n_served
        while count < q and left > 0:
            z = int(left * np.random.random() ** 4)
            # the z-th request of the ranking not taken yet
            for y in range(n_served):
                r = served[order[y]]
                if removed[r]:
                    continue
                if z == 0:
                    removed[r] = True
                    count += 1
                    left -= 1
                    break
                z -= 1
    return count


@njit(cache=True, nogil=True)
def _filter(P, W, wl, req_of, removed):
    for k in range(W.shape[0]):
        w = 0
        for x in range(wl[k]):
            r = req_of[W[k, x]]
            if r >= 0 and removed[r]:
                continue
            W[k, w] = W[k, x]
            w += 1
        wl[k] = w


@njit(cache=True, nogil=True)
def _plan_cost(P, S, W, wl, n_missing, penalty):
    """Travel of every vehicle from its start to its end (an idle one still drives start -> end,
    as in OR-Tools and ``routing.model.route_travel_s``), plus the riders' term (``_rider_cost``,
    0 without it), plus the unserved penalties."""
    c = 0
    for k in range(W.shape[0]):
        c += _route_cost(P, k, W[k], wl[k]) + _rider_cost(P, S, k, W[k], wl[k])
    return c + n_missing * penalty


@njit(cache=True, nogil=True)
def _seed(seed):
    np.random.seed(seed)


@njit(cache=True, nogil=True)
def _run(
    P,
    S,
    req_of,
    pick,
    drop,
    related,
    penalty,
    cur,
    cur_len,
    best,
    best_len,
    state,
    iters,
    temp,
    q_max,
    max_str,
    weights,
    stats,
    max_checks,
    q_min,
    blink_rate,
    fails,
):
    """``iters`` iterations of ruin, recreate and annealing acceptance at temperature ``temp``.

    ``state`` = [current cost, best cost, current missing, best missing]."""
    n_k = cur.shape[0]
    n_r = pick.shape[0]
    W = np.empty_like(cur)
    wl = np.empty_like(cur_len)
    route_of = np.empty(n_r, dtype=np.int64)
    at = np.empty(n_r, dtype=np.int64)
    removed = np.zeros(n_r, dtype=np.bool_)
    served = np.empty(n_r, dtype=np.int64)
    # the pending requests, then (greedy mode) those taken out by guided ejection: at most
    # n_r of each
    pending = np.empty(2 * n_r, dtype=np.int64)
    cum = np.cumsum(weights)
    for _ in range(iters):
        for k in range(n_k):
            wl[k] = cur_len[k]
            for x in range(cur_len[k]):
                W[k, x] = cur[k, x]
        _locate(P, W, wl, req_of, route_of, at)
        n_served = 0
        for r in range(n_r):
            removed[r] = False
            if route_of[r] >= 0:
                served[n_served] = r
                n_served += 1
        q = 0
        op = 0
        if n_served > 0:
            upper = min(q_max, max(q_min, n_served // 2))
            q = q_min + np.random.randint(max(1, upper - q_min + 1))
            u = np.random.random() * cum[-1]
            op = 0
            while op < len(cum) - 1 and u >= cum[op]:
                op += 1
            _ruin(
                P, W, wl, req_of, related, route_of, at, removed, op, q, served, n_served, max_str
            )
            _filter(P, W, wl, req_of, removed)
        npend = 0
        for r in range(n_r):
            if removed[r] or route_of[r] < 0:
                pending[npend] = r
                npend += 1
        # order of the pending requests: random, earliest window first, longest trip first, or
        # the ones that failed to fit most often first (ties random)
        order_mode = np.random.randint(4)
        if order_mode == 0 or order_mode == 3:
            for x in range(npend - 1, 0, -1):
                y = np.random.randint(x + 1)
                pending[x], pending[y] = pending[y], pending[x]
        if order_mode != 0:
            keys = np.empty(npend, dtype=np.int64)
            for x in range(npend):
                r = pending[x]
                if order_mode == 1:
                    keys[x] = P[2][pick[r]]
                elif order_mode == 2:
                    keys[x] = -P[0][pick[r], drop[r]]
                else:
                    keys[x] = -fails[r]
            # ties: kept in the shuffled order for the fail counts, as argsort leaves them else
            o = np.argsort(keys, kind="mergesort") if order_mode == 3 else np.argsort(keys)
            pending[:npend] = pending[:npend][o]
        u = np.random.random()
        if u < 0.5:
            mode, regret, noise, blink = 0, 1, 0.0, blink_rate
        elif u < 0.65:
            mode, regret, noise, blink = 1, 1, 0.0, 0.0
        elif u < 0.9:
            mode, regret, noise, blink = 1, 2, 0.0, 0.0
        else:
            mode, regret, noise, blink = 1, 3, 0.05, 0.0
        missing, npend = _insert_all(
            P,
            S,
            W,
            wl,
            pending,
            npend,
            pick,
            drop,
            mode,
            regret,
            noise,
            blink,
            max_checks,
            req_of,
            fails,
        )
        if missing > 0:
            # (over the requests, not ``pending``, which may name a request twice)
            _locate(P, W, wl, req_of, route_of, at)
            for r in range(n_r):
                if route_of[r] < 0:
                    fails[r] += 1
        cost = _plan_cost(P, S, W, wl, missing, penalty)
        stats[op, 0] += 1
        if cost < state[0]:
            stats[op, 1] += 1
        accept = cost <= state[0]
        if not accept and temp > 0.0:
            accept = np.random.random() < math.exp(-(cost - state[0]) / temp)
        if accept:
            for k in range(n_k):
                cur_len[k] = wl[k]
                for x in range(wl[k]):
                    cur[k, x] = W[k, x]
            state[0] = cost
            state[2] = missing
            if cost < state[1]:
                state[1] = cost
                state[3] = missing
                stats[op, 2] += 1
                for k in range(n_k):
                    best_len[k] = wl[k]
                    for x in range(wl[k]):
                        best[k, x] = W[k, x]


def _scratch(n_nodes: int, n_k: int, n_r: int, max_len: int, dims: int):
    big = max_len + 2
    return (
        np.zeros(big + 2, dtype=np.int64),  # 0 t
        np.zeros(big + 2, dtype=np.int64),  # 1 a (times)
        np.zeros(n_nodes, dtype=np.int64),  # 2 pos
        np.zeros(n_nodes, dtype=np.int64),  # 3 stamp
        np.zeros(1, dtype=np.int64),  # 4 tag counter
        np.zeros(big, dtype=np.int64),  # 5 rpi
        np.zeros(big, dtype=np.int64),  # 6 rpj
        np.zeros(big, dtype=np.int64),  # 7 rpl
        np.zeros(big + 2, dtype=np.int64),  # 8 a (insertion)
        np.zeros(big * big, dtype=np.int64),  # 9 candidate costs
        np.zeros(big * big, dtype=np.int64),  # 10 candidate i
        np.zeros(big * big, dtype=np.int64),  # 11 candidate j
        np.zeros(big + 2, dtype=np.int64),  # 12 spliced sequence
        np.zeros((n_k, big + 2), dtype=np.int64),  # 13 dep
        np.zeros((n_k, big + 2), dtype=np.int64),  # 14 late
        np.zeros((n_k, big + 2, dims), dtype=np.int64),  # 15 loads
        np.zeros(n_k, dtype=np.bool_),  # 16 route timed
        np.zeros((max(n_r, 1), n_k), dtype=np.int64),  # 17 regret table cost
        np.zeros((max(n_r, 1), n_k), dtype=np.int64),  # 18 i
        np.zeros((max(n_r, 1), n_k), dtype=np.int64),  # 19 j
        np.zeros(max(n_r, 1), dtype=np.bool_),  # 20 alive
        np.zeros(n_k, dtype=np.float64),  # 21 values
        np.zeros(big + 2, dtype=np.int64),  # 22 step (service + travel) per position
        np.zeros(big + 2, dtype=np.int64),  # 23 earliest per position
        np.zeros(big + 2, dtype=np.int64),  # 24 latest per position
    )


@dataclass
class Result:
    routes: list[list[int]]
    cost: int
    missing: int
    iterations: int
    stats: dict[str, tuple[int, int, int]]
    start_cost: int = 0  # the cost of the plan the search started from, on the same objective


def improve(
    inst: Instance,
    routes: list[list[int]],
    *,
    deadline: float,
    seed: int = 0,
    max_iterations: int | None = None,
    temp_start: float = 0.3,
    temp_end: float = 0.003,
    q_max: int = 30,
    max_string: int = 10,
    weights: tuple[float, ...] = (0.3, 0.3, 0.15, 0.1, 0.15),
    max_checks: int = 40,
    q_min: int = 1,
    blink_rate: float = 0.02,
    cycles: int = 6,
) -> Result:
    """Improve ``routes`` (node sequences per vehicle) until ``deadline`` (``time.perf_counter``
    value) or ``max_iterations``; return the best plan found.

    The annealing temperature falls exponentially from ``temp_start`` to ``temp_end``, both
    as a fraction of the first plan's travel per served request, over the budget; the last 3 %
    is pure descent. With ``max_iterations`` the schedule follows the
    iteration count instead of the clock, and the same seed gives the same result.
    """
    n_k = len(inst.starts)
    n_r = len(inst.pick)
    max_len = 2 * n_r + int((inst.kind == DROP).sum())
    # one set of argument types, so the compiled (and cached) code is always reused
    P = tuple(np.ascontiguousarray(x, dtype=np.int64) for x in inst.as_tuple())
    req_of, pick, drop, related = (
        np.ascontiguousarray(x, dtype=np.int64)
        for x in (inst.req_of, inst.pick, inst.drop, inst.related)
    )
    S = _scratch(len(inst.svc), n_k, n_r, max_len, inst.load.shape[1])
    cur = np.zeros((n_k, max_len + 2), dtype=np.int64)
    cur_len = np.zeros(n_k, dtype=np.int64)
    served: set[int] = set()
    for k, seq in enumerate(routes):
        cur_len[k] = len(seq)
        cur[k, : len(seq)] = seq
        served.update(int(inst.req_of[x]) for x in seq if inst.req_of[x] >= 0)
    missing = n_r - len(served)
    cost0 = int(_plan_cost(P, S, cur, cur_len, int(missing), int(inst.penalty)))
    best = cur.copy()
    best_len = cur_len.copy()
    state = np.array([cost0, cost0, missing, missing], dtype=np.int64)
    stats = np.zeros((len(OPERATORS), 3), dtype=np.int64)
    fails = np.zeros(n_r, dtype=np.int64)  # per request: recreate steps it could not fit
    w = np.asarray(weights, dtype=np.float64)
    _seed(int(seed))
    if n_r == 0:
        return Result([list(x) for x in routes], cost0, missing, 0, {}, cost0)
    travel0 = cost0 - missing * inst.penalty
    scale = max(1.0, travel0 / max(1, n_r - missing))  # travel per served request
    t_begin = time.perf_counter()
    span = max(1e-3, deadline - t_begin)
    chunk = 20
    done = 0
    last_cycle = -1
    while True:
        if max_iterations is not None:
            frac = done / max(1, max_iterations)
            if done >= max_iterations:
                break
        else:
            now = time.perf_counter()
            if now >= deadline:
                break
            frac = (now - t_begin) / span
        # annealing in ``cycles`` rounds; each later round starts again from the best plan
        cycle = min(int(frac * cycles), cycles - 1)
        if cycle != last_cycle:
            if last_cycle >= 0:
                cur[:] = best
                cur_len[:] = best_len
                state[0], state[2] = state[1], state[3]
            last_cycle = cycle
        f = frac * cycles - cycle
        temp = 0.0 if f >= 0.97 else scale * temp_start * (temp_end / temp_start) ** f
        n = chunk if max_iterations is None else min(chunk, max_iterations - done)
        t0 = time.perf_counter()
        _run(
            P,
            S,
            req_of,
            pick,
            drop,
            related,
            int(inst.penalty),
            cur,
            cur_len,
            best,
            best_len,
            state,
            int(n),
            float(temp),
            int(q_max),
            int(max_string),
            w,
            stats,
            int(max_checks),
            int(q_min),
            float(blink_rate),
            fails,
        )
        done += n
        el = time.perf_counter() - t0
        if max_iterations is None:
            # aim for ~20 ms per call so the deadline is kept
            chunk = int(max(1, min(chunk * 2, n * 0.02 / max(el, 1e-6))))
            left = deadline - time.perf_counter()
            if el > 0 and left > 0:
                chunk = max(1, min(chunk, int(n * left / el)))
    out = [list(map(int, best[k, : best_len[k]])) for k in range(n_k)]
    st = {
        name: (int(stats[i, 0]), int(stats[i, 1]), int(stats[i, 2]))
        for i, name in enumerate(OPERATORS)
    }
    return Result(out, int(state[1]), int(state[3]), done, st, cost0)


def warm_up() -> float:
    """Compile (or load from numba's on-disk cache) every function of the search on a tiny
    instance; returns the seconds it took. The service calls it before its first re-plan so
    that no budget is spent compiling; ``python -m routing.lns`` does the same at install."""
    t0 = time.perf_counter()
    n = 6  # start, end, two requests
    arc = np.array([[0, 10, 0, 10, 20, 20]] * 6, dtype=np.int64)  # any non-negative matrix will do
    inst = Instance(
        arc=arc,
        svc=np.zeros(n, dtype=np.int64),
        lo=np.zeros(n, dtype=np.int64),
        hi=np.full(n, 1000, dtype=np.int64),
        kind=np.array([OTHER, OTHER, PICK, DROP, PICK, DROP], dtype=np.int64),
        partner=np.array([-1, -1, 3, 2, 5, 4], dtype=np.int64),
        ride=np.array([0, 0, 0, 500, 0, 500], dtype=np.int64),
        load=np.array(
            [[0, 0, 0], [0, 0, 0], [1, 0, 0], [-1, 0, 0], [1, 0, 0], [-1, 0, 0]], dtype=np.int64
        ),
        req_of=np.array([-1, -1, 0, 0, 1, 1], dtype=np.int64),
        pick=np.array([2, 4], dtype=np.int64),
        drop=np.array([3, 5], dtype=np.int64),
        starts=np.array([0], dtype=np.int64),
        ends=np.array([1], dtype=np.int64),
        cap=np.array([[2, 0, 0]], dtype=np.int64),
        init_load=np.zeros((1, 3), dtype=np.int64),
        dur=np.array([-1], dtype=np.int64),
        related=np.array([[1], [0]], dtype=np.int64),
        penalty=10_000,
    )
    improve(inst, [[2, 3, 4, 5]], deadline=time.perf_counter() + 60, max_iterations=50)
    return time.perf_counter() - t0


if __name__ == "__main__":
    print(f"routing.lns compiled and cached in {warm_up():.1f} s")
