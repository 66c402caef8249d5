"""The what-if simulator's report: report.html with PNG plots (matplotlib), and the compare plot."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from transit import kpi


def _save(fig: Any, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path.name


def write_report(res: Any, out: Path) -> Path:
    """report.html and its PNGs in ``out``; returns the page's path."""
    out.mkdir(parents=True, exist_ok=True)
    k, s, tz = res.kpis, res.summary, res.tz
    served = [r for r in res.rides if r.served]
    imgs: list[tuple[str, str]] = []

    fig, ax = plt.subplots(figsize=(6, 3))
    labels = ["served"] + [f"refused: {c}" for c in sorted(k.refused_by_cause)]
    values = [k.served] + [k.refused_by_cause[c] for c in sorted(k.refused_by_cause)]
    ax.barh(labels, values, color=["tab:green"] + ["tab:red"] * (len(labels) - 1))
    ax.set_xlabel("requests")
    ax.set_title(f"Requests served and refused ({k.served_pct} % served)")
    imgs.append(("Requests served and refused by cause", _save(fig, out / "requests.png")))

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.hist(k.waits_min, bins=range(0, 32, 2), color="tab:blue")
    ax.set_xlabel("wait (min): vehicle at the pickup minus the asked time")
    ax.set_ylabel("rides")
    ax.set_title(f"Wait: mean {k.mean_wait_min} min, p95 {k.p95_wait_min} min")
    imgs.append(("Wait distribution", _save(fig, out / "wait.png")))

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.hist(k.ride_ratios, bins=20, color="tab:purple")
    ax.set_xlabel("ride time / direct drive time")
    ax.set_ylabel("rides")
    ax.set_title(f"Ride-time ratio: mean {k.ride_ratio_mean}")
    imgs.append(("Ride-time ratio", _save(fig, out / "ride_ratio.png")))

    fig, ax = plt.subplots(figsize=(4, 3))
    on = sum(r.on_time for r in served)
    ax.bar(["on time", "late"], [on, len(served) - on], color=["tab:green", "tab:red"])
    ax.set_title(f"On time: {k.on_time_pct} %")
    imgs.append(("On-time share", _save(fig, out / "on_time.png")))

    fig, ax = plt.subplots(figsize=(7, 3))
    if res.occupancy:
        ax.plot([t.astimezone(tz) for t, _ in res.occupancy], [n for _, n in res.occupancy], color="tab:orange")
    ax.set_ylabel("people on board (fleet)")
    ax.set_title("Occupancy over the day")
    fig.autofmt_xdate()
    imgs.append(("Occupancy over the day", _save(fig, out / "occupancy.png")))

    fig, ax = plt.subplots(figsize=(7, 3))
    hours = sorted(res.hourly)
    ax.bar([h.astimezone(tz).strftime("%H") for h in hours],
           [res.hourly[h][0] / res.hourly[h][1] if res.hourly[h][1] else 0 for h in hours], color="tab:cyan")
    ax.axhline(3, color="grey", linestyle="--", label="target 3")
    ax.set_xlabel("hour")
    ax.set_ylabel("passengers / vehicle-hour")
    ax.set_title(f"Passengers per vehicle-hour (peak {k.peak_hour}: {k.pax_per_vehicle_hour_peak})")
    ax.legend()
    imgs.append(("Passengers per vehicle-hour", _save(fig, out / "pax_per_vehicle_hour.png")))

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(["pooled (this run)", "no pooling"], [s["vkm"], s["vkm_no_pooling"]], color=["tab:green", "tab:grey"])
    ax.set_ylabel("vehicle-km")
    ax.set_title(f"Vehicle-km: {s['vkm_saved_pct']} % saved by pooling")
    imgs.append(("Vehicle-km, and vehicle-km saved against no pooling", _save(fig, out / "vkm.png")))

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(["minibuses", "same trips by car"], list(res.co2), color=["tab:green", "tab:brown"])
    ax.set_ylabel("kg CO2")
    ax.set_title("CO2 against private cars")
    imgs.append(("CO2 against the same trips by private car", _save(fig, out / "co2.png")))

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar(["made", "missed"], [k.train_connections_made, k.train_connections - k.train_connections_made],
           color=["tab:green", "tab:red"])
    ax.set_title(f"Train connections: {k.train_connections_made_pct} % made")
    imgs.append(("Train connections made and missed", _save(fig, out / "trains.png")))

    rows = "".join(f"<tr><th>{html.escape(key)}</th><td>{html.escape(str(v))}</td></tr>" for key, v in s.items())
    figs = "".join(f'<figure><img src="{name}" alt="{html.escape(title)}"><figcaption>{html.escape(title)}'
                   "</figcaption></figure>" for title, name in imgs)
    page = f"""<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>シミュレーション結果 / Simulation report: {html.escape(s['scenario'])}</title>
<style>body{{font-family:sans-serif;max-width:60rem;margin:1rem auto;padding:0 1rem}}
table{{border-collapse:collapse}}th,td{{border:1px solid #ccc;padding:.2rem .5rem;text-align:left}}
figure{{display:inline-block;margin:.5rem}}img{{max-width:100%}}pre{{background:#f4f4f4;padding:.5rem}}</style></head>
<body><h1>シミュレーション結果 / Simulation report</h1>
<p>シナリオ / scenario <b>{html.escape(s['scenario'])}</b>, seed {res.config.seed}, shifts {html.escape(res.config.shifts)}.
定義は docs/simulate.md / every figure is defined in docs/simulate.md.
CO2: {kpi.MINIBUS_KG_PER_KM:.3f} kg/vehicle-km for the minibus, {kpi.CAR_KG_PER_PERSON_KM} kg/person-km by car.</p>
<pre>{html.escape(table(res))}</pre>
<table>{rows}</table>
{figs}
</body></html>
"""
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def write_compare(rows: list[tuple[str, Any]], out: Path) -> Path:
    """One plot: served % against fleet vehicle-hours for every variant, with the 98 % target."""
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, r in rows:
        ax.scatter(r.fleet_hours, r.summary["served_pct"], s=40)
        ax.annotate(name, (r.fleet_hours, r.summary["served_pct"]), textcoords="offset points", xytext=(4, 4),
                    fontsize=8)
    ax.axhline(98, color="grey", linestyle="--", label="target 98 % served")
    ax.set_xlabel("fleet vehicle-hours on shift")
    ax.set_ylabel("served %")
    reach = sorted((r.fleet_hours, n) for n, r in rows if r.summary["served_pct"] >= 98)
    ax.set_title("Which fleet hours reach 98 % served" + (f": from {reach[0][0]:.0f} h ({reach[0][1]})" if reach
                                                          else ": none of these"))
    ax.legend()
    path = out / "compare.png"
    _save(fig, path)
    return path


def table(res: Any) -> str:
    """The human summary of one run (``api.simulate.SimResult``), printed and put in the report."""
    s, k = res.summary, res.kpis
    lines = [
        f"{s['scenario']}  seed {res.config.seed}  shifts {res.config.shifts}  fleet {res.fleet_hours:.0f} vehicle-hours",
        f"  requests {k.requests}: served {k.served} ({k.served_pct} %), refused {k.refused}"
        + (f" ({', '.join(f'{c} {n}' for c, n in sorted(k.refused_by_cause.items()))})" if k.refused else ""),
        f"  cancelled by riders {k.cancelled}, no-shows {k.no_shows}, passengers carried {k.passengers}",
        f"  wait mean {k.mean_wait_min} min, p95 {k.p95_wait_min} min; on time {k.on_time_pct} %;"
        f" ride/direct {k.ride_ratio_mean}",
        f"  vehicle-km {s['vkm']} (no pooling {s['vkm_no_pooling']}, saved {s['vkm_saved_pct']} %);"
        f" CO2 {res.co2[0]} kg (same trips by car {res.co2[1]} kg)",
        f"  peak {k.peak_hour}: {k.pax_per_vehicle_hour_peak} passengers per vehicle-hour;"
        f" trains made {k.train_connections_made}/{k.train_connections} ({k.train_connections_made_pct} %)",
        f"  promises broken {s['promises_broken']}, plans rejected {s['plans_rejected']},"
        f" invariant violations {s['invariant_violations']}"
        + (f" ({', '.join(f'{a} {n}' for a, n in sorted(res.violations.items()))})" if res.violations else ""),
        f"  offer p95 {s['offer_p95_ms']} ms, re-plan p95 {s['reopt_cycle_p95_s']} s"
        f" ({sum(1 for r in res.reopt if r is not None and r.applied)} of {len(res.reopt)} applied), wall {s['wall_s']} s"
        f" (CPU {res.cpu_s:.0f} s)",
    ]
    return "\n".join(lines)
