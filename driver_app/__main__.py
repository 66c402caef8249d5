"""`python -m driver_app`: drive vehicles with the simulator, over the websocket only."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from driver_app.simulator import parse_tokens, simulate_cli


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m driver_app", description="車両シミュレーター / vehicle simulator")
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--token", action="append", default=[], metavar="VEHICLE=TOKEN", required=True)
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    p.add_argument("--no-show-rate", type=float, default=0.05)
    p.add_argument("--delay-factor", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(simulate_cli(args.url, parse_tokens(args.token), speed=args.speed,
                                 no_show_rate=args.no_show_rate, delay_factor=args.delay_factor, seed=args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
