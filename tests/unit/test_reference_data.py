"""Tests for the Okuma reference data and its loaders."""

from __future__ import annotations

import dataclasses
import json
import shutil
from datetime import date, time
from pathlib import Path

import pytest

from transit.reference_data import (
    DEFAULT_DATA_DIR,
    ReferenceDataError,
    ServiceArea,
    ServiceRules,
    StopInfo,
    load_okuma,
    load_rules,
)

TOMIOKA_POINTS = {
    "tomioka_station": (37.3337, 141.0224),
    "tomioka_town_hall": (37.34544, 141.00861),
    "futaba_medical_center": (37.34500, 141.00800),
}


@pytest.fixture(scope="module")
def ref():
    """The repository's Okuma reference data."""
    return load_okuma()


def test_default_data_dir_is_repo_data_okuma():
    """The default data directory is the repository's data/okuma."""
    assert DEFAULT_DATA_DIR == Path(__file__).resolve().parents[2] / "data" / "okuma"


def test_at_least_25_stops(ref):
    """There are at least 25 stops."""
    assert len(ref.stops) >= 25


def test_stop_ids_unique(ref):
    """Stop ids are unique."""
    ids = [s.stop_id for s in ref.stops]
    assert len(ids) == len(set(ids))


def test_every_stop_inside_area_with_matching_zone(ref):
    """Every stop lies inside the service area, in the zone it declares."""
    for s in ref.stops:
        assert ref.area.contains(s.lat, s.lon), s.stop_id
        assert ref.area.zone_of(s.lat, s.lon) == s.zone, s.stop_id


def test_every_stop_has_kana(ref):
    """Every stop has a non-empty kana reading."""
    for s in ref.stops:
        assert s.name_kana.strip(), s.stop_id


def test_tomioka_outside(ref):
    """The Tomioka destinations are outside the service area."""
    for key, (lat, lon) in TOMIOKA_POINTS.items():
        assert not ref.area.contains(lat, lon), key
        assert ref.area.zone_of(lat, lon) is None, key


def test_known_places_in_their_zones(ref):
    """The town hall is in Ogawara, Ono Station in the Ono zone, the school in Ogawara."""
    assert ref.area.zone_of(37.38183, 140.95833) == "ogawara"
    assert ref.area.zone_of(37.4091389, 140.9839611) == "ono"
    assert ref.stop("manabiya_yumenomori").zone == "ogawara"


def test_far_restricted_point_outside(ref):
    """A coastal point (interim storage facility, restricted) is outside the area."""
    assert not ref.area.contains(37.4200, 141.0250)


def test_at_least_one_kiosk_per_hub(ref):
    """Each hub has at least one kiosk stop."""
    for zone in ("ogawara", "ono"):
        assert any(s.kiosk for s in ref.stops if s.zone == zone), zone


def test_main_stops_have_kiosks(ref):
    """Town hall, おおくまーと, clinic, public housing and both Ono exits have kiosks."""
    for sid in ("okuma_town_hall", "okumart", "okuma_clinic_welfare_centre",
                "ogawara_disaster_public_housing", "ono_station_west_plaza",
                "ono_station_east_plaza", "kuma_sun_terrace"):
        assert ref.stop(sid).kiosk, sid


def test_fleet_depots_exist(ref):
    """Every vehicle's depot is an existing stop."""
    for v in ref.fleet:
        assert v.depot_stop_id in ref.stops_by_id, v.id


def test_fleet_composition(ref):
    """Three 10-seat minibuses with a wheelchair space and parcel room, plus the 24-seat EV bus."""
    minibuses = [v for v in ref.fleet if v.seats == 10]
    assert len(minibuses) == 3
    assert all(v.wheelchairs >= 1 and v.parcels > 0 for v in minibuses)
    assert any(v.seats == 24 for v in ref.fleet)


def test_shifts_cover_service_hours_every_day(ref):
    """On every weekday some vehicle is on shift at service start and at service end."""
    rules = ref.rules
    for d in range(7):
        day = date(2026, 3, 2 + d)  # Monday .. Sunday
        shifts = [s for v in ref.fleet for s in v.shifts_on(day)]
        assert any(s.start_local <= rules.service_start_local for s in shifts), day
        assert any(s.end_local >= rules.service_end_local for s in shifts), day


def test_rules_values(ref):
    """The rules load with the expected timezone and a sensible max ride."""
    r = ref.rules
    assert r.timezone == "Asia/Tokyo"
    assert r.fare_yen == 0
    assert r.max_ride_s(0) == r.max_ride_beta_s
    assert r.max_ride_s(600) == min(600 + r.max_ride_abs_s,
                                    round(r.max_ride_alpha * 600) + r.max_ride_beta_s)
    assert r.max_ride_s(3600) >= 3600


def _rules_raw() -> dict:
    return json.loads((DEFAULT_DATA_DIR / "rules.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "change",
    [
        {"timezone": "Mars/Olympus"},
        {"service_start_local": "20:00", "service_end_local": "07:00"},
        {"service_start_local": "7am"},
        {"pickup_window_s": 5000, "max_wait_s": 1200},
        {"offer_ttl_s": 0},
        {"max_ride_alpha": 0.5},
        {"circuity": 0.9},
        {"speed_kmh": -5},
        {"max_party_size": 0},
        {"fare_yen": -100},
        {"booking_horizon_days": 1.5},
        {"service_days": ["mon", "funday"]},
        {"arrival_early_s": -60},
        {"arrival_near_m": 0},
        {"event_future_tolerance_s": 2.5},
        {"rider_delay_weight": -1},
        {"rider_delay_weight": 0.5},
    ],
)
def test_bad_rules_raise(change):
    """Invalid rules raise ReferenceDataError."""
    raw = _rules_raw() | change
    with pytest.raises(ReferenceDataError):
        ServiceRules.from_mapping(raw)


def test_unknown_and_missing_rule_fields_raise():
    """Unknown or missing rule fields raise ReferenceDataError."""
    raw = _rules_raw()
    with pytest.raises(ReferenceDataError, match="unknown"):
        ServiceRules.from_mapping(raw | {"speed_mph": 20})
    raw.pop("offer_ttl_s")
    with pytest.raises(ReferenceDataError, match="missing"):
        ServiceRules.from_mapping(raw)


def test_rules_are_frozen(ref):
    """ServiceRules cannot be modified."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.rules.offer_ttl_s = 1  # type: ignore[misc]


def test_bad_stop_raises():
    """A stop without a kana reading or with a bad id raises."""
    good = {"stop_id": "x_stop", "name_ja": "駅", "name_kana": "えき", "name_en": "Station",
            "lat": 37.4, "lon": 140.98, "kiosk": True, "wheelchair": True, "zone": "ono",
            "source": "test"}
    StopInfo(**good)
    with pytest.raises(ReferenceDataError):
        StopInfo(**(good | {"name_kana": "Eki"}))
    with pytest.raises(ReferenceDataError):
        StopInfo(**(good | {"stop_id": "Bad-Id"}))
    with pytest.raises(ReferenceDataError):
        StopInfo(**(good | {"zone": "tomioka"}))


def test_multipolygon_with_hole():
    """A MultiPolygon with a hole is handled by contains and zone_of."""
    square = [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]
    hole = [[4, 4], [6, 4], [6, 6], [4, 6], [4, 4]]
    far = [[20, 20], [22, 20], [22, 22], [20, 22], [20, 20]]
    area = ServiceArea.from_geojson({
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "id": "z",
                      "properties": {"zone": "ono"},
                      "geometry": {"type": "MultiPolygon",
                                   "coordinates": [[square, hole], [far]]}}],
    })
    assert area.contains(lat=1, lon=1)
    assert not area.contains(lat=5, lon=5)
    assert area.contains(lat=21, lon=21)
    assert area.zone_of(21, 21) == "ono"
    assert not area.contains(lat=15, lon=15)


def test_depot_must_exist(tmp_path):
    """A vehicle whose depot is not a stop is rejected."""
    for f in DEFAULT_DATA_DIR.iterdir():
        if f.is_file():
            shutil.copy(f, tmp_path / f.name)
    fleet = json.loads((tmp_path / "fleet.json").read_text(encoding="utf-8"))
    fleet["vehicles"][0]["depot_stop_id"] = "nowhere"
    (tmp_path / "fleet.json").write_text(json.dumps(fleet), encoding="utf-8")
    with pytest.raises(ReferenceDataError, match="depot"):
        load_okuma(tmp_path)


def test_stop_outside_area_rejected(tmp_path):
    """A stop placed in Tomioka makes loading fail."""
    for f in DEFAULT_DATA_DIR.iterdir():
        if f.is_file():
            shutil.copy(f, tmp_path / f.name)
    with (tmp_path / "stops.csv").open("a", encoding="utf-8") as f:
        f.write("tomioka_station,富岡駅,とみおかえき,Tomioka Station,37.3337,141.0224,"
                "0,1,other,test\n")
    with pytest.raises(ReferenceDataError, match="outside"):
        load_okuma(tmp_path)


def test_load_rules_reads_times(ref):
    """Service hours are parsed as local times."""
    r = load_rules(DEFAULT_DATA_DIR / "rules.json")
    assert r.service_start_local == time(7, 0)
    assert r.service_end_s == 20 * 3600


def test_weekday_scenario_is_consistent(ref):
    """The weekday scenario uses known stops, service hours and allowed party sizes."""
    path = DEFAULT_DATA_DIR.parent / "scenarios" / "weekday.json"
    scenario = json.loads(path.read_text(encoding="utf-8"))
    trips = scenario["trips"]
    assert 50 <= len(trips) <= 80
    assert len({t["id"] for t in trips}) == len(trips)
    for t in trips:
        assert t["origin"] in ref.stops_by_id and t["destination"] in ref.stops_by_id, t["id"]
        assert t["origin"] != t["destination"], t["id"]
        hh, mm = map(int, t["time"].split(":"))
        assert ref.rules.service_start_local <= time(hh, mm) < ref.rules.service_end_local
        assert t["kind"] in ("ride", "grocery"), t["id"]
        if t["kind"] == "ride":
            assert 1 <= t["party"] <= ref.rules.max_party_size, t["id"]
        else:
            assert t["party"] == 0 and t["parcels"] >= 1, t["id"]
