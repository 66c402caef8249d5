"""A live server for browser tests: uvicorn in a thread on a free port, FakeClock at a weekday 09:00 JST.

Reusable: `live_server` (session) gives base_url, tokens by role, the clock and a small sync API
client; `browser` (session) is Debian's Chromium through Playwright; `new_page` opens a page whose
clock starts at the server's fake time, so "now" means the same thing on both sides.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from tests.conftest import T0, start_served, unavailable
from transit.clock import FakeClock

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# The town office number the pages show in browser tests (the real one is not in the data yet).
TEST_OFFICE_PHONE = "0240-00-1234"


@dataclass
class LiveServer:
    base_url: str
    tokens: dict[str, str]
    clock: FakeClock
    _stop: Any = field(repr=False, default=None)
    db_path: Path | None = None  # the server's SQLite file, for fixtures a test needs (accounts)

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    def api(self, role: str) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {self.tokens[role]}"},
                            timeout=10)


def run_live_server(clock: FakeClock, db_dir: Path) -> LiveServer:
    """Start the app (with start_served's migrated database and accounts) under uvicorn in a thread."""
    import uvicorn

    port = _free_port()
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        try:
            from dataclasses import replace

            from transit.reference_data import load_okuma
            from transit.settings import Settings

            ref = load_okuma(Settings().data_dir)
            ref = replace(ref, rules=replace(ref.rules, office_phone=TEST_OFFICE_PHONE))
            served, ctx = await start_served(f"sqlite+aiosqlite:///{db_dir}/e2e.db", clock, reference=ref)
            # The lifespan already ran inside start_served; uvicorn must not run it again.
            config = uvicorn.Config(served.app, host="127.0.0.1", port=port, lifespan="off",
                                    log_level="warning", ws="auto")
            server = uvicorn.Server(config)
            box["server"], box["tokens"] = server, served.tokens
            task = asyncio.create_task(server.serve())
            while not server.started and not task.done():
                await asyncio.sleep(0.02)
            ready.set()
            await task
            await served.client.aclose()
            await ctx.__aexit__(None, None, None)
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            box["error"] = exc
            ready.set()

    thread = threading.Thread(target=lambda: asyncio.run(main()), name="e2e-uvicorn", daemon=True)
    thread.start()
    if not ready.wait(30) or "error" in box:
        raise RuntimeError(f"live server did not start: {box.get('error')}")

    def stop() -> None:
        box["server"].should_exit = True
        thread.join(10)

    return LiveServer(f"http://127.0.0.1:{port}", box["tokens"], clock, stop, db_dir / "e2e.db")


@pytest.fixture(scope="session")
def live_server() -> Iterator[LiveServer]:
    db_dir = Path(tempfile.mkdtemp(prefix="okuma-e2e-"))
    server = run_live_server(FakeClock(T0), db_dir)
    try:
        yield server
    finally:
        server._stop()
        shutil.rmtree(db_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Module scope: Playwright's sync API keeps an event loop running in this thread while it is
    # open, which would break pytest-asyncio tests collected after this module.
    if not Path(CHROMIUM).exists():
        unavailable("Chromium", f"{CHROMIUM} not found")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover
        unavailable("Playwright", exc)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def new_page(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    """new_page(width, height) → a page in a fresh context whose clock starts at the server's time."""
    contexts: list[Any] = []

    def make(width: int = 390, height: int = 844, **kw: Any) -> Any:
        ctx = browser.new_context(viewport={"width": width, "height": height}, locale="ja-JP",
                                  timezone_id="Asia/Tokyo", service_workers="block", **kw)
        ctx.set_default_timeout(8000)
        contexts.append(ctx)
        page = ctx.new_page()
        page.clock.install(time=live_server.clock.now())
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.js_errors = errors  # type: ignore[attr-defined]
        return page

    yield make
    for ctx in contexts:
        ctx.close()
