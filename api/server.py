"""Starting the server; with --demo, demo accounts with well-known tokens (development only)."""

from __future__ import annotations

import asyncio

import uvicorn

from transit.accounts import create_account, hash_token
from transit.bootstrap import bootstrap
from transit.settings import Settings

DEMO_ACCOUNTS = [
    # (role, name, token, stop, vehicle)
    ("rider", "大熊 花子 (demo rider)", "demo-rider", None, None),
    ("kiosk", "役場前キオスク (demo kiosk)", "demo-kiosk", "okuma_town_hall", None),
    ("operator", "町役場 交通窓口 (demo operator)", "demo-operator", None, None),
    ("driver", "ミニバス1号 運転士 (demo driver)", "demo-driver", None, "minibus_1"),
    ("store", "おおくまーと (demo store)", "demo-store", None, None),
    ("admin", "管理者 (demo admin)", "demo-admin", None, None),
]


async def ensure_demo_accounts(settings: Settings) -> list[tuple[str, str]]:
    if settings.environment != "development":
        raise SystemExit("demo accounts have well-known tokens: refused outside development")
    rt = bootstrap(settings)
    try:
        async with rt.services.uow() as uow:
            vehicle_ids = [v.id for v in await uow.vehicles.list()]
            for role, name, token, stop, vehicle in DEMO_ACCOUNTS:
                if vehicle is not None and vehicle not in vehicle_ids:
                    vehicle = vehicle_ids[0] if vehicle_ids else None
                if await uow.accounts.by_token_hash(hash_token(token)) is None:
                    await create_account(uow, role=role, name=name, stop_id=stop, vehicle_id=vehicle, token=token)
            await uow.commit()
    finally:
        await rt.close()
    return [(role, token) for role, _, token, _, _ in DEMO_ACCOUNTS]


def serve(
    settings: Settings, *, host: str | None = None, port: int | None = None, demo: bool = False,
    simulator: bool = True,
) -> int:
    host = host or settings.host
    port = port or settings.port
    if demo:
        creds = asyncio.run(ensure_demo_accounts(settings))
        settings = settings.model_copy(update={"demo": True, "simulate_fleet": simulator})
        print("\n大熊町オンデマンド交通 / Okuma on-demand transit (demo)")
        print(f"  http://{host}:{port}/            rider app / 予約")
        print(f"  http://{host}:{port}/docs        API (OpenAPI)")
        print("  demo tokens / デモ用トークン:")
        for role, token in creds:
            print(f"    {role:9s} {token}")
        print()
    from api.app import create_app

    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
    return 0
