"""Travel-time provider: numpy haversine matrix against geopy's ellipsoidal geodesic per pair.

Draws points around Okuma's two hubs (about 4 km apart), computes the full distance matrix once
with ``routing.traveltime.haversine_m`` (vectorised) and once pair by pair with
``geopy.distance.geodesic`` (WGS 84), and reports the speed ratio and the largest relative error.

Prints a short table, then as the last line one JSON object::

    {"points": n, "pairs": ..., "numpy_ms": ..., "geopy_ms": ..., "speedup": ...,
     "max_rel_error": ..., "max_abs_error_m": ...}

Run: ``.venv/bin/python bench/traveltime.py [--points 150]`` (geopy is in the dev extra).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from routing.traveltime import StraightLineTravelTimes, haversine_m

HUBS = ((37.380, 140.960), (37.409, 140.984))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=150)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    try:
        from geopy.distance import geodesic
    except ImportError:  # pragma: no cover - a setup problem, said plainly
        sys.exit("geopy is missing: .venv/bin/pip install geopy (it is in the dev extra)")

    rng = np.random.default_rng(args.seed)
    n = args.points
    hub = rng.integers(0, 2, size=n)
    centre = np.array(HUBS)[hub]
    lat = centre[:, 0] + rng.normal(0, 0.012, size=n)
    lon = centre[:, 1] + rng.normal(0, 0.015, size=n)

    best_np = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        hav = haversine_m(lat[:, None], lon[:, None], lat[None, :], lon[None, :])
        best_np = min(best_np, time.perf_counter() - t0)

    t0 = time.perf_counter()
    geo = np.zeros((n, n))
    pts = list(zip(lat.tolist(), lon.tolist()))
    for i in range(n):
        for j in range(i + 1, n):
            geo[i, j] = geo[j, i] = geodesic(pts[i], pts[j]).m
    t_geo = time.perf_counter() - t0
    pairs = n * (n - 1) // 2

    off = ~np.eye(n, dtype=bool)
    rel = np.abs(hav[off] - geo[off]) / geo[off]
    abs_err = np.abs(hav[off] - geo[off])

    provider = StraightLineTravelTimes(circuity=1.35, speed_kmh=30.0)
    t0 = time.perf_counter()
    provider.matrix(lat, lon)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    provider.matrix(lat.copy(), lon.copy())
    t_cached = time.perf_counter() - t0

    # geopy is timed on the upper triangle only (symmetric); numpy computes all n x n entries
    print(f"points {n}, pairs {pairs}, median distance {np.median(geo[off]):.0f} m")
    print(f"numpy haversine, full {n}x{n} matrix : {best_np * 1e3:9.3f} ms")
    print(f"geopy geodesic, {pairs} pairs        : {t_geo * 1e3:9.1f} ms")
    print(f"speed ratio                          : {t_geo / best_np:9.0f} x")
    print(f"max relative error haversine/geodesic: {rel.max():9.5f} ({rel.max() * 100:.3f} %)")
    print(f"max absolute error                   : {abs_err.max():9.2f} m")
    print(
        f"provider matrix first / cached       : {t_first * 1e3:.3f} ms / {t_cached * 1e3:.3f} ms"
    )
    print(
        json.dumps(
            {
                "points": n,
                "pairs": pairs,
                "numpy_ms": round(best_np * 1e3, 3),
                "geopy_ms": round(t_geo * 1e3, 1),
                "speedup": round(t_geo / best_np, 1),
                "max_rel_error": round(float(rel.max()), 6),
                "max_abs_error_m": round(float(abs_err.max()), 2),
            }
        )
    )


if __name__ == "__main__":
    main()
