"""The static feed: GTFS-JP (静的バス情報フォーマット) with the GTFS-Flex files, built from the service data.

One pure function, ``build_feed``, turns the reference data (stops, service area, rules, fleet) and
the publisher's details (``data/okuma/feed.json``) into the feed's files; ``write_dir`` and
``zip_bytes`` store them. ``read_feed`` reads a feed back (used by the round-trip test and by
anyone checking an export). What each file holds is described in docs/feeds.md.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from shapely import geometry as sg
from shapely.geometry.polygon import orient
from shapely.ops import unary_union

from transit.reference_data import (
    DEFAULT_DATA_DIR,
    WEEKDAYS,
    ReferenceData,
    ServiceArea,
    ServiceRules,
)

# Ids of the things the feed defines (stable: journey planners keep them between versions).
ZONE_ID = "okuma_service_area"
GROUP_ALL = "okuma_all_stops"
GROUP_KIOSK = "okuma_kiosk_stops"
RULE_BOOK = "okuma_book"
RULE_KIOSK = "okuma_kiosk"
SERVICE_ID = "okuma_service_days"
FARE_ID = "okuma_fare"
TRIP_ZONE = "okuma_door_to_door"
TRIP_STOPS = "okuma_stop_to_stop"
TRIP_KIOSK = "okuma_kiosk_walk_up"
RIDER_CATEGORIES = (  # (id, ja, en); concessions are ready, all at the same fare today
    ("general", "一般", "General", 1),
    ("elderly", "高齢者", "Older people", 0),
    ("disability", "障がいのある方", "People with disabilities", 0),
    ("child", "小児", "Children", 0),
)
PICKUP_NONE, PICKUP_BOOK = 1, 2  # pickup_type / drop_off_type: 1 = none, 2 = must book
BOOKING_REAL_TIME, BOOKING_SAME_DAY = 0, 1  # booking_rules.booking_type
FILE_ORDER = (
    "agency.txt", "stops.txt", "routes.txt", "trips.txt", "stop_times.txt", "calendar.txt",
    "locations.geojson", "location_groups.txt", "location_group_stops.txt", "booking_rules.txt",
    "fare_attributes.txt", "fare_rules.txt", "rider_categories.txt", "fare_products.txt",
    "fare_leg_rules.txt", "feed_info.txt", "translations.txt",
)


@dataclass(frozen=True)
class FeedMeta:
    """Who publishes the feed and how the service is named (``feed.json``)."""

    agency_id: str
    agency_name_ja: str
    agency_name_kana: str
    agency_name_en: str
    agency_url: str
    route_id: str
    route_name_ja: str
    route_name_kana: str
    route_name_en: str
    route_desc_ja: str
    route_color: str
    route_text_color: str
    feed_publisher_name: str
    feed_publisher_url: str
    feed_licence: str
    valid_days: int

    @classmethod
    def load(cls, data_dir: str | Path | None = None) -> FeedMeta:
        path = Path(data_dir or DEFAULT_DATA_DIR) / "feed.json"
        raw = json.loads(path.read_text(encoding="utf-8"))
        raw.pop("note", None)
        meta = cls(**raw)
        if meta.valid_days < 1:
            raise ValueError(f"{path.name}: valid_days must be at least 1")
        return meta


# ------------------------------------------------------------------------------ helpers


def _csv(header: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(header), lineterminator="\n", extrasaction="raise")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return buf.getvalue().encode("utf-8")


def _hms(seconds: int) -> str:
    """GTFS time (may pass 24:00:00 for a service day that runs past midnight)."""
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def area_geometry(area: ServiceArea) -> sg.Polygon | sg.MultiPolygon:
    """The whole service area as one valid (Multi)Polygon: the union of its zone features."""
    parts = [sg.Polygon(outer, holes) for f in area.features for outer, *holes in f.polygons]
    merged = unary_union([p if p.is_valid else p.buffer(0) for p in parts])
    # RFC 7946: exterior rings counter-clockwise, holes clockwise.
    if isinstance(merged, sg.Polygon):
        return orient(merged, 1.0)
    return sg.MultiPolygon([orient(p, 1.0) for p in merged.geoms])


def _max_direct_drive_s(area: ServiceArea, rules: ServiceRules) -> int:
    """The longest direct drive inside the area by the service's travel-time model (an upper bound)."""
    minx, miny, maxx, maxy = area_geometry(area).bounds
    lat0 = math.radians((miny + maxy) / 2)
    dx = (maxx - minx) * 111_320 * math.cos(lat0)
    dy = (maxy - miny) * 110_574
    return math.ceil(math.hypot(dx, dy) * rules.circuity / (rules.speed_kmh / 3.6))


def drop_off_window_end_s(area: ServiceArea, rules: ServiceRules) -> int:
    """Latest drop-off of a ride requested at the end of service: + longest wait, dwell and ride."""
    direct = _max_direct_drive_s(area, rules)
    dwell = rules.dwell_s(rules.max_party_size, 1, 0)
    return rules.service_end_s + rules.max_wait_s + dwell + rules.max_ride_s(direct)


# ------------------------------------------------------------------------------ the feed


def build_feed(ref: ReferenceData, meta: FeedMeta, *, today: date, base_url: str) -> dict[str, bytes]:
    """Every file of the feed, by name. ``base_url``: where the booking pages are served."""
    rules = ref.rules
    # The town desk's number, the one the pages show (rules.json office_phone; absent or null = unset).
    phone = getattr(rules, "office_phone", None) or ""
    base = base_url.rstrip("/")
    booking_url = f"{base}/"
    files: dict[str, bytes] = {}

    files["agency.txt"] = _csv(
        ("agency_id", "agency_name", "agency_url", "agency_timezone", "agency_lang", "agency_phone"),
        [dict(agency_id=meta.agency_id, agency_name=meta.agency_name_ja, agency_url=meta.agency_url,
              agency_timezone=rules.timezone, agency_lang="ja", agency_phone=phone)],
    )
    files["stops.txt"] = _csv(
        ("stop_id", "stop_name", "tts_stop_name", "stop_desc", "stop_lat", "stop_lon", "location_type",
         "wheelchair_boarding"),
        [dict(stop_id=s.stop_id, stop_name=s.name_ja, tts_stop_name=s.name_kana,
              stop_desc="予約端末あり" if s.kiosk else "", stop_lat=f"{s.lat:.6f}", stop_lon=f"{s.lon:.6f}",
              location_type=0, wheelchair_boarding=1 if s.wheelchair else 2)
         for s in ref.stops],
    )
    files["routes.txt"] = _csv(
        ("route_id", "agency_id", "route_short_name", "route_long_name", "route_desc", "route_type",
         "route_url", "route_color", "route_text_color"),
        [dict(route_id=meta.route_id, agency_id=meta.agency_id, route_short_name="",
              route_long_name=meta.route_name_ja, route_desc=meta.route_desc_ja, route_type=3,
              route_url=booking_url, route_color=meta.route_color, route_text_color=meta.route_text_color)],
    )
    # Every vehicle carries at least one wheelchair, so every trip is wheelchair accessible.
    accessible = 1 if ref.fleet and all(v.wheelchairs > 0 for v in ref.fleet) else 0
    trips = (
        (TRIP_ZONE, "ご自宅前から(登録者)", ZONE_ID, None, RULE_BOOK),
        (TRIP_STOPS, "停留所から停留所へ", None, GROUP_ALL, RULE_BOOK),
        (TRIP_KIOSK, "予約端末のある停留所から", None, GROUP_KIOSK, RULE_KIOSK),
    )
    files["trips.txt"] = _csv(
        ("route_id", "service_id", "trip_id", "trip_headsign", "wheelchair_accessible",
         "safe_duration_factor", "safe_duration_offset"),
        # SafeTravelDuration = factor * driving + offset: our promise caps a ride at alpha * direct + beta.
        [dict(route_id=meta.route_id, service_id=SERVICE_ID, trip_id=tid, trip_headsign=headsign,
              wheelchair_accessible=accessible, safe_duration_factor=rules.max_ride_alpha,
              safe_duration_offset=rules.max_ride_beta_s)
         for tid, headsign, *_ in trips],
    )
    start, end_pick = rules.service_start_s, rules.service_end_s
    end_drop = drop_off_window_end_s(ref.area, rules)
    st_rows: list[dict[str, Any]] = []
    for tid, _, zone, group, pick_rule in trips:
        # Pickup stop_time then drop-off stop_time: any pickup in the first, any drop-off in the second.
        drop_group = GROUP_ALL if tid == TRIP_KIOSK else group
        for seq, (pick, drop, where, win_end) in enumerate(
            ((PICKUP_BOOK, PICKUP_NONE, group, end_pick), (PICKUP_NONE, PICKUP_BOOK, drop_group, end_drop)), 1
        ):
            st_rows.append(dict(
                trip_id=tid, stop_sequence=seq, location_id=zone if zone else "",
                location_group_id=where if not zone else "",
                start_pickup_drop_off_window=_hms(start), end_pickup_drop_off_window=_hms(win_end),
                pickup_type=pick, drop_off_type=drop,
                pickup_booking_rule_id=pick_rule if pick == PICKUP_BOOK else "",
                drop_off_booking_rule_id=RULE_BOOK if drop == PICKUP_BOOK else "",
            ))
    files["stop_times.txt"] = _csv(
        ("trip_id", "stop_sequence", "location_id", "location_group_id", "start_pickup_drop_off_window",
         "end_pickup_drop_off_window", "pickup_type", "drop_off_type", "pickup_booking_rule_id",
         "drop_off_booking_rule_id"),
        st_rows,
    )
    end_date = today + timedelta(days=meta.valid_days)
    files["calendar.txt"] = _csv(
        ("service_id", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
         "start_date", "end_date"),
        [dict(service_id=SERVICE_ID, **{
            full: int(short in rules.service_days)
            for short, full in zip(WEEKDAYS, ("monday", "tuesday", "wednesday", "thursday", "friday",
                                              "saturday", "sunday"))
        }, start_date=today.strftime("%Y%m%d"), end_date=end_date.strftime("%Y%m%d"))],
    )
    zone = area_geometry(ref.area)
    files["locations.geojson"] = json.dumps({
        "type": "FeatureCollection",
        "features": [{
            "type": "Feature",
            "id": ZONE_ID,
            "properties": {
                "stop_name": "大熊町オンデマンド交通 運行区域",
                "stop_desc": "登録された方はこの区域内のご自宅前などで乗り降りできます。 / "
                             "Registered riders may be picked up and set down anywhere in this area.",
            },
            "geometry": sg.mapping(zone),
        }],
    }, ensure_ascii=False, indent=1).encode("utf-8")
    groups = ((GROUP_ALL, "すべての停留所", "All stops", ref.stops),
              (GROUP_KIOSK, "予約端末のある停留所", "Stops with a booking kiosk", ref.kiosk_stops()))
    files["location_groups.txt"] = _csv(
        ("location_group_id", "location_group_name"),
        [dict(location_group_id=g, location_group_name=name) for g, name, _, _ in groups],
    )
    files["location_group_stops.txt"] = _csv(
        ("location_group_id", "stop_id"),
        [dict(location_group_id=g, stop_id=s.stop_id) for g, _, _, members in groups for s in members],
    )
    horizon_min = rules.booking_horizon_days * 24 * 60
    files["booking_rules.txt"] = _csv(
        ("booking_rule_id", "booking_type", "prior_notice_duration_min", "prior_notice_duration_max",
         "message", "pickup_message", "drop_off_message", "phone_number", "info_url", "booking_url"),
        [
            dict(booking_rule_id=RULE_BOOK, booking_type=BOOKING_SAME_DAY,
                 prior_notice_duration_min=math.ceil(rules.min_lead_s / 60),
                 prior_notice_duration_max=horizon_min,
                 message=f"アプリ・停留所の予約端末・町の窓口で、乗車の{rules.booking_horizon_days}日前から直前まで"
                         f"予約できます。運賃{rules.fare_yen}円。",
                 pickup_message=f"乗車時刻の幅は{rules.pickup_window_s // 60}分です。",
                 drop_off_message="", phone_number=phone, info_url=booking_url,
                 booking_url=booking_url),
            dict(booking_rule_id=RULE_KIOSK, booking_type=BOOKING_REAL_TIME,
                 prior_notice_duration_min="", prior_notice_duration_max="",
                 message="停留所の予約端末で、その場で予約できます(アカウント不要)。",
                 pickup_message="", drop_off_message="", phone_number=phone,
                 info_url=booking_url, booking_url=""),
        ],
    )
    # GTFS-JP asks for fare_attributes/fare_rules; GTFS fares v2 carries the rider categories.
    files["fare_attributes.txt"] = _csv(
        ("fare_id", "price", "currency_type", "payment_method", "transfers", "agency_id"),
        [dict(fare_id=FARE_ID, price=rules.fare_yen, currency_type="JPY", payment_method=0, transfers=0,
              agency_id=meta.agency_id)],
    )
    files["fare_rules.txt"] = _csv(("fare_id", "route_id"), [dict(fare_id=FARE_ID, route_id=meta.route_id)])
    files["rider_categories.txt"] = _csv(
        ("rider_category_id", "rider_category_name", "is_default_fare_category"),
        [dict(rider_category_id=c, rider_category_name=ja, is_default_fare_category=d)
         for c, ja, _, d in RIDER_CATEGORIES],
    )
    files["fare_products.txt"] = _csv(
        ("fare_product_id", "fare_product_name", "rider_category_id", "amount", "currency"),
        [dict(fare_product_id=FARE_ID, fare_product_name=f"乗車1回({ja})", rider_category_id=c,
              amount=rules.fare_yen, currency="JPY") for c, ja, _, _ in RIDER_CATEGORIES],
    )
    files["fare_leg_rules.txt"] = _csv(
        ("leg_group_id", "fare_product_id"), [dict(leg_group_id="okuma_ride", fare_product_id=FARE_ID)]
    )
    files["translations.txt"] = _translations(ref, meta)
    # feed_version: the date and a digest of everything else, so a changed feed gets a new version.
    digest = hashlib.sha256(b"".join(files[k] for k in sorted(files))).hexdigest()[:8]
    version = f"{today.strftime('%Y%m%d')}_{digest}"
    files["feed_info.txt"] = _csv(
        ("feed_publisher_name", "feed_publisher_url", "feed_lang", "default_lang", "feed_start_date",
         "feed_end_date", "feed_version", "feed_contact_url"),
        [dict(feed_publisher_name=meta.feed_publisher_name, feed_publisher_url=meta.feed_publisher_url,
              feed_lang="ja", default_lang="ja", feed_start_date=today.strftime("%Y%m%d"),
              feed_end_date=end_date.strftime("%Y%m%d"), feed_version=version,
              feed_contact_url=meta.feed_publisher_url)],
    )
    return {name: files[name] for name in FILE_ORDER}


def feed_version(files: Mapping[str, bytes]) -> str:
    """The feed_version written in feed_info.txt (GTFS-Realtime headers repeat it)."""
    return _rows(files["feed_info.txt"])[0]["feed_version"]


def _translations(ref: ReferenceData, meta: FeedMeta) -> bytes:
    rows: list[dict[str, str]] = []

    def add(table: str, field: str, record_id: str, ja: str, kana: str, en: str) -> None:
        # GTFS-JP: the ja row before the ja-Hrkt (kana) row; English after.
        for lang, text in (("ja", ja), ("ja-Hrkt", kana), ("en", en)):
            rows.append(dict(table_name=table, field_name=field, language=lang, translation=text,
                             record_id=record_id))

    add("agency", "agency_name", meta.agency_id, meta.agency_name_ja, meta.agency_name_kana, meta.agency_name_en)
    add("routes", "route_long_name", meta.route_id, meta.route_name_ja, meta.route_name_kana, meta.route_name_en)
    for s in ref.stops:
        add("stops", "stop_name", s.stop_id, s.name_ja, s.name_kana, s.name_en)
    return _csv(("table_name", "field_name", "language", "translation", "record_id"), rows)


# ------------------------------------------------------------------------------ storing, reading


def write_dir(files: Mapping[str, bytes], out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (out / name).write_bytes(data)
    return out


def zip_bytes(files: Mapping[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            # A fixed timestamp: the same feed gives the same zip (cacheable, comparable).
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    return buf.getvalue()


def _rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


@dataclass(frozen=True)
class ReadFeed:
    """A feed read back: the tables as rows, the zones as shapely geometries."""

    tables: dict[str, list[dict[str, str]]]
    zones: dict[str, Any]  # location id -> shapely geometry
    zone_properties: dict[str, dict[str, Any]]
    locations: dict[str, Any] | None = None  # locations.geojson as read

    def group_stops(self, group_id: str) -> set[str]:
        return {r["stop_id"] for r in self.tables["location_group_stops.txt"] if r["location_group_id"] == group_id}


def read_feed(source: str | Path | bytes) -> ReadFeed:
    """Read a feed from a directory, a zip file path or zip bytes."""
    raw: dict[str, bytes] = {}
    if isinstance(source, bytes) or (Path(source).is_file() and zipfile.is_zipfile(source)):
        with zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source) as z:
            raw = {n: z.read(n) for n in z.namelist()}
    else:
        raw = {p.name: p.read_bytes() for p in Path(source).iterdir() if p.is_file()}
    tables = {n: _rows(d) for n, d in raw.items() if n.endswith(".txt")}
    zones: dict[str, Any] = {}
    props: dict[str, dict[str, Any]] = {}
    locations = json.loads(raw["locations.geojson"]) if "locations.geojson" in raw else None
    for feat in (locations or {}).get("features") or ():
        geom = feat.get("geometry") or {}
        if isinstance(feat, dict) and "id" in feat and geom.get("type") in ("Polygon", "MultiPolygon"):
            zones[feat["id"]] = sg.shape(geom)
            props[feat["id"]] = feat.get("properties") or {}
    return ReadFeed(tables, zones, props, locations)


# ------------------------------------------------------------------------------ checks


def check_gtfs_jp(feed: ReadFeed) -> list[str]:
    """What GTFS-JP (静的バス情報フォーマット 第3版) adds to GTFS, which a GTFS validator cannot know.

    - feed_info.txt is mandatory (optional in GTFS);
    - agency_timezone Asia/Tokyo and agency_lang ja;
    - every stop name has a ja and then a ja-Hrkt (kana) row in translations.txt;
    - fares are mandatory: fare_attributes.txt with a JPY price.
    """
    problems: list[str] = []
    t = feed.tables
    if not t.get("feed_info.txt"):
        problems.append("feed_info.txt is missing or empty (mandatory in GTFS-JP)")
    for a in t.get("agency.txt", []):
        if a.get("agency_timezone") != "Asia/Tokyo" or a.get("agency_lang") != "ja":
            problems.append(f"agency {a.get('agency_id')}: agency_timezone/agency_lang must be Asia/Tokyo/ja")
    langs: dict[str, list[str]] = {}
    for r in t.get("translations.txt", []):
        if r["table_name"] == "stops" and r["field_name"] == "stop_name":
            langs.setdefault(r["record_id"], []).append(r["language"])
    for s in t.get("stops.txt", []):
        got = langs.get(s["stop_id"], [])
        if "ja-Hrkt" not in got:
            problems.append(f"stop {s['stop_id']}: no ja-Hrkt (kana) reading in translations.txt")
        elif "ja" not in got or got.index("ja") > got.index("ja-Hrkt"):
            problems.append(f"stop {s['stop_id']}: the ja row must come before the ja-Hrkt row")
    fares = t.get("fare_attributes.txt", [])
    if not fares:
        problems.append("fare_attributes.txt is missing (fares are mandatory in GTFS-JP)")
    problems += [f"fare {f['fare_id']}: currency_type must be JPY" for f in fares if f["currency_type"] != "JPY"]
    return problems


def check_flex(feed: ReadFeed) -> list[str]:
    """The GTFS-Flex rules of the GTFS reference that the canonical validator does not enforce.

    Found by breaking our own feed: it accepts a zone that is not a polygon (when the
    coordinates fit the new type) and a location_group_stops row naming no stop. Checked here,
    field by field as in the reference (locations.geojson; location_group_stops.txt;
    stop_times.txt location_id / location_group_id / stop_id and the pickup/drop-off windows;
    booking_rules.txt booking_type and its prior-notice fields).
    """
    problems: list[str] = []
    t = feed.tables
    stop_ids = {r["stop_id"] for r in t.get("stops.txt", [])}
    group_ids = {r["location_group_id"] for r in t.get("location_groups.txt", [])}
    rule_ids = {r["booking_rule_id"] for r in t.get("booking_rules.txt", [])}
    location_ids: set[str] = set()
    loc = feed.locations
    if loc is not None:
        if loc.get("type") != "FeatureCollection":
            problems.append("locations.geojson: type must be FeatureCollection")
        for i, feat in enumerate(loc.get("features") or ()):
            fid = feat.get("id")
            where = f"locations.geojson features[{i}] ({fid})"
            if feat.get("type") != "Feature" or not isinstance(fid, str) or not fid:
                problems.append(f"{where}: each Feature needs a string id")
                continue
            if fid in location_ids or fid in stop_ids or fid in group_ids:
                problems.append(f"{where}: id must be unique across stop_id, location id and location_group_id")
            location_ids.add(fid)
            geom = feat.get("geometry") or {}
            if geom.get("type") not in ("Polygon", "MultiPolygon"):
                problems.append(f"{where}: geometry.type must be Polygon or MultiPolygon, not {geom.get('type')}")
            elif not sg.shape(geom).is_valid:
                problems.append(f"{where}: the polygon is not a valid simple feature")
            props = feat.get("properties")
            if props is None or not isinstance(props, dict):
                problems.append(f"{where}: properties is required (may be empty)")
            else:
                problems += [f"{where}: properties.{k} must be text" for k in ("stop_name", "stop_desc")
                             if k in props and not isinstance(props[k], str)]
    for r in t.get("location_group_stops.txt", []):
        if r["location_group_id"] not in group_ids:
            problems.append(f"location_group_stops: unknown location_group_id {r['location_group_id']}")
        if r["stop_id"] not in stop_ids:
            problems.append(f"location_group_stops: stop_id {r['stop_id']} is not in stops.txt")
    for r in t.get("stop_times.txt", []):
        where = f"stop_times {r['trip_id']}#{r['stop_sequence']}"
        refs = [(k, r.get(k) or "") for k in ("stop_id", "location_group_id", "location_id")]
        if sum(1 for _, v in refs if v) != 1:
            problems.append(f"{where}: exactly one of stop_id, location_group_id, location_id")
        if r.get("location_id") and r["location_id"] not in location_ids:
            problems.append(f"{where}: location_id {r['location_id']} is not in locations.geojson")
        if r.get("location_group_id") and r["location_group_id"] not in group_ids:
            problems.append(f"{where}: location_group_id {r['location_group_id']} is not in location_groups.txt")
        windowed = bool(r.get("start_pickup_drop_off_window") or r.get("end_pickup_drop_off_window"))
        if (r.get("location_id") or r.get("location_group_id")) and not (
                r.get("start_pickup_drop_off_window") and r.get("end_pickup_drop_off_window")):
            problems.append(f"{where}: a zone or group needs both pickup/drop-off window fields")
        if windowed:
            if r.get("arrival_time") or r.get("departure_time"):
                problems.append(f"{where}: arrival/departure_time are forbidden with windows")
            if r.get("pickup_type", "") in ("", "0", "3"):
                problems.append(f"{where}: pickup_type 0 or 3 (or empty) is forbidden with windows")
            if r.get("drop_off_type", "") in ("", "0"):
                problems.append(f"{where}: drop_off_type 0 (or empty) is forbidden with windows")
            for k in ("continuous_pickup", "continuous_drop_off"):
                if r.get(k, "") not in ("", "1"):
                    problems.append(f"{where}: {k} must be 1 or empty with windows")
        for k in ("pickup_booking_rule_id", "drop_off_booking_rule_id"):
            if r.get(k) and r[k] not in rule_ids:
                problems.append(f"{where}: {k} {r[k]} is not in booking_rules.txt")
    for r in t.get("booking_rules.txt", []):
        where = f"booking_rules {r['booking_rule_id']}"
        kind = r.get("booking_type")
        notice = ("prior_notice_duration_min", "prior_notice_duration_max", "prior_notice_last_day",
                  "prior_notice_last_time", "prior_notice_start_day", "prior_notice_start_time",
                  "prior_notice_service_id")
        if kind == "0" and any(r.get(k) for k in notice):
            problems.append(f"{where}: real-time booking (0) takes no prior_notice_* field")
        elif kind == "1" and not r.get("prior_notice_duration_min"):
            problems.append(f"{where}: same-day booking (1) needs prior_notice_duration_min")
        elif kind == "2" and not (r.get("prior_notice_last_day") and r.get("prior_notice_last_time")):
            problems.append(f"{where}: prior-day booking (2) needs prior_notice_last_day and _last_time")
        elif kind not in ("0", "1", "2"):
            problems.append(f"{where}: booking_type must be 0, 1 or 2")
    return problems


def validate(path: str | Path, *, on: date, out_dir: str | Path) -> list[dict[str, Any]]:
    """Run the canonical GTFS rule set (the ``gtfs-validator`` package, a dev dependency) on a feed.

    Returns its notices (code, severity, totalNotices, sampleNotices), as in its report.json.
    """
    import subprocess
    import sys

    out = Path(out_dir)
    cmd = [sys.executable, "-c", "import sys; from gtfs_validator.cli import main; sys.exit(main())",
           "-i", str(path), "-o", str(out), "-c", "JP", "-d", on.isoformat()]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300)
    report = out / "report.json"
    if not report.exists():
        raise RuntimeError(f"gtfs-validator wrote no report (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return list(json.loads(report.read_text(encoding="utf-8"))["notices"])
