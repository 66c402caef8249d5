"""Stores that prepare grocery orders for the minibuses (data/okuma/stores.json), checked on load."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from types import MappingProxyType
from zoneinfo import ZoneInfo

from transit import errors
from transit.clock import to_epoch
from transit.reference_data import DEFAULT_DATA_DIR, ReferenceDataError


@dataclass(frozen=True, slots=True)
class Store:
    id: str
    name_ja: str
    name_kana: str
    name_en: str
    stop_id: str  # where the minibus picks orders up; a store account is bound to this stop
    opens_local: time
    closes_local: time
    preparation_s: int  # from an order's arrival at the store to "ready", at the earliest

    def opens_at(self, day: date, tz: ZoneInfo) -> datetime:
        return datetime.combine(day, self.opens_local, tz)

    def closes_at(self, day: date, tz: ZoneInfo) -> datetime:
        return datetime.combine(day, self.closes_local, tz)


def _hhmm(value: object, where: str) -> time:
    try:
        h, m = str(value).split(":")
        return time(int(h), int(m))
    except (ValueError, TypeError):
        raise ReferenceDataError(f"stores: {where} must be HH:MM, got {value!r}") from None


def load_stores(path: str | Path | None = None, stop_ids: Iterable[str] | None = None) -> Mapping[str, Store]:
    """The stores by id; every store's stop must be one of ``stop_ids`` when given."""
    p = Path(path) if path is not None else DEFAULT_DATA_DIR / "stores.json"
    raw = json.loads(p.read_text(encoding="utf-8"))
    known = set(stop_ids) if stop_ids is not None else None
    out: dict[str, Store] = {}
    for r in raw["stores"]:
        sid = r["id"]
        if sid in out:
            raise ReferenceDataError(f"stores: duplicate store id {sid!r}")
        s = Store(sid, r["name_ja"], r["name_kana"], r["name_en"], r["stop_id"],
                  _hhmm(r["opens_local"], f"{sid} opens_local"), _hhmm(r["closes_local"], f"{sid} closes_local"),
                  int(r["preparation_s"]))
        if s.closes_local <= s.opens_local:
            raise ReferenceDataError(f"stores: {sid} closes before it opens")
        if not 0 <= s.preparation_s <= 4 * 3600:
            raise ReferenceDataError(f"stores: {sid} preparation_s must be 0..14400")
        if known is not None and s.stop_id not in known:
            raise ReferenceDataError(f"stores: {sid} stop {s.stop_id!r} is not a stop")
        if any(o.stop_id == s.stop_id for o in out.values()):
            raise ReferenceDataError(f"stores: two stores at stop {s.stop_id!r}")
        out[sid] = s
    return MappingProxyType(out)


def store_at_stop(stores: Mapping[str, Store], stop_id: str | None) -> Store | None:
    """The store whose pickup stop is ``stop_id`` (how a store account finds its store)."""
    return next((s for s in stores.values() if s.stop_id == stop_id), None)


# ------------------------------------------------------------------------------ delivery timing

TEMPERATURES = ("ambient", "chilled", "frozen")
MIN_WINDOW_S = 30 * 60  # a delivery window is at least 30 minutes wide ...
MAX_WINDOW_S = 4 * 3600  # ... and at most 4 hours


class DeliveryTooSoon(errors.DomainError):
    kind = "conflict"
    message_ja = "お店の準備と移動が間に合いません。もっと遅いお届け時間を選んでください。"
    message_en = "The store cannot prepare and the minibus cannot bring it by then. Please choose a later window."


class StoreClosed(errors.DomainError):
    kind = "conflict"
    message_ja = "その時間はお店の営業時間外です。"
    message_en = "The store is closed at that time."


@dataclass(frozen=True, slots=True)
class DeliveryTiming:
    """A delivery as the planner's windows: picked up when ready, dropped inside the window."""

    ready_s: int  # the order can be ready (preparation time, opening hours)
    pickup_earliest_s: int  # ready, and late enough that waiting for the window keeps the ride limit
    pickup_latest_s: int
    window_start_s: int
    window_end_s: int
    max_ride_s: int  # chilled and frozen goods: the rules' longest time out of the store


def delivery_timing(store: Store, *, tz: ZoneInfo, now: datetime, window_start: datetime, window_end: datetime,
                    temperature: str, direct_s: int, service_s: int, chilled_max_s: int) -> DeliveryTiming:
    """The windows of one delivery from ``store``; a clear domain error when it cannot be done."""
    if temperature not in TEMPERATURES:
        raise errors.InvalidInput("温度帯は ambient / chilled / frozen のいずれかです。",
                                  "temperature must be ambient, chilled or frozen.", field="temperature")
    width = (window_end - window_start).total_seconds()
    if width < MIN_WINDOW_S or width > MAX_WINDOW_S:
        raise errors.InvalidInput(
            f"お届け時間の幅は{MIN_WINDOW_S // 60}分から{MAX_WINDOW_S // 3600}時間です。",
            f"A delivery window is {MIN_WINDOW_S // 60} minutes to {MAX_WINDOW_S // 3600} hours wide.",
            field="window_end",
        )
    day = window_start.astimezone(tz).date()
    opens, closes = store.opens_at(day, tz), store.closes_at(day, tz)
    ready = max(now + timedelta(seconds=store.preparation_s), opens)
    if ready > closes:
        raise StoreClosed(
            f"{store.name_ja}の営業時間は{store.opens_local:%H:%M}〜{store.closes_local:%H:%M}です。",
            f"{store.name_en} is open {store.opens_local:%H:%M} to {store.closes_local:%H:%M}.",
        )
    ready_s = to_epoch(ready)
    end_s = to_epoch(window_end)
    pickup_latest = end_s - direct_s - service_s
    if pickup_latest < ready_s:
        earliest_end = ready + timedelta(seconds=direct_s + service_s)
        raise DeliveryTooSoon(earliest_window_end=earliest_end.isoformat())
    max_ride = chilled_max_s if temperature != "ambient" else max(direct_s, end_s - ready_s)
    if max_ride < direct_s:
        raise DeliveryTooSoon("冷蔵・冷凍品をこの場所へ時間内にお届けできません。",
                              "Chilled or frozen goods cannot reach this place in time.")
    # Goods leave the store no earlier than they need to: a pickup at pickup_earliest that waits for
    # the window's start still rides at most max_ride (the planners start service as early as allowed).
    pickup_earliest = max(ready_s, to_epoch(window_start) - max_ride - service_s)
    return DeliveryTiming(ready_s, pickup_earliest, pickup_latest, to_epoch(window_start), end_s, max_ride)
