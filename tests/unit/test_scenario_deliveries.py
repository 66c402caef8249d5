"""The Okuma weekday scenario carries grocery deliveries, drawn apart from the rides."""

from __future__ import annotations

from datetime import timedelta

from transit import scenarios
from transit.stores import load_stores


def test_the_weekday_has_about_30_deliveries_with_windows_from_the_stores() -> None:
    scn = scenarios.load("okuma-weekday")
    stores = load_stores()
    for seed in (1, 2, 3):
        goods = [t for t in scenarios.generate(scn, seed) if t.kind == "delivery"]
        assert 18 <= len(goods) <= 45, "about 30 deliveries a day"
        for t in goods:
            store = stores[t.store_id]
            assert t.origin == store.stop_id
            assert t.destination in scn.raw["places"]["homes"]
            assert t.window_end is not None and t.window_end - t.time == timedelta(hours=1)
            assert scn.at("09:00") <= t.time <= scn.at("18:30")
            assert t.time.minute % 15 == 0
            assert timedelta(minutes=60) <= t.time - t.made_at <= timedelta(minutes=150)
            assert 1 <= t.parcels <= 3 and t.party == 0
            assert t.temperature in ("ambient", "chilled", "frozen")
            if t.channel == "kiosk":
                assert t.destination in scn.raw["kiosk_stops"], "a kiosk orders for its own stop"
        assert {t.temperature for t in goods} >= {"chilled", "ambient"}
        assert {t.store_id for t in goods} == set(stores)


def test_the_rides_are_the_same_with_and_without_the_deliveries() -> None:
    scn = scenarios.load("okuma-weekday")
    with_goods = scenarios.generate(scn, 5)
    without = scenarios.generate(scn, 5, deliveries=False)
    assert [t for t in with_goods if t.kind == "ride"] == without
    assert all(t.kind == "ride" for t in without)
    assert len(with_goods) > len(without)
    assert with_goods == scenarios.generate(scn, 5), "same seed, same day"
    assert [t for t in with_goods if t.kind == "delivery"] != [
        t for t in scenarios.generate(scn, 6) if t.kind == "delivery"]


def test_absent_recipients_follow_the_rate() -> None:
    scn = scenarios.load("okuma-weekday")
    raw = {**scn.raw, "rates": {**scn.raw["rates"], "absent": 1.0}}
    goods = [t for t in scenarios.generate(scenarios.Scenario(scn.name, raw, scn.trains), 1) if t.kind == "delivery"]
    assert goods and all(t.absent for t in goods)
    raw["rates"]["absent"] = 0.0
    goods = [t for t in scenarios.generate(scenarios.Scenario(scn.name, raw, scn.trains), 1) if t.kind == "delivery"]
    assert goods and not any(t.absent for t in goods)
