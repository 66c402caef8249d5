"""The static feed: GTFS-JP + GTFS-Flex, validated by the canonical rule set and read back."""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from shapely.geometry import Point

from routing.traveltime import StraightLineTravelTimes
from transit.feeds import gtfs
from transit.reference_data import WEEKDAYS, load_okuma

TODAY = date(2026, 11, 26)
BASE = "https://example.org/okuma/"


@pytest.fixture(scope="module")
def ref():  # type: ignore[no-untyped-def]
    return load_okuma()


@pytest.fixture(scope="module")
def files(ref):  # type: ignore[no-untyped-def]
    return gtfs.build_feed(ref, gtfs.FeedMeta.load(), today=TODAY, base_url=BASE)


@pytest.fixture(scope="module")
def notices(files, tmp_path_factory):  # type: ignore[no-untyped-def]
    d = tmp_path_factory.mktemp("feed")
    gtfs.write_dir(files, d / "okuma")
    return gtfs.validate(d / "okuma", on=TODAY, out_dir=d / "report")


def _errors(notices: list[dict]) -> dict[str, int]:
    return {n["code"]: n["totalNotices"] for n in notices if n["severity"] == "ERROR"}


def test_feed_has_no_validator_errors(notices) -> None:  # type: ignore[no-untyped-def]
    """The canonical GTFS rules (Flex included) find no error in the Okuma feed."""
    assert _errors(notices) == {}


def test_feed_has_no_unexpected_warnings(notices) -> None:  # type: ignore[no-untyped-def]
    """The only warning is the Latin-script mixed-case heuristic, which misfires on Japanese names."""
    warnings = {n["code"] for n in notices if n["severity"] == "WARNING"}
    assert warnings <= {"mixed_case_recommended_field"}


def _break_zone(d: Path) -> None:
    zones = json.loads((d / "locations.geojson").read_text(encoding="utf-8"))
    zones["features"][0]["geometry"] = {"type": "Point", "coordinates": [140.96, 37.38]}
    (d / "locations.geojson").write_text(json.dumps(zones), encoding="utf-8")


def _regular_pickup_in_a_window(d: Path) -> None:
    st = (d / "stop_times.txt").read_text(encoding="utf-8").splitlines()
    st[3] = st[3].replace(",2,1,okuma_book,", ",0,1,okuma_book,")  # stop-to-stop pickup: "regular"
    (d / "stop_times.txt").write_text("\n".join(st) + "\n", encoding="utf-8")


def _dangling_group_member(d: Path) -> None:
    with (d / "location_group_stops.txt").open("a", encoding="utf-8") as f:
        f.write("okuma_all_stops,no_such_stop\n")


def _missing_booking_rule(d: Path) -> None:
    text = (d / "booking_rules.txt").read_text(encoding="utf-8").splitlines()
    (d / "booking_rules.txt").write_text("\n".join(t for t in text if not t.startswith("okuma_kiosk,")) + "\n",
                                         encoding="utf-8")


# (breakage, what the validator says or None when it misses it, what check_flex says)
BREAKAGES = [
    (_break_zone, None, "geometry.type must be Polygon or MultiPolygon, not Point"),
    (_regular_pickup_in_a_window, "forbidden_pickup_type", "pickup_type 0 or 3 (or empty) is forbidden"),
    (_dangling_group_member, None, "stop_id no_such_stop is not in stops.txt"),
    (_missing_booking_rule, "foreign_key_violation", "pickup_booking_rule_id okuma_kiosk is not in"),
]


@pytest.mark.parametrize(("breakage", "code", "ours"), BREAKAGES)
def test_flex_breakages_are_caught(files, tmp_path: Path, breakage, code, ours) -> None:  # type: ignore[no-untyped-def]
    """Each broken Flex file is caught: by the validator where it can, by check_flex always."""
    d = tmp_path / "bad"
    gtfs.write_dir(files, d)
    breakage(d)
    errors = _errors(gtfs.validate(d, on=TODAY, out_dir=tmp_path / "report"))
    if code is None:
        assert errors == {}  # the validator's gap, which check_flex fills
    else:
        assert code in errors
    problems = gtfs.check_flex(gtfs.read_feed(d))
    assert any(ours in p for p in problems), problems


def test_feed_passes_the_flex_checks(files) -> None:  # type: ignore[no-untyped-def]
    """Our own GTFS-Flex checks find nothing in the Okuma feed."""
    assert gtfs.check_flex(gtfs.read_feed(gtfs.zip_bytes(files))) == []


def test_feed_meets_gtfs_jp(files) -> None:  # type: ignore[no-untyped-def]
    """feed_info, Asia/Tokyo + ja agency, ja then ja-Hrkt names for every stop, a JPY fare."""
    assert gtfs.check_gtfs_jp(gtfs.read_feed(gtfs.zip_bytes(files))) == []


def test_gtfs_jp_check_finds_a_missing_kana_reading(files) -> None:  # type: ignore[no-untyped-def]
    """A stop whose kana row is gone is reported by name."""
    broken = dict(files)
    text = files["translations.txt"].decode()
    broken["translations.txt"] = "\n".join(
        line for line in text.splitlines() if not line.startswith("stops,stop_name,ja-Hrkt,おおくまーと")
    ).encode()
    assert gtfs.check_gtfs_jp(gtfs.read_feed(gtfs.zip_bytes(broken))) == [
        "stop okumart: no ja-Hrkt (kana) reading in translations.txt"
    ]


def test_round_trip_stops(ref, files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Read back from the zip: every stop with its position, names, kana and step-free flag."""
    (tmp_path / "okuma.zip").write_bytes(gtfs.zip_bytes(files))
    feed = gtfs.read_feed(tmp_path / "okuma.zip")
    stops = {r["stop_id"]: r for r in feed.tables["stops.txt"]}
    assert set(stops) == {s.stop_id for s in ref.stops}
    tr = {(r["record_id"], r["language"]): r["translation"] for r in feed.tables["translations.txt"]
          if r["table_name"] == "stops"}
    for s in ref.stops:
        row = stops[s.stop_id]
        assert math.isclose(float(row["stop_lat"]), s.lat, abs_tol=1e-6)
        assert math.isclose(float(row["stop_lon"]), s.lon, abs_tol=1e-6)
        assert row["stop_name"] == s.name_ja and row["tts_stop_name"] == s.name_kana
        assert row["wheelchair_boarding"] == ("1" if s.wheelchair else "2")
        assert (tr[(s.stop_id, "ja")], tr[(s.stop_id, "ja-Hrkt")], tr[(s.stop_id, "en")]) == (
            s.name_ja, s.name_kana, s.name_en)


def test_round_trip_zone_and_groups(ref, files) -> None:  # type: ignore[no-untyped-def]
    """The zone is the service area (same shape, every stop in it); the groups are the stop sets."""
    feed = gtfs.read_feed(gtfs.zip_bytes(files))
    zone = feed.zones[gtfs.ZONE_ID]
    assert zone.is_valid
    area = gtfs.area_geometry(ref.area)
    assert zone.symmetric_difference(area).area < 1e-12
    for s in ref.stops:
        assert zone.covers(Point(s.lon, s.lat))
    # Points the service refuses are outside the published zone too (Tomioka station).
    assert not zone.covers(Point(141.0224, 37.3337)) and not ref.area.contains(37.3337, 141.0224)
    assert feed.group_stops(gtfs.GROUP_ALL) == {s.stop_id for s in ref.stops}
    assert feed.group_stops(gtfs.GROUP_KIOSK) == {s.stop_id for s in ref.kiosk_stops()}


def test_round_trip_rules(ref, files) -> None:  # type: ignore[no-untyped-def]
    """Booking notice, horizon, service days and hours, fare: as in rules.json."""
    rules = ref.rules
    feed = gtfs.read_feed(gtfs.zip_bytes(files))
    br = {r["booking_rule_id"]: r for r in feed.tables["booking_rules.txt"]}
    book = br[gtfs.RULE_BOOK]
    assert int(book["booking_type"]) == 1
    assert int(book["prior_notice_duration_min"]) * 60 == rules.min_lead_s
    assert int(book["prior_notice_duration_max"]) == rules.booking_horizon_days * 24 * 60
    assert book["booking_url"] == BASE and int(br[gtfs.RULE_KIOSK]["booking_type"]) == 0
    cal = feed.tables["calendar.txt"][0]
    full = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    assert {d for d, f in zip(WEEKDAYS, full) if cal[f] == "1"} == set(rules.service_days)
    for st in feed.tables["stop_times.txt"]:
        h, m, s = (int(x) for x in st["start_pickup_drop_off_window"].split(":"))
        assert h * 3600 + m * 60 + s == rules.service_start_s
        end = [int(x) for x in st["end_pickup_drop_off_window"].split(":")]
        if st["pickup_type"] == "2":
            assert end[0] * 3600 + end[1] * 60 + end[2] == rules.service_end_s
        assert "arrival_time" not in st  # windows, never clock times
    assert {int(f["price"]) for f in feed.tables["fare_attributes.txt"]} == {rules.fare_yen}
    assert {int(f["amount"]) for f in feed.tables["fare_products.txt"]} == {rules.fare_yen}
    cats = feed.tables["rider_categories.txt"]
    assert [c["rider_category_id"] for c in cats if c["is_default_fare_category"] == "1"] == ["general"]


def test_drop_off_window_covers_the_latest_promise(ref) -> None:  # type: ignore[no-untyped-def]
    """A ride asked for at closing time, across the area, can still be set down inside the window."""
    rules = ref.rules
    tt = StraightLineTravelTimes(circuity=rules.circuity, speed_kmh=rules.speed_kmh)
    lat = np.array([s.lat for s in ref.stops])
    lon = np.array([s.lon for s in ref.stops])
    direct = int(tt.matrix(lat, lon).max())  # the longest drive between two stops
    latest = (rules.service_end_s + rules.max_wait_s + rules.dwell_s(rules.max_party_size, 1, 0)
              + rules.max_ride_s(direct))
    assert gtfs.drop_off_window_end_s(ref.area, rules) >= latest


def test_feed_version_follows_the_content(ref) -> None:  # type: ignore[no-untyped-def]
    """Same data, same version and zip; another base URL, another version."""
    meta = gtfs.FeedMeta.load()
    a = gtfs.build_feed(ref, meta, today=TODAY, base_url=BASE)
    b = gtfs.build_feed(ref, meta, today=TODAY, base_url=BASE)
    c = gtfs.build_feed(ref, meta, today=TODAY, base_url="https://example.net/okuma/")
    assert gtfs.zip_bytes(a) == gtfs.zip_bytes(b)
    assert gtfs.feed_version(a) == gtfs.feed_version(b) != gtfs.feed_version(c)
    assert gtfs.feed_version(a).startswith("20261126_")


def test_cli_exports_the_feed(tmp_path: Path) -> None:
    """`okuma export gtfs --out DIR --zip` writes every file and the zip."""
    from api.cli import main

    assert main(["export", "gtfs", "--out", str(tmp_path / "out"), "--zip"]) == 0
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert set(gtfs.FILE_ORDER) | {"okuma.zip"} == names
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "agency.txt").read_text(encoding="utf-8"))))
    assert rows[0]["agency_timezone"] == "Asia/Tokyo"
    shutil.rmtree(tmp_path / "out")


def test_the_desk_phone_is_published_when_set(ref, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """rules.json office_phone becomes agency_phone and the booking rules' phone_number, and validates."""
    import dataclasses

    with_phone = dataclasses.replace(ref, rules=dataclasses.replace(ref.rules, office_phone="0240-12-3456"))
    files = gtfs.build_feed(with_phone, gtfs.FeedMeta.load(), today=TODAY, base_url=BASE)
    feed = gtfs.read_feed(gtfs.zip_bytes(files))
    assert feed.tables["agency.txt"][0]["agency_phone"] == "0240-12-3456"
    assert {r["phone_number"] for r in feed.tables["booking_rules.txt"]} == {"0240-12-3456"}
    unset = gtfs.read_feed(gtfs.zip_bytes(gtfs.build_feed(
        dataclasses.replace(ref, rules=dataclasses.replace(ref.rules, office_phone=None)), gtfs.FeedMeta.load(),
        today=TODAY, base_url=BASE)))
    assert unset.tables["agency.txt"][0]["agency_phone"] == ""  # null: empty, never a made-up number
    assert {r["phone_number"] for r in unset.tables["booking_rules.txt"]} == {""}
    gtfs.write_dir(files, tmp_path / "feed")
    assert _errors(gtfs.validate(tmp_path / "feed", on=TODAY, out_dir=tmp_path / "report")) == {}
