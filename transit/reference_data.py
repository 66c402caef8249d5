"""Reference data for a service area: stops, service area, fleet and service rules.

Pure loaders: standard library only (no database, no web framework, no settings). Every object
is frozen and validated when it is built; bad data raises :class:`ReferenceDataError` (a
``ValueError``) with a message naming the file and the field.

Times of day are local to ``ServiceRules.timezone``; durations are integer seconds and carry
``_s`` in their names.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, time
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "DEFAULT_DATA_DIR",
    "WEEKDAYS",
    "ZONES",
    "AreaFeature",
    "Break",
    "FleetVehicle",
    "ReferenceData",
    "ReferenceDataError",
    "ServiceArea",
    "ServiceRules",
    "Shift",
    "StopInfo",
    "load_area",
    "load_fleet",
    "load_okuma",
    "load_rules",
    "load_stops",
]

#: The repository's Okuma data directory.
DEFAULT_DATA_DIR: Path = Path(__file__).resolve().parents[1] / "data" / "okuma"

#: Allowed zone names; "other" is the corridor between the hubs.
ZONES: tuple[str, ...] = ("ogawara", "ono", "other")

#: Day names used by shifts and service days, in ``date.weekday()`` order.
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_ID_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_HHMM_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
# Hiragana, katakana (incl. prolonged sound mark), plus spacing and punctuation used in readings.
_KANA_RE = re.compile(r"^[\u3041-\u309F\u30A0-\u30FF\u3000 ・()()、,ー]+$")
_HAS_KANA_RE = re.compile(r"[\u3041-\u309F\u30A1-\u30FA]")


class ReferenceDataError(ValueError):
    """Reference data is missing, malformed or inconsistent."""


def _fail(where: str, message: str) -> ReferenceDataError:
    return ReferenceDataError(f"{where}: {message}")


def _parse_hhmm(value: Any, where: str) -> time:
    if isinstance(value, time):
        return value
    if not isinstance(value, str) or not _HHMM_RE.match(value):
        raise _fail(where, f"expected a local time 'HH:MM', got {value!r}")
    hh, mm = value.split(":")
    return time(int(hh), int(mm))


def _seconds_of_day(t: time) -> int:
    return t.hour * 3600 + t.minute * 60 + t.second


def _check_int(value: Any, where: str, *, minimum: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(where, f"must be an integer, got {value!r}")
    if value < minimum:
        raise _fail(where, f"must be >= {minimum}, got {value}")


def _check_days(days: Any, where: str) -> tuple[str, ...]:
    days = tuple(days)
    if not days:
        raise _fail(where, "needs at least one day")
    for d in days:
        if d not in WEEKDAYS:
            raise _fail(where, f"unknown day {d!r}; use one of {', '.join(WEEKDAYS)}")
    if len(set(days)) != len(days):
        raise _fail(where, "repeats a day")
    return days


# --------------------------------------------------------------------------------------- stops


@dataclass(frozen=True, slots=True)
class StopInfo:
    """A bookable stop (kiosk or not) with names in Japanese, kana and English."""

    stop_id: str
    name_ja: str
    name_kana: str
    name_en: str
    lat: float
    lon: float
    kiosk: bool
    wheelchair: bool
    zone: str
    source: str

    def __post_init__(self) -> None:
        where = f"stop {self.stop_id!r}"
        if not isinstance(self.stop_id, str) or not _ID_RE.match(self.stop_id):
            raise _fail(where, "stop_id must be ascii snake_case ([a-z][a-z0-9_]*)")
        for name in ("name_ja", "name_en", "source"):
            if not str(getattr(self, name)).strip():
                raise _fail(where, f"{name} is empty")
        if not _KANA_RE.match(self.name_kana) or not _HAS_KANA_RE.search(self.name_kana):
            raise _fail(where, f"name_kana must be a kana reading, got {self.name_kana!r}")
        for name, lo, hi in (("lat", -90.0, 90.0), ("lon", -180.0, 180.0)):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
                raise _fail(where, f"{name} out of range: {v!r}")
        if not isinstance(self.kiosk, bool) or not isinstance(self.wheelchair, bool):
            raise _fail(where, "kiosk and wheelchair must be booleans")
        if self.zone not in ZONES:
            raise _fail(where, f"zone must be one of {ZONES}, got {self.zone!r}")

    @property
    def estimated(self) -> bool:
        """True when the coordinate is an estimate rather than a published position."""
        return "estimated" in self.source.lower()


def _parse_flag(value: str, where: str) -> bool:
    v = value.strip()
    if v not in ("0", "1"):
        raise _fail(where, f"expected 0 or 1, got {value!r}")
    return v == "1"


def _parse_float(value: str, where: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _fail(where, f"expected a number, got {value!r}") from None


_STOP_COLUMNS = (
    "stop_id", "name_ja", "name_kana", "name_en", "lat", "lon",
    "kiosk", "wheelchair", "zone", "source",
)


def load_stops(path: Path) -> tuple[StopInfo, ...]:
    """Read ``stops.csv``; ids must be unique."""
    path = Path(path)
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in _STOP_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise _fail(str(path), f"missing columns {missing}")
        stops: list[StopInfo] = []
        seen: set[str] = set()
        for line_no, row in enumerate(reader, start=2):
            where = f"{path.name} line {line_no}"
            sid = (row["stop_id"] or "").strip()
            if sid in seen:
                raise _fail(where, f"duplicate stop_id {sid!r}")
            seen.add(sid)
            try:
                stops.append(
                    StopInfo(
                        stop_id=sid,
                        name_ja=row["name_ja"].strip(),
                        name_kana=row["name_kana"].strip(),
                        name_en=row["name_en"].strip(),
                        lat=_parse_float(row["lat"], f"{where} lat"),
                        lon=_parse_float(row["lon"], f"{where} lon"),
                        kiosk=_parse_flag(row["kiosk"], f"{where} kiosk"),
                        wheelchair=_parse_flag(row["wheelchair"], f"{where} wheelchair"),
                        zone=row["zone"].strip(),
                        source=row["source"].strip(),
                    )
                )
            except ReferenceDataError as e:
                raise _fail(where, str(e)) from None
    if not stops:
        raise _fail(str(path), "no stops")
    return tuple(stops)


# --------------------------------------------------------------------------------------- fleet


@dataclass(frozen=True, slots=True)
class Break:
    """A driver break inside a shift, local times."""

    start_local: time
    end_local: time

    def __post_init__(self) -> None:
        if self.end_local <= self.start_local:
            raise _fail("break", f"end {self.end_local} is not after start {self.start_local}")


@dataclass(frozen=True, slots=True)
class Shift:
    """A recurring shift: on ``days`` from ``start_local`` to ``end_local`` (same day)."""

    days: tuple[str, ...]
    start_local: time
    end_local: time
    breaks: tuple[Break, ...] = ()

    def __post_init__(self) -> None:
        _check_days(self.days, "shift days")
        if self.end_local <= self.start_local:
            raise _fail("shift", f"end {self.end_local} is not after start {self.start_local}")
        previous_end = self.start_local
        for b in sorted(self.breaks, key=lambda b: b.start_local):
            if b.start_local < previous_end or b.end_local > self.end_local:
                raise _fail("shift", f"break {b.start_local}-{b.end_local} overlaps or is "
                                     f"outside the shift {self.start_local}-{self.end_local}")
            previous_end = b.end_local

    def applies_on(self, day: date) -> bool:
        """True when this shift runs on ``day`` (public holidays are not modelled)."""
        return WEEKDAYS[day.weekday()] in self.days

    @property
    def start_s(self) -> int:
        """Shift start in seconds after local midnight."""
        return _seconds_of_day(self.start_local)

    @property
    def end_s(self) -> int:
        """Shift end in seconds after local midnight."""
        return _seconds_of_day(self.end_local)


@dataclass(frozen=True, slots=True)
class FleetVehicle:
    """A vehicle with its capacity by dimension, depot stop and recurring shifts."""

    id: str
    name_ja: str
    name_en: str
    seats: int
    wheelchairs: int
    parcels: int
    depot_stop_id: str
    shifts: tuple[Shift, ...] = ()

    def __post_init__(self) -> None:
        where = f"vehicle {self.id!r}"
        if not isinstance(self.id, str) or not _ID_RE.match(self.id):
            raise _fail(where, "id must be ascii snake_case")
        _check_int(self.seats, f"{where} seats", minimum=1)
        _check_int(self.wheelchairs, f"{where} wheelchairs")
        _check_int(self.parcels, f"{where} parcels")
        if not self.depot_stop_id:
            raise _fail(where, "depot_stop_id is empty")

    def shifts_on(self, day: date) -> tuple[Shift, ...]:
        """The shifts this vehicle runs on ``day``."""
        return tuple(s for s in self.shifts if s.applies_on(day))


def _shift_from_json(raw: Mapping[str, Any], where: str) -> Shift:
    try:
        breaks = tuple(
            Break(_parse_hhmm(b["start"], f"{where} break start"),
                  _parse_hhmm(b["end"], f"{where} break end"))
            for b in raw.get("breaks", ())
        )
        return Shift(
            days=_check_days(raw["days"], f"{where} days"),
            start_local=_parse_hhmm(raw["start"], f"{where} start"),
            end_local=_parse_hhmm(raw["end"], f"{where} end"),
            breaks=breaks,
        )
    except KeyError as e:
        raise _fail(where, f"missing field {e.args[0]!r}") from None
    except ReferenceDataError as e:
        raise _fail(where, str(e)) from None


def load_fleet(path: Path) -> tuple[FleetVehicle, ...]:
    """Read ``fleet.json`` (``{"vehicles": [...]}``); ids must be unique."""
    path = Path(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    raw_vehicles = data.get("vehicles") if isinstance(data, dict) else data
    if not isinstance(raw_vehicles, list) or not raw_vehicles:
        raise _fail(str(path), "expected a non-empty 'vehicles' list")
    vehicles: list[FleetVehicle] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_vehicles):
        where = f"{path.name} vehicles[{i}]"
        try:
            vid = raw["id"]
            if vid in seen:
                raise _fail(where, f"duplicate vehicle id {vid!r}")
            seen.add(vid)
            vehicles.append(
                FleetVehicle(
                    id=vid,
                    name_ja=raw["name_ja"],
                    name_en=raw["name_en"],
                    seats=raw["seats"],
                    wheelchairs=raw["wheelchairs"],
                    parcels=raw["parcels"],
                    depot_stop_id=raw["depot_stop_id"],
                    shifts=tuple(
                        _shift_from_json(s, f"{where} shifts[{j}]")
                        for j, s in enumerate(raw.get("shifts", ()))
                    ),
                )
            )
        except KeyError as e:
            raise _fail(where, f"missing field {e.args[0]!r}") from None
    return tuple(vehicles)


# --------------------------------------------------------------------------------------- rules


@dataclass(frozen=True, slots=True)
class ServiceRules:
    """Service rules; durations in seconds, times of day local to ``timezone``.

    The longest allowed ride for a trip whose direct drive takes ``direct_s`` is
    ``min(direct_s + max_ride_abs_s, max_ride_alpha * direct_s + max_ride_beta_s)``.
    """

    timezone: str
    service_start_local: time
    service_end_local: time
    service_days: tuple[str, ...]
    booking_horizon_days: int
    min_lead_s: int
    offer_ttl_s: int
    pickup_window_s: int
    max_wait_s: int
    max_ride_alpha: float
    max_ride_beta_s: int
    max_ride_abs_s: int
    dwell_per_boarding_s: int
    dwell_wheelchair_extra_s: int
    dwell_parcel_s: int
    no_show_wait_s: int
    arrival_early_s: int  # an arrival earlier than this before the pickup window needs the vehicle near the stop
    arrival_near_m: int  # "near the stop" for that rule, metres from the pickup
    event_future_tolerance_s: int  # tablet event times later than the server's clock by more are refused
    circuity: float
    speed_kmh: float
    max_party_size: int
    fare_yen: int
    chilled_max_out_of_store_s: int
    personal_data_retention_days: int
    office_phone: str | None  # the town office's number, shown by the pages ("call the office"); None = not set
    rider_delay_weight: int  # re-planning cost per second a rider arrives later than possible (docs/optimiser.md)
    # planning keeps each promised latest pickup / drop-off this much earlier (the rest absorbs delays)
    promise_buffer_s: int = 0

    def __post_init__(self) -> None:
        w = "rules"
        if self.office_phone is not None and not (
            isinstance(self.office_phone, str) and re.fullmatch(r"[0-9][0-9\-]{5,18}[0-9]", self.office_phone)
        ):
            raise _fail(w, f"office_phone must be digits and hyphens like 0240-12-3456, or null, "
                           f"got {self.office_phone!r}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise _fail(w, f"unknown timezone {self.timezone!r}") from None
        if not isinstance(self.service_start_local, time) or not isinstance(
            self.service_end_local, time
        ):
            raise _fail(w, "service_start_local/service_end_local must be datetime.time")
        if self.service_end_local <= self.service_start_local:
            raise _fail(w, f"service_end_local {self.service_end_local} is not after "
                           f"service_start_local {self.service_start_local}")
        _check_days(self.service_days, f"{w} service_days")
        _check_int(self.booking_horizon_days, f"{w} booking_horizon_days", minimum=0)
        _check_int(self.min_lead_s, f"{w} min_lead_s")
        for name in ("offer_ttl_s", "pickup_window_s", "max_wait_s"):
            _check_int(getattr(self, name), f"{w} {name}", minimum=1)
        if self.pickup_window_s > self.max_wait_s:
            raise _fail(w, f"pickup_window_s ({self.pickup_window_s}) must not exceed "
                           f"max_wait_s ({self.max_wait_s})")
        for name in ("max_ride_beta_s", "max_ride_abs_s", "dwell_per_boarding_s",
                     "dwell_wheelchair_extra_s", "dwell_parcel_s", "no_show_wait_s",
                     "fare_yen", "arrival_early_s", "event_future_tolerance_s", "promise_buffer_s"):
            _check_int(getattr(self, name), f"{w} {name}")
        _check_int(self.rider_delay_weight, f"{w} rider_delay_weight")
        for name in ("chilled_max_out_of_store_s", "personal_data_retention_days",
                     "max_party_size", "arrival_near_m"):
            _check_int(getattr(self, name), f"{w} {name}", minimum=1)
        if not _is_number(self.max_ride_alpha) or self.max_ride_alpha < 1.0:
            raise _fail(w, f"max_ride_alpha must be a number >= 1.0, got {self.max_ride_alpha!r}")
        if not _is_number(self.circuity) or self.circuity < 1.0:
            raise _fail(w, f"circuity must be a number >= 1.0, got {self.circuity!r}")
        if not _is_number(self.speed_kmh) or not 0 < self.speed_kmh <= 130:
            raise _fail(w, f"speed_kmh must be in (0, 130], got {self.speed_kmh!r}")

    @property
    def tz(self) -> ZoneInfo:
        """The service timezone as a ``ZoneInfo``."""
        return ZoneInfo(self.timezone)

    @property
    def service_start_s(self) -> int:
        """Service start in seconds after local midnight."""
        return _seconds_of_day(self.service_start_local)

    @property
    def service_end_s(self) -> int:
        """Service end in seconds after local midnight."""
        return _seconds_of_day(self.service_end_local)

    @property
    def booking_horizon_s(self) -> int:
        """How far ahead a ride may be booked, in seconds."""
        return self.booking_horizon_days * 86400

    def max_ride_s(self, direct_s: float) -> int:
        """Longest allowed in-vehicle time (s) for a ride whose direct drive is ``direct_s``."""
        if direct_s < 0:
            raise ValueError(f"direct_s must be >= 0, got {direct_s}")
        additive = direct_s + self.max_ride_abs_s
        factor = self.max_ride_alpha * direct_s + self.max_ride_beta_s
        return math.ceil(min(additive, factor))

    def dwell_s(self, boardings: int = 1, wheelchairs: int = 0, parcels: int = 0) -> int:
        """Dwell time (s) for boarding/alighting this many people, wheelchairs and parcels."""
        return (boardings * self.dwell_per_boarding_s
                + wheelchairs * self.dwell_wheelchair_extra_s
                + parcels * self.dwell_parcel_s)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], where: str = "rules") -> ServiceRules:
        """Build from a JSON-like mapping (times as 'HH:MM'); unknown keys are errors."""
        names = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - names)
        defaults = {n for n, f in cls.__dataclass_fields__.items() if f.default is not dataclasses.MISSING}
        missing = sorted(names - set(raw) - defaults)
        if unknown:
            raise _fail(where, f"unknown fields {unknown}")
        if missing:
            raise _fail(where, f"missing fields {missing}")
        values = dict(raw)
        values["service_start_local"] = _parse_hhmm(raw["service_start_local"],
                                                    f"{where} service_start_local")
        values["service_end_local"] = _parse_hhmm(raw["service_end_local"],
                                                  f"{where} service_end_local")
        values["service_days"] = _check_days(raw["service_days"], f"{where} service_days")
        return cls(**values)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def load_rules(path: Path) -> ServiceRules:
    """Read ``rules.json``."""
    path = Path(path)
    raw = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise _fail(str(path), "expected a JSON object")
    return ServiceRules.from_mapping(raw, where=path.name)


# ---------------------------------------------------------------------------------------- area

Ring = tuple[tuple[float, float], ...]  # (lon, lat) vertices, closed or not


def _ring_contains(ring: Ring, lon: float, lat: float) -> bool:
    """Even-odd ray casting: cast a ray towards +lon and count edge crossings."""
    inside = False
    n = len(ring)
    j = n - 1
    for i in range(n):
        xi, yi = ring[i]
        xj, yj = ring[j]
        if (yi > lat) != (yj > lat):
            x_cross = xi + (lat - yi) * (xj - xi) / (yj - yi)
            if lon < x_cross:
                inside = not inside
        j = i
    return inside


def _on_ring_edge(ring: Ring, lon: float, lat: float, eps: float = 1e-12) -> bool:
    n = len(ring)
    for i in range(n):
        (x1, y1), (x2, y2) = ring[i], ring[(i + 1) % n]
        cross = (x2 - x1) * (lat - y1) - (y2 - y1) * (lon - x1)
        if abs(cross) > eps:
            continue
        if min(x1, x2) - eps <= lon <= max(x1, x2) + eps and \
           min(y1, y2) - eps <= lat <= max(y1, y2) + eps:
            return True
    return False


@dataclass(frozen=True, slots=True)
class AreaFeature:
    """One feature of the service area: a zone made of one or more polygons (with holes)."""

    id: str
    zone: str
    name_ja: str
    name_en: str
    polygons: tuple[tuple[Ring, ...], ...]  # each polygon: outer ring, then holes

    def __post_init__(self) -> None:
        where = f"area feature {self.id!r}"
        if self.zone not in ZONES:
            raise _fail(where, f"zone must be one of {ZONES}, got {self.zone!r}")
        if not self.polygons:
            raise _fail(where, "has no polygons")
        for poly in self.polygons:
            if not poly:
                raise _fail(where, "polygon without rings")
            for ring in poly:
                if len(ring) < 3:
                    raise _fail(where, "ring with fewer than 3 vertices")

    def contains(self, lat: float, lon: float) -> bool:
        """True when (lat, lon) is inside (or on the border of) this feature."""
        for outer, *holes in self.polygons:
            if _on_ring_edge(outer, lon, lat):
                return True
            if not _ring_contains(outer, lon, lat):
                continue
            if any(_ring_contains(h, lon, lat) and not _on_ring_edge(h, lon, lat)
                   for h in holes):
                continue
            return True
        return False


@dataclass(frozen=True, slots=True)
class ServiceArea:
    """The union of zone features. Hub zones win over the corridor where they overlap."""

    features: tuple[AreaFeature, ...]

    def __post_init__(self) -> None:
        if not self.features:
            raise _fail("service area", "has no features")

    def contains(self, lat: float, lon: float) -> bool:
        """True when (lat, lon) lies in any feature of the service area."""
        return any(f.contains(lat, lon) for f in self.features)

    def zone_of(self, lat: float, lon: float) -> str | None:
        """The zone at (lat, lon): a hub ('ogawara'/'ono') first, else 'other'; None outside."""
        hits = [f.zone for f in self.features if f.contains(lat, lon)]
        for zone in ZONES:  # ZONES lists the hubs before "other"
            if zone in hits:
                return zone
        return None

    @classmethod
    def from_geojson(cls, data: Mapping[str, Any], where: str = "service area") -> ServiceArea:
        """Build from a GeoJSON FeatureCollection of Polygon/MultiPolygon features."""
        if data.get("type") != "FeatureCollection":
            raise _fail(where, "expected a GeoJSON FeatureCollection")
        features: list[AreaFeature] = []
        for i, feat in enumerate(data.get("features") or ()):
            fw = f"{where} features[{i}]"
            geom = feat.get("geometry") or {}
            props = feat.get("properties") or {}
            gtype = geom.get("type")
            coords: Any = geom.get("coordinates") or ()
            if gtype == "Polygon":
                raw_polys = [coords]
            elif gtype == "MultiPolygon":
                raw_polys = list(coords)
            else:
                raise _fail(fw, f"geometry must be Polygon or MultiPolygon, got {gtype!r}")
            try:
                polygons = tuple(
                    tuple(_ring(r) for r in poly) for poly in raw_polys
                )
            except (TypeError, ValueError, IndexError):
                raise _fail(fw, "malformed coordinates") from None
            try:
                features.append(
                    AreaFeature(
                        id=str(feat.get("id") or props.get("id") or f"feature_{i}"),
                        zone=props.get("zone", "other"),
                        name_ja=props.get("name_ja", ""),
                        name_en=props.get("name_en", ""),
                        polygons=polygons,
                    )
                )
            except ReferenceDataError as e:
                raise _fail(fw, str(e)) from None
        return cls(tuple(features))


def _ring(raw: Iterable[Any]) -> Ring:
    pts = tuple((float(p[0]), float(p[1])) for p in raw)
    if len(pts) > 1 and pts[0] == pts[-1]:
        pts = pts[:-1]
    for lon, lat in pts:
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise ValueError("coordinate out of range")
    return pts


def load_area(path: Path) -> ServiceArea:
    """Read ``service_area.geojson``."""
    path = Path(path)
    return ServiceArea.from_geojson(json.loads(path.read_text(encoding="utf-8")), path.name)


# ------------------------------------------------------------------------------------ together


@dataclass(frozen=True, slots=True)
class ReferenceData:
    """Stops, fleet, rules and area of one service area, checked against each other."""

    stops: tuple[StopInfo, ...]
    fleet: tuple[FleetVehicle, ...]
    rules: ServiceRules
    area: ServiceArea
    stops_by_id: Mapping[str, StopInfo] = field(init=False, repr=False, compare=False)
    vehicles_by_id: Mapping[str, FleetVehicle] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id: dict[str, StopInfo] = {}
        for s in self.stops:
            if s.stop_id in by_id:
                raise _fail("stops", f"duplicate stop_id {s.stop_id!r}")
            by_id[s.stop_id] = s
            if not self.area.contains(s.lat, s.lon):
                raise _fail("stops", f"stop {s.stop_id!r} ({s.lat}, {s.lon}) lies outside "
                                     "the service area")
            zone = self.area.zone_of(s.lat, s.lon)
            if zone != s.zone:
                raise _fail("stops", f"stop {s.stop_id!r} says zone {s.zone!r} but the area "
                                     f"puts it in {zone!r}")
        vehicles: dict[str, FleetVehicle] = {}
        for v in self.fleet:
            if v.id in vehicles:
                raise _fail("fleet", f"duplicate vehicle id {v.id!r}")
            if v.depot_stop_id not in by_id:
                raise _fail("fleet", f"vehicle {v.id!r} depot {v.depot_stop_id!r} is not a stop")
            vehicles[v.id] = v
        object.__setattr__(self, "stops_by_id", MappingProxyType(by_id))
        object.__setattr__(self, "vehicles_by_id", MappingProxyType(vehicles))

    def stop(self, stop_id: str) -> StopInfo:
        """The stop with this id; ``KeyError`` if unknown."""
        return self.stops_by_id[stop_id]

    def kiosk_stops(self) -> tuple[StopInfo, ...]:
        """Stops with a digital kiosk."""
        return tuple(s for s in self.stops if s.kiosk)


def load_okuma(data_dir: str | Path | None = None) -> ReferenceData:
    """Load and cross-check stops.csv, fleet.json, rules.json and service_area.geojson."""
    d = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
    return ReferenceData(
        stops=load_stops(d / "stops.csv"),
        fleet=load_fleet(d / "fleet.json"),
        rules=load_rules(d / "rules.json"),
        area=load_area(d / "service_area.geojson"),
    )
