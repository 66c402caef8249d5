"""Helpers for benches: a scratch data dir, a fresh database, a server subprocess on a free port."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
OKUMA_BIN = str(Path(sys.executable).with_name("okuma"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tree(pid: int) -> list[tuple[list[str], Path]]:
    """(/proc stat fields after the name, /proc dir) of a process and its children."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat.parent.name) == pid or int(fields[1]) == pid:  # fields[1]: the parent pid
            found.append((fields, stat.parent))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children (a server's workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    return sum((int(f[11]) + int(f[12])) / tick for f, _ in _tree(pid))


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and its children."""
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for _, d in _tree(pid):
        try:
            total += int((d / "statm").read_text().split()[1]) * page
        except OSError:
            pass
    return total


def data_dir_with_fleet(n_vehicles: int) -> Path:
    """A copy of data/okuma whose fleet is ``n_vehicles`` 10-seat minibuses on all-day shifts."""
    d = Path(tempfile.mkdtemp(prefix="okuma-bench-"))
    for f in (ROOT / "data" / "okuma").iterdir():
        if f.is_file():
            shutil.copy(f, d / f.name)
    fleet = {
        "vehicles": [
            {
                "id": f"bus_{i:03d}", "name_ja": f"ミニバス{i}号", "name_en": f"Minibus {i}",
                "seats": 10, "wheelchairs": 1, "parcels": 6, "depot_stop_id": "okuma_town_hall",
                "shifts": [{"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                            "start": "07:00", "end": "20:00", "breaks": []}],
            }
            for i in range(n_vehicles)
        ]
    }
    (d / "fleet.json").write_text(json.dumps(fleet, ensure_ascii=False), encoding="utf-8")
    return d


def fresh_postgres(admin_url: str) -> str:
    import asyncio

    import asyncpg

    name = f"okuma_bench_{uuid.uuid4().hex[:8]}"

    async def make() -> None:
        conn = await asyncpg.connect(admin_url.replace("+asyncpg", ""))
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()

    asyncio.run(make())
    return admin_url.rsplit("/", 1)[0] + "/" + name


class Server:
    """`okuma migrate`, `load-data`, demo accounts and `serve` in a subprocess."""

    def __init__(self, database_url: str, data_dir: Path, extra_env: dict[str, str] | None = None,
                 workers: int = 1, start_timeout_s: float = 90) -> None:
        self.workers = workers
        self.start_timeout_s = start_timeout_s
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "DATABASE_URL": database_url, "OKUMA_DATA_DIR": str(data_dir),
                    "OKUMA_DISPATCHER": "false", **(extra_env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        for cmd in (["migrate"], ["load-data"]):
            subprocess.run([OKUMA_BIN, *cmd], env=self.env, check=True, capture_output=True)
        self.proc = subprocess.Popen(
            [OKUMA_BIN, "serve", "--demo", "--port", str(self.port), "--no-simulator",
             "--workers", str(self.workers)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + self.start_timeout_s  # a loaded machine, several processes each warming up
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise RuntimeError("server did not start")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
