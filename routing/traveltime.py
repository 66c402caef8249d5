"""Travel times between points, behind a small provider interface.

The planner only ever sees an integer matrix ``travel_s[i, j]`` (seconds from point i to point j).
Where it comes from is a provider's business:

* :class:`StraightLineTravelTimes` (the default): great-circle (haversine) distance multiplied by a
  circuity factor (roads are longer than the straight line) and divided by a speed. Good enough for
  a small town such as Okuma, where the road network is sparse but direct; the two parameters live
  in the service rules.
* a road-network engine (OSRM, Valhalla) can implement the same :class:`TravelTimeProvider`
  protocol later; nothing in ``routing/`` needs to change.

Units: degrees in, integer seconds and integer metres out (converted once, here).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

#: Mean Earth radius (IUGG), metres.
EARTH_RADIUS_M: float = 6_371_008.8


@runtime_checkable
class TravelTimeProvider(Protocol):
    """Anything that turns a list of points into an integer travel-time matrix."""

    def matrix(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Travel times between all points.

        Parameters
        ----------
        lat, lon:
            1-D arrays of the same length ``n``, degrees (WGS 84).

        Returns
        -------
        np.ndarray
            ``(n, n)`` ``int64`` array; entry ``[i, j]`` is the travel time in seconds from point
            ``i`` to point ``j``. The diagonal is zero.
        """
        ...


def haversine_m(
    lat1: np.ndarray | float,
    lon1: np.ndarray | float,
    lat2: np.ndarray | float,
    lon2: np.ndarray | float,
) -> np.ndarray:
    """Great-circle distance in metres (float), vectorised with numpy broadcasting.

    Parameters
    ----------
    lat1, lon1, lat2, lon2:
        Degrees; scalars or arrays that broadcast against each other (e.g. a column ``(n, 1)``
        against a row ``(1, n)`` gives the full ``(n, n)`` matrix).

    Returns
    -------
    np.ndarray
        Distances in metres on a sphere of radius :data:`EARTH_RADIUS_M`. At town scale (a few
        km) the difference to the ellipsoidal geodesic is a fraction of a percent.
    """
    p1 = np.radians(np.asarray(lat1, dtype=np.float64))
    p2 = np.radians(np.asarray(lat2, dtype=np.float64))
    dphi = p2 - p1
    dlmb = np.radians(np.asarray(lon2, dtype=np.float64) - np.asarray(lon1, dtype=np.float64))
    a = np.sin(dphi * 0.5) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb * 0.5) ** 2
    # clip guards against a tiny rounding excess over 1 for antipodal points
    return 2.0 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def _check_points(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lat_a = np.ascontiguousarray(lat, dtype=np.float64)
    lon_a = np.ascontiguousarray(lon, dtype=np.float64)
    if lat_a.ndim != 1 or lon_a.ndim != 1 or lat_a.shape != lon_a.shape:
        raise ValueError(
            f"lat and lon must be 1-D of equal length, got {lat_a.shape}, {lon_a.shape}"
        )
    if not (np.all(np.isfinite(lat_a)) and np.all(np.isfinite(lon_a))):
        raise ValueError("lat/lon must be finite")
    if np.any(np.abs(lat_a) > 90.0) or np.any(np.abs(lon_a) > 180.0):
        raise ValueError("lat must be within [-90, 90] and lon within [-180, 180]")
    return lat_a, lon_a


@dataclass(frozen=True)
class StraightLineTravelTimes:
    """Default provider: haversine distance x ``circuity`` / ``speed_kmh``, integer seconds.

    Parameters
    ----------
    circuity:
        Road distance over straight-line distance, >= 1 (1.3 to 1.4 is typical for a rural
        Japanese town).
    speed_kmh:
        Average door-to-door driving speed, km/h, > 0.
    min_s:
        Smallest travel time between two *different* points, seconds (e.g. to account for pulling
        out and parking even when two stops are a few metres apart). The diagonal stays 0.
    cache_size:
        How many recent matrices to keep, keyed on the exact bytes of the coordinate arrays.

    Matrices are rounded to the nearest second (metres to the nearest metre) and returned
    read-only, because they may be shared through the cache.
    """

    circuity: float
    speed_kmh: float
    min_s: int = 0
    cache_size: int = 8
    _cache: OrderedDict[tuple[bytes, bytes], tuple[np.ndarray, np.ndarray]] = field(
        default_factory=OrderedDict, init=False, repr=False, compare=False
    )
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not (math.isfinite(self.circuity) and self.circuity >= 1.0):
            raise ValueError(f"circuity must be a finite number >= 1, got {self.circuity!r}")
        if not (math.isfinite(self.speed_kmh) and self.speed_kmh > 0.0):
            raise ValueError(f"speed_kmh must be a finite number > 0, got {self.speed_kmh!r}")
        if not isinstance(self.min_s, int) or self.min_s < 0:
            raise ValueError(f"min_s must be an int >= 0, got {self.min_s!r}")
        if not isinstance(self.cache_size, int) or self.cache_size < 0:
            raise ValueError(f"cache_size must be an int >= 0, got {self.cache_size!r}")

    # -- public API -------------------------------------------------------------------------

    def matrix(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Travel times in integer seconds, ``(n, n)`` ``int64``; see :class:`TravelTimeProvider`."""
        return self._both(lat, lon)[1]

    def distance_m(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Road-distance estimate (haversine x circuity) in integer metres, ``(n, n)`` ``int64``."""
        return self._both(lat, lon)[0]

    def travel_s(self, distance_m: float) -> int:
        """Travel time in seconds for one road-distance estimate in metres (no ``min_s``)."""
        return round(distance_m / (self.speed_kmh / 3.6))

    # -- internals --------------------------------------------------------------------------

    def _both(self, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lat_a, lon_a = _check_points(lat, lon)
        key = (lat_a.tobytes(), lon_a.tobytes())
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        result = self._compute(lat_a, lon_a)
        if self.cache_size > 0:
            with self._lock:
                self._cache[key] = result
                self._cache.move_to_end(key)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return result

    def _compute(self, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        road_m = haversine_m(lat[:, None], lon[:, None], lat[None, :], lon[None, :])
        road_m *= self.circuity
        dist = np.rint(road_m).astype(np.int64)
        secs = np.rint(road_m / (self.speed_kmh / 3.6)).astype(np.int64)
        if self.min_s > 0:
            np.maximum(secs, self.min_s, out=secs)
        np.fill_diagonal(secs, 0)
        np.fill_diagonal(dist, 0)
        dist.setflags(write=False)
        secs.setflags(write=False)
        return dist, secs
