"""Demand scenarios for the what-if simulator: a scenario file plus a seed give the same requests.

A scenario (``data/scenarios/<name>.json``, format in ``data/scenarios/README.md``) describes
*flows* of people (clinic visits, shopping, school, commuters, train connections, ...) with how
many trips, when, from where to where, and how they book; rates of cancellations, no-shows and
delays; and the fleet. ``generate()`` draws the day's requests from a ``numpy`` Generator seeded
with the seed, so the same scenario and seed always give the same demand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "data" / "scenarios"
CHANNELS = ("app", "kiosk", "phone")
MODES = ("now", "leave_at", "arrive_by")
KINDS = ("ride", "delivery")  # "delivery": goods from a store to a home stop (``_generate_deliveries``)
TEMPERATURES = ("ambient", "chilled", "frozen")


class ScenarioError(ValueError):
    pass


@dataclass(frozen=True)
class Trip:
    """One request as a person makes it: when they ask, what they ask for, and what they do later."""

    id: str
    flow: str
    kind: str  # ride | delivery
    made_at: datetime  # when the person asks (aware)
    mode: str  # now | leave_at | arrive_by
    time: datetime  # the asked departure (now / leave_at) or arrival (arrive_by)
    origin: str
    destination: str
    party: int
    wheelchair: bool
    channel: str  # app | kiosk | phone
    cancel_at: datetime | None = None  # the rider cancels then (if still booked)
    no_show: bool = False  # the rider is not at the stop
    train: dict[str, Any] | None = None  # {"direction", "time", "connection": "catch"|"from"}
    note: str = ""
    # a delivery (kind "delivery"): ``origin`` is the store's stop, ``time`` the window's start
    store_id: str = ""
    window_end: datetime | None = None
    parcels: int = 0
    temperature: str = ""
    absent: bool = False  # the recipient is not there at the handover: the parcel goes back


@dataclass
class Scenario:
    name: str
    raw: dict[str, Any]
    trains: list[dict[str, Any]] = field(default_factory=list)

    @property
    def reference(self) -> str:
        return self.raw.get("reference", "okuma")

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.raw.get("timezone", "Asia/Tokyo"))

    @property
    def day(self) -> date:
        return date.fromisoformat(self.raw.get("date", "2026-11-26"))

    def at(self, hhmm: str, day: date | None = None) -> datetime:
        return datetime.combine(day or self.day, time.fromisoformat(hhmm), tzinfo=self.tz)

    @property
    def rates(self) -> dict[str, float]:
        return {"cancel": 0.0, "no_show": 0.0, "delay": 0.0, "delayed_factor": 1.5, "absent": 0.0,
                **self.raw.get("rates", {})}

    @property
    def fleet(self) -> dict[str, Any]:
        return dict(self.raw.get("fleet", {}))


def load(name_or_path: str) -> Scenario:
    """A scenario by name (``data/scenarios/<name>.json``) or path; ``extends`` and ``scale`` resolved."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SCENARIO_DIR / f"{name_or_path}.json"
    if not path.exists():
        known = sorted(p.stem for p in SCENARIO_DIR.glob("*.json") if p.stem not in ("joban_ono", "weekday"))
        raise ScenarioError(f"unknown scenario {name_or_path!r}; known: {', '.join(known)}")
    raw = json.loads(path.read_text(encoding="utf-8"))
    if "extends" in raw:
        base = load(str(path.parent / f"{raw['extends']}.json")).raw
        scale = float(base.get("scale", 1.0)) * float(raw.get("scale", 1.0))
        raw = {**base, **{k: v for k, v in raw.items() if k != "extends"}, "scale": scale}
    if "flows" not in raw and "generator" not in raw:
        raise ScenarioError(f"{path.name} is not a simulator scenario (no flows); see data/scenarios/README.md")
    scn = Scenario(raw.get("name", path.stem), raw)
    if raw.get("trains"):
        tpath = path.parent / raw["trains"]
        scn.trains = json.loads(tpath.read_text(encoding="utf-8"))["trains"]
    return scn


# ------------------------------------------------------------------------------ generation


def _hhmm_s(hhmm: str) -> int:
    t = time.fromisoformat(hhmm)
    return t.hour * 3600 + t.minute * 60


def _pick(rng: np.random.Generator, items: list[Any], weights: list[float] | None = None) -> Any:
    if weights is None:
        return items[int(rng.integers(len(items)))]
    w = np.asarray(weights, dtype=float)
    return items[int(rng.choice(len(items), p=w / w.sum()))]


def _places(scn: Scenario, spec: Any) -> list[str]:
    groups = scn.raw.get("places", {})
    if isinstance(spec, str):
        if spec not in groups:
            raise ScenarioError(f"{scn.name}: unknown place group {spec!r}")
        return list(groups[spec])
    return list(spec)


def _party(rng: np.random.Generator, flow: dict[str, Any]) -> int:
    sizes = flow.get("party", {"1": 1.0})
    keys = list(sizes)
    return int(_pick(rng, keys, [float(sizes[k]) for k in keys]))


def _time_of_day(rng: np.random.Generator, flow: dict[str, Any]) -> int:
    """Seconds of the day from the flow's peaks: [[centre HH:MM, spread min, weight], ...]."""
    peaks = flow["peaks"]
    centre, spread, _w = _pick(rng, peaks, [float(p[2]) if len(p) > 2 else 1.0 for p in peaks])
    return int(_hhmm_s(centre) + rng.normal(0.0, float(spread) * 60))


def generate(scn: Scenario, seed: int, *, deliveries: bool = True) -> list[Trip]:
    """The day's requests, in the order people make them (same scenario + seed -> same list).

    ``deliveries=False`` leaves the ``kind: delivery`` flows out; the rides are the same either
    way (the deliveries are drawn from their own generator), so a run with and without the
    deliveries carries the same passenger demand."""
    if scn.raw.get("generator") == "city":
        return _generate_city(scn, seed)
    trips = _generate_rides(scn, seed)
    if deliveries:
        trips += _generate_deliveries(scn, seed)
    trips.sort(key=lambda t: (t.made_at, t.id))
    return trips


def _generate_rides(scn: Scenario, seed: int) -> list[Trip]:
    rng = np.random.default_rng(seed)
    raw = scn.raw
    scale = float(raw.get("scale", 1.0))
    svc_start, svc_end = _hhmm_s(raw.get("service_start", "07:00")), _hhmm_s(raw.get("service_end", "20:00"))
    booking = raw.get("booking", {})
    rates = scn.rates
    channels = raw.get("channels", {"app": 1.0})
    kiosks = set(raw.get("kiosk_stops", []))
    trips: list[Trip] = []
    n = 0

    def make(flow: dict[str, Any], name: str, mode: str, when_s: int, origin: str, dest: str, party: int,
             wheelchair: bool, train: dict[str, Any] | None = None) -> None:
        nonlocal n
        when_s = min(max(when_s, svc_start + 60), svc_end - 15 * 60)
        when = datetime.combine(scn.day, time(), tzinfo=scn.tz) + timedelta(seconds=when_s)
        ahead = float(flow.get("booked_ahead", booking.get("ahead_share", 0.5)))
        if mode == "arrive_by" or rng.random() < ahead:
            lo, hi = booking.get("ahead_min", [20, 240])
            made = when - timedelta(minutes=float(rng.uniform(lo, hi)))
            earliest = datetime.combine(scn.day, time.fromisoformat(raw.get("sim_start", "06:30")), tzinfo=scn.tz)
            made = max(made, earliest)
            mode = mode if mode != "now" else "leave_at"
        else:
            made, mode = when, "now"
        ch_keys = [c for c in channels if c != "kiosk" or origin in kiosks]
        channel = _pick(rng, ch_keys, [float(channels[c]) for c in ch_keys])
        if channel == "kiosk" and mode != "now":
            channel = "app"  # a kiosk books from where you stand, now
        cancel_at = None
        if rng.random() < rates["cancel"]:
            start = when if mode != "arrive_by" else when - timedelta(minutes=40)
            span = max(60.0, (start - made).total_seconds())
            cancel_at = made + timedelta(seconds=float(rng.uniform(30.0, span)))
        no_show = bool(rng.random() < rates["no_show"])
        n += 1
        trips.append(Trip(f"{scn.name}-{n:05d}", name, flow.get("kind", "ride"), made, mode, when,
                          origin, dest, party, wheelchair, channel, cancel_at, no_show, train,
                          flow.get("note", "")))

    for flow in raw.get("flows", []):
        name = flow["name"]
        if flow.get("kind", "ride") not in KINDS:
            raise ScenarioError(f"{scn.name}: flow {name}: kind must be one of {KINDS}")
        if flow.get("kind") == "delivery":
            continue  # drawn by _generate_deliveries, from its own generator
        count = int(rng.poisson(float(flow["count"]) * scale))
        origins, dests = _places(scn, flow["from"]), _places(scn, flow["to"])
        wheel = float(flow.get("wheelchair", 0.0))
        for _ in range(count):
            party = _party(rng, flow)
            wheelchair = bool(rng.random() < wheel)
            train = None
            if flow.get("train"):
                direction_ok = [t for t in scn.trains if t["direction"] in flow.get("directions", ["up", "down"])]
                t = _pick(rng, direction_ok)
                train = {"direction": t["direction"], "time": t["time"], "connection": flow["train"],
                         "name": t.get("name", "")}
                tt = _hhmm_s(t["time"])
                if flow["train"] == "catch":  # arrive at the station before the train leaves
                    when_s, mode = tt - int(flow.get("buffer_min", 5)) * 60, "arrive_by"
                else:  # from an arriving train: leave the station a few minutes after
                    when_s, mode = tt + int(flow.get("buffer_min", 3)) * 60, "leave_at"
                if not svc_start + 30 * 60 <= when_s <= svc_end - 20 * 60:
                    continue
            else:
                when_s, mode = _time_of_day(rng, flow), "leave_at"
            o = _pick(rng, origins)
            d = _pick(rng, [x for x in dests if x != o] or dests)
            make(flow, name, mode, when_s, o, d, party, wheelchair, train)
            back = flow.get("return_after_min")
            if back and rng.random() < float(flow.get("return_share", 1.0)):
                later = when_s + int(rng.uniform(back[0], back[1]) * 60)
                if later <= svc_end - 20 * 60:
                    make(flow, name + "_return", "leave_at", later, d, o, party, wheelchair)
    return trips


def _weighted(rng: np.random.Generator, spec: dict[str, float]) -> str:
    keys = list(spec)
    return str(_pick(rng, keys, [float(spec[k]) for k in keys]))


def _generate_deliveries(scn: Scenario, seed: int) -> list[Trip]:
    """The ``kind: delivery`` flows: a resident orders goods from a store (``from``: store ids) to
    a home stop (``to``) for a window of ``window_min`` minutes starting at a time drawn from
    ``peaks`` (on a quarter hour, within ``window_between``), ``ordered_ahead_min`` before it,
    by one of the scenario's channels (a kiosk only at a kiosk stop, for its own stop)."""
    from transit.stores import load_stores

    rng = np.random.default_rng([seed, 9])  # not the rides' generator: the rides stay as they are
    raw = scn.raw
    scale = float(raw.get("scale", 1.0))
    stores = load_stores()
    channels = raw.get("channels", {"app": 1.0})
    kiosks = set(raw.get("kiosk_stops", []))
    rates = scn.rates
    day0 = datetime.combine(scn.day, time(), tzinfo=scn.tz)
    earliest_made = scn.at(raw.get("sim_start", "06:30"))
    trips: list[Trip] = []
    n = 0
    for flow in raw.get("flows", []):
        if flow.get("kind") != "delivery":
            continue
        name = flow["name"]
        count = int(rng.poisson(float(flow["count"]) * scale))
        if count and not flow.get("peaks"):
            raise ScenarioError(f"{scn.name}: flow {name}: a delivery flow needs peaks")
        store_ids = list(flow["from"]) if isinstance(flow["from"], list) else [flow["from"]]
        unknown = [s for s in store_ids if s not in stores]
        if unknown:
            raise ScenarioError(f"{scn.name}: flow {name}: unknown store(s) {unknown}; known: {sorted(stores)}")
        dests = _places(scn, flow["to"])
        width = int(flow.get("window_min", 60)) * 60
        lo_s, hi_s = (_hhmm_s(x) for x in flow.get("window_between", ["09:00", "18:30"]))
        ahead_lo, ahead_hi = flow.get("ordered_ahead_min", [60, 120])
        parcels = flow.get("parcels", {"1": 1.0})
        temps = flow.get("temperature", {"chilled": 1.0})
        if set(temps) - set(TEMPERATURES):
            raise ScenarioError(f"{scn.name}: flow {name}: temperature must be one of {TEMPERATURES}")
        for _ in range(count):
            start_s = _time_of_day(rng, flow) // 900 * 900
            start_s = min(max(start_s, lo_s), hi_s)
            start = day0 + timedelta(seconds=start_s)
            made = max(start - timedelta(minutes=float(rng.uniform(ahead_lo, ahead_hi))), earliest_made)
            store = stores[_pick(rng, store_ids)]
            dest = _pick(rng, dests)
            ch_keys = [c for c in channels if c != "kiosk" or dest in kiosks]
            channel = _pick(rng, ch_keys, [float(channels[c]) for c in ch_keys])
            cancel_at = None
            if rng.random() < rates["cancel"]:
                span = max(60.0, (start - made).total_seconds() - 1800)
                cancel_at = made + timedelta(seconds=float(rng.uniform(30.0, span)))
            n_parcels = int(_weighted(rng, parcels))
            temperature = _weighted(rng, temps)
            absent = bool(rng.random() < rates["absent"])
            n += 1
            trips.append(Trip(f"{scn.name}-d{n:04d}", name, "delivery", made, "window", start, store.stop_id, dest,
                              0, False, channel, cancel_at, False, None, flow.get("note", ""),
                              store_id=store.id, window_end=start + timedelta(seconds=width), parcels=n_parcels,
                              temperature=temperature, absent=absent))
    return trips


def _generate_city(scn: Scenario, seed: int) -> list[Trip]:
    """The synthetic city: uniform origins on the stop grid, destinations a few km away."""
    rng = np.random.default_rng(seed)
    raw = scn.raw
    grid = int(raw["grid"])
    total = int(raw["requests"])
    svc_start, svc_end = _hhmm_s(raw.get("service_start", "07:00")), _hhmm_s(raw.get("service_end", "20:00"))
    peaks = raw.get("peaks", [["08:00", 60, 2.0], ["12:30", 120, 1.5], ["17:30", 75, 2.0]])
    flat = float(raw.get("flat_share", 0.3))
    km = float(raw["spacing_km"])
    trips: list[Trip] = []
    rates = scn.rates
    for n in range(total):
        if rng.random() < flat:
            when_s = int(rng.uniform(svc_start + 600, svc_end - 1800))
        else:
            when_s = _time_of_day(rng, {"peaks": peaks})
        when_s = min(max(when_s, svc_start + 600), svc_end - 1800)
        r, c = int(rng.integers(grid)), int(rng.integers(grid))
        dist = max(1.5, float(rng.gamma(2.0, float(raw.get("mean_trip_km", 4.0)) / 2.0))) / km
        ang = float(rng.uniform(0, 2 * np.pi))
        r2 = int(np.clip(round(r + dist * np.sin(ang)), 0, grid - 1))
        c2 = int(np.clip(round(c + dist * np.cos(ang)), 0, grid - 1))
        if (r2, c2) == (r, c):
            c2 = (c + 2) % grid
        when = datetime.combine(scn.day, time(), tzinfo=scn.tz) + timedelta(seconds=when_s)
        if rng.random() < float(raw.get("booking", {}).get("ahead_share", 0.3)):
            made, mode = when - timedelta(minutes=float(rng.uniform(15, 90))), "leave_at"
        else:
            made, mode = when, "now"
        cancel_at = made + timedelta(seconds=60) if rng.random() < rates["cancel"] else None
        trips.append(Trip(f"city-{n:05d}", "city", "ride", made, mode, when, f"g_{r:02d}_{c:02d}",
                          f"g_{r2:02d}_{c2:02d}", 1, False, _pick(rng, ["app", "phone"], [0.8, 0.2]),
                          cancel_at, bool(rng.random() < rates["no_show"])))
    trips.sort(key=lambda t: (t.made_at, t.id))
    return trips


def in_window(trips: list[Trip], start: datetime | None, end: datetime | None) -> list[Trip]:
    """The trips whose asked time falls in [start, end) (a shorter run)."""
    return [t for t in trips if (start is None or t.time >= start) and (end is None or t.time < end)]
