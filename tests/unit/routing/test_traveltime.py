"""Straight-line travel-time provider."""

from __future__ import annotations

import math

import numpy as np
import pytest

from routing.traveltime import (
    EARTH_RADIUS_M,
    StraightLineTravelTimes,
    TravelTimeProvider,
    haversine_m,
)

ONO = (37.380, 140.960)
TOWN_OFFICE = (37.409, 140.984)


def test_haversine_one_degree_of_latitude() -> None:
    """One degree along a meridian is R x pi / 180 metres on the sphere."""
    d = float(haversine_m(37.0, 140.0, 38.0, 140.0))
    assert d == pytest.approx(EARTH_RADIUS_M * math.pi / 180, rel=1e-12)


def test_haversine_broadcasts_to_a_matrix() -> None:
    """Column against row gives the full symmetric matrix with a zero diagonal."""
    lat = np.array([ONO[0], TOWN_OFFICE[0], 37.39])
    lon = np.array([ONO[1], TOWN_OFFICE[1], 140.97])
    m = haversine_m(lat[:, None], lon[:, None], lat[None, :], lon[None, :])
    assert m.shape == (3, 3)
    assert np.allclose(m, m.T)
    assert np.all(np.diag(m) == 0)
    assert 3_500 < m[0, 1] < 4_000  # the two Okuma hubs are about 3.8 km apart


def test_matrix_is_distance_times_circuity_over_speed() -> None:
    """Seconds = round(haversine x circuity / speed), as int64; metres likewise."""
    p = StraightLineTravelTimes(circuity=1.3, speed_kmh=36.0)
    lat = np.array([ONO[0], TOWN_OFFICE[0]])
    lon = np.array([ONO[1], TOWN_OFFICE[1]])
    d = float(haversine_m(*ONO, *TOWN_OFFICE))
    t = p.matrix(lat, lon)
    assert t.dtype == np.int64
    assert t[0, 1] == t[1, 0] == round(d * 1.3 / 10.0)
    assert p.distance_m(lat, lon)[0, 1] == round(d * 1.3)
    assert isinstance(p, TravelTimeProvider)


def test_min_s_applies_off_the_diagonal_only() -> None:
    """Different points are at least min_s apart; a point to itself stays 0."""
    p = StraightLineTravelTimes(circuity=1.0, speed_kmh=30.0, min_s=20)
    lat = np.array([37.38, 37.38001])
    lon = np.array([140.96, 140.96])
    t = p.matrix(lat, lon)
    assert t.tolist() == [[0, 20], [20, 0]]


def test_cache_returns_the_same_read_only_matrix() -> None:
    """Equal coordinates hit the cache; cached matrices cannot be modified by callers."""
    p = StraightLineTravelTimes(circuity=1.3, speed_kmh=30.0, cache_size=2)
    lat = np.array([37.38, 37.40])
    lon = np.array([140.96, 140.98])
    a = p.matrix(lat, lon)
    assert p.matrix(lat.copy(), lon.copy()) is a
    with pytest.raises(ValueError):
        a[0, 1] = 1
    p.matrix(lat + 0.001, lon)
    p.matrix(lat + 0.002, lon)
    assert p.matrix(lat, lon) is not a  # evicted (LRU of 2)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"circuity": 0.9, "speed_kmh": 30.0},
        {"circuity": 1.3, "speed_kmh": 0.0},
        {"circuity": float("nan"), "speed_kmh": 30.0},
        {"circuity": 1.3, "speed_kmh": 30.0, "min_s": -1},
    ],
)
def test_parameters_are_validated(kwargs: dict[str, float]) -> None:
    """Nonsensical parameters are refused when the provider is built."""
    with pytest.raises(ValueError):
        StraightLineTravelTimes(**kwargs)  # type: ignore[arg-type]


def test_bad_coordinates_are_refused() -> None:
    """Mismatched or out-of-range coordinates raise instead of producing a wrong matrix."""
    p = StraightLineTravelTimes(circuity=1.3, speed_kmh=30.0)
    with pytest.raises(ValueError):
        p.matrix(np.array([37.0, 37.1]), np.array([140.0]))
    with pytest.raises(ValueError):
        p.matrix(np.array([97.0]), np.array([140.0]))
