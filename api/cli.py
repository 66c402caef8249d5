"""`okuma`: serve, migrate, load data, manage accounts."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import datetime

from transit.accounts import ROLES, create_account, revoke, rotate_token
from transit.bootstrap import bootstrap
from transit.db import make_engine, migrate
from transit.errors import DomainError
from transit.loading import load_reference
from transit.settings import Settings


def _settings(args: argparse.Namespace) -> Settings:
    s = Settings()
    if getattr(args, "database_url", None):
        s = s.model_copy(update={"database_url": args.database_url})
    return s


async def _migrate(settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


async def _load(settings: Settings) -> dict[str, int]:
    rt = bootstrap(settings)
    try:
        today = datetime.now(rt.reference.rules.tz).date()
        async with rt.services.uow() as uow:
            counts = await load_reference(uow, rt.reference, today=today, days=settings.shift_days)
            await uow.commit()
        return counts
    finally:
        await rt.close()


async def _create_account(settings: Settings, args: argparse.Namespace) -> tuple[str, str]:
    rt = bootstrap(settings)
    try:
        async with rt.services.uow() as uow:
            acc, token = await create_account(
                uow, role=args.role, name=args.name, stop_id=args.stop, vehicle_id=args.vehicle,
                door_to_door=args.door_to_door, rider_card=args.card, ttl_days=settings.token_ttl_days,
            )
            await uow.commit()
        return acc, token
    finally:
        await rt.close()


async def _change_token(settings: Settings, args: argparse.Namespace) -> str:
    rt = bootstrap(settings)
    try:
        async with rt.services.uow() as uow:
            if args.acmd == "rotate":
                token, expires = await rotate_token(uow, args.account, settings.token_ttl_days)
                message = f"account {args.account} new token: {token} (expires {expires:%Y-%m-%d %H:%M} UTC;" \
                          " the old one no longer works)" if expires else f"account {args.account} new token: {token}"
            else:
                await revoke(uow, args.account)
                message = f"account {args.account} revoked: its token no longer works (on running servers within a second)"
            await uow.commit()
        return message
    finally:
        await rt.close()


async def _list_accounts(settings: Settings) -> list[dict]:
    rt = bootstrap(settings)
    try:
        async with rt.services.uow(readonly=True) as uow:
            return await uow.accounts.list()
    finally:
        await rt.close()


async def _dispatch(settings: Settings, args: argparse.Namespace) -> list:
    from datetime import date, timedelta

    from transit.dispatcher import Dispatcher

    rt = bootstrap(settings)
    try:
        d = Dispatcher(rt.services, rt.engine, budget_s=args.budget)
        if not await d.leader.acquire():
            raise SystemExit("another dispatcher holds the lock for this service area")
        try:
            if args.cmd == "reoptimise":
                return [await d.reoptimise("manual")]
            tz = rt.reference.rules.tz
            day = date.fromisoformat(args.date) if args.date else datetime.now(tz).date() + timedelta(days=1)
            return await d.evening_batch(day, budget_s=args.budget)
        finally:
            await d.leader.release()
    finally:
        await rt.close()


async def _purge(settings: Settings) -> object:
    from transit.retention import purge_personal_data

    rt = bootstrap(settings)
    try:
        return await purge_personal_data(rt.services)
    finally:
        await rt.close()


def _export_gtfs(settings: Settings, args: argparse.Namespace) -> str:
    from transit.clock import SystemClock
    from transit.feeds import gtfs
    from transit.reference_data import load_okuma

    ref = load_okuma(settings.data_dir)
    today = SystemClock().now().astimezone(ref.rules.tz).date()
    base = args.base_url or f"http://{settings.host}:{settings.port}"
    files = gtfs.build_feed(ref, gtfs.FeedMeta.load(settings.data_dir), today=today, base_url=base)
    out = gtfs.write_dir(files, args.out)
    if args.zip:
        (out / "okuma.zip").write_bytes(gtfs.zip_bytes(files))
    return f"wrote {len(files)} files to {out} (feed_version {gtfs.feed_version(files)})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="okuma", description="大熊町オンデマンド交通 / Okuma on-demand transit")
    p.add_argument("--database-url", help="defaults to $DATABASE_URL or SQLite in var/okuma.db")
    sub = p.add_subparsers(dest="cmd", required=True)
    sv = sub.add_parser("serve", help="start the server")
    sv.add_argument("--host", default=None)
    sv.add_argument("--port", type=int, default=None)
    sv.add_argument("--demo", action="store_true", help="demo accounts and a simulated fleet")
    sv.add_argument("--no-simulator", action="store_true", help="with --demo: no simulated fleet")
    sv.add_argument("--workers", type=int, default=1, help="server processes (PostgreSQL only; set REDIS_URL)")
    sv.add_argument("--real-clock", action="store_true",
                    help="with --demo: run on the real time (default: a clock placed inside service hours)")
    sv.add_argument("--no-demand", action="store_true", help="with --demo: no scenario bookings in the background")
    sub.add_parser("migrate", help="bring the database schema up to date")
    sub.add_parser("load-data", help="load Okuma stops, fleet and shifts")
    acc = sub.add_parser("accounts", help="manage accounts and tokens")
    asub = acc.add_subparsers(dest="acmd", required=True)
    ac = asub.add_parser("create", help="create an account and print its token once")
    ac.add_argument("--role", required=True, choices=ROLES)
    ac.add_argument("--name", required=True)
    ac.add_argument("--stop", help="kiosk: the stop it stands at")
    ac.add_argument("--vehicle", help="driver: the vehicle")
    ac.add_argument("--door-to-door", action="store_true")
    ac.add_argument("--card", help="rider: the number on their rider card (the kiosk and the desk attach bookings by it)")
    asub.add_parser("list", help="list accounts (never tokens): id, role, name, stop, vehicle, token expiry")
    rot = asub.add_parser("rotate", help="give an account a new token (printed once); the old one stops working")
    rot.add_argument("account", help="account id (see `okuma accounts list`)")
    rev = asub.add_parser("revoke", help="disable an account: its token stops working for good")
    rev.add_argument("account", help="account id")
    sm = sub.add_parser("simulate", help="what-if: simulate a whole service day of a scenario (or --url: drive a server's fleet)")
    sm.add_argument("scenario", nargs="?", help="okuma-weekday, okuma-weekday-3x, city, or a scenario file")
    sm.add_argument("--seed", type=int, default=None, help="demand and driver seed (default 1)")
    sm.add_argument("--vehicles", type=int, default=None, help="fleet size (default: the scenario's)")
    sm.add_argument("--shifts", choices=("all-day", "okuma"), default="all-day",
                    help="all-day: every vehicle 07:00-20:00; okuma: data/okuma/fleet.json's shift plan")
    sm.add_argument("--window-min", type=int, default=None, help="pickup window length in minutes")
    sm.add_argument("--from", dest="start", default=None, metavar="HH:MM", help="only requests asked from this time")
    sm.add_argument("--to", dest="end", default=None, metavar="HH:MM", help="... and before this time")
    sm.add_argument("--out", default=None, metavar="DIR", help="write report.html with PNG plots (or the compare plot)")
    sm.add_argument("--compare", action="append", default=[], metavar="KEY=V1,V2",
                    help="one run per value: vehicles, window_min or shifts (repeat)")
    sm.add_argument("--reopt-interval", type=float, default=600.0, help="re-plan timer, simulated seconds")
    sm.add_argument("--reopt-budget", type=float, default=None,
                    help="solver seconds per re-plan (default: the scenario's, else 0.5)")
    sm.add_argument("--no-progress", action="store_true", help="no progress bar")
    sm.add_argument("--url", default=None,
                    help="without SCENARIO: drive the vehicles of the server at this URL (default http://127.0.0.1:8000)")
    sm.add_argument("--token", action="append", default=[], metavar="VEHICLE=TOKEN",
                    help="with --url: a driver token per vehicle (repeat); default: the demo drivers")
    sm.add_argument("--speed", type=float, default=1.0, help="with --url: simulated seconds per real second")
    sm.add_argument("--no-show-rate", type=float, default=0.0, help="with --url")
    sm.add_argument("--delay-factor", type=float, default=1.0, help="with --url: actual / planned travel time")
    rp = sub.add_parser("reoptimise", help="re-plan the coming hours now (inside every promise)")
    rp.add_argument("--budget", type=float, default=5.0, help="solver seconds")
    bp = sub.add_parser("batch", help="optimise a day's bookings together (the evening batch)")
    bp.add_argument("--date", help="YYYY-MM-DD (default: tomorrow, Asia/Tokyo)")
    bp.add_argument("--budget", type=float, default=30.0, help="solver seconds per shift window")
    sub.add_parser("purge", help="remove personal data past the retention period (run daily)")
    ex = sub.add_parser("export", help="write the open feeds (docs/feeds.md)")
    ex.add_argument("what", choices=["gtfs"], help="gtfs: GTFS-JP with GTFS-Flex")
    ex.add_argument("--out", required=True, help="directory to write the feed files into")
    ex.add_argument("--zip", action="store_true", help="also write okuma.zip next to them")
    ex.add_argument("--base-url", default=None, help="where the booking pages are served "
                    "(default: http://HOST:PORT of the settings)")
    args = p.parse_args(argv)
    settings = _settings(args)

    if args.cmd == "migrate":
        asyncio.run(_migrate(settings))
        print("migrated:", settings.database_url.split("@")[-1])
    elif args.cmd == "load-data":
        counts = asyncio.run(_load(settings))
        print("loaded:", ", ".join(f"{k}={v}" for k, v in counts.items()))
    elif args.cmd == "accounts":
        if args.acmd == "create":
            acc, token = asyncio.run(_create_account(settings, args))
            print(f"account {acc} ({args.role}) token: {token}")
        elif args.acmd in ("rotate", "revoke"):
            try:
                print(asyncio.run(_change_token(settings, args)))
            except DomainError as e:
                print(f"okuma: {e.message_ja} / {e.message_en}", file=sys.stderr)
                return 1
        else:
            for a in asyncio.run(_list_accounts(settings)):
                state = "revoked" if a["disabled"] else (
                    f"expires {a['token_expires_at']:%Y-%m-%d}" if a["token_expires_at"] else "no expiry")
                print(a["id"], a["role"], a["name"], a["stop_id"] or "", a["vehicle_id"] or "", state)
    elif args.cmd == "simulate" and not args.scenario:
        # Driving a running server: the vehicle simulator is its own program, over the network only.
        from api.server import demo_driver_token
        from transit.reference_data import load_okuma

        tokens = args.token or [f"{v.id}={demo_driver_token(v.id)}" for v in load_okuma(settings.data_dir).fleet]
        cmd = [sys.executable, "-m", "driver_app", "--url", args.url or "http://127.0.0.1:8000", "--speed", str(args.speed),
               "--no-show-rate", str(args.no_show_rate), "--delay-factor", str(args.delay_factor)]
        cmd += [x for t in tokens for x in ("--token", t)]
        if args.seed is not None:
            cmd += ["--seed", str(args.seed)]
        os.execv(sys.executable, cmd)
    elif args.cmd == "simulate":
        if args.url:
            p.error("give a SCENARIO (what-if simulation) or --url (drive a running server), not both")
        from api.simulate import main as simulate_main

        args.seed = 1 if args.seed is None else args.seed
        args.database_url = args.database_url or (settings.database_url
                                                  if settings.database_url.startswith("postgres") else None)
        return simulate_main(args)
    elif args.cmd in ("reoptimise", "batch"):
        for r in asyncio.run(_dispatch(settings, args)):
            print(f"{r.reason}: {r.requests} requests on {r.vehicles} vehicles, vehicle time "
                  f"{r.travel_before_s} s -> {r.travel_after_s} s, {'applied' if r.applied else 'not applied'}"
                  f" ({r.why}), solver {r.solve_s:.1f} s")
    elif args.cmd == "purge":
        print(asyncio.run(_purge(settings)))
    elif args.cmd == "export":
        print(_export_gtfs(settings, args))
    elif args.cmd == "serve":
        from api.server import serve

        return serve(settings, host=args.host, port=args.port, demo=args.demo,
                     simulator=not args.no_simulator, workers=args.workers, real_clock=args.real_clock,
                     demand=not args.no_demand)
    return 0


if __name__ == "__main__":
    sys.exit(main())
