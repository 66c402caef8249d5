"""The house's import rules, checked by walking every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imports(package: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for f in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.update(f"{node.module}.{a.name}" for a in node.names)
        out[str(f.relative_to(ROOT))] = names
    return out


def offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [f"{f}: {n}" for f, ns in imports(package).items() for n in sorted(ns)
            if any(n == p or n.startswith(p + ".") for p in forbidden)]


def test_routing_is_pure() -> None:
    """routing/ imports no database, web framework, settings or upper layer."""
    assert offenders("routing", ("transit", "api", "driver_app", "sqlalchemy", "fastapi", "pydantic_settings",
                                 "redis", "websockets")) == []


def test_transit_never_imports_the_web() -> None:
    """transit/ imports neither FastAPI nor api/ nor driver_app/."""
    assert offenders("transit", ("fastapi", "starlette", "api", "driver_app")) == []


def test_driver_app_imports_nothing_of_the_server() -> None:
    """driver_app/ (tablet client, vehicle simulator, and the message protocol both sides speak)
    imports nothing of api/, no persistence and no web framework: it talks to the server over the
    wire. Of transit/ it uses only the clocks (so the simulator runs on the simulated time)."""
    bad = [o for o in offenders("driver_app", ("api", "transit", "sqlalchemy", "fastapi"))
           if not o.split(": ")[1].startswith("transit.clock")]
    assert bad == []


def test_api_uses_only_the_protocol_of_driver_app() -> None:
    """api/ takes the message models from driver_app.protocol; only the what-if simulator
    (api/simulate.py), a composition root that runs the vehicle simulator in-process on its clock,
    imports driver_app.simulator too."""
    bad = [o for o in offenders("api", ("driver_app",))
           if not o.split(": ")[1].startswith("driver_app.protocol")
           and not o.startswith("api/simulate.py: driver_app.simulator")]
    assert bad == []


def test_exactly_one_module_imports_ortools() -> None:
    """Only routing/ortools_solver.py imports OR-Tools (its API moves between releases)."""
    users = [f for pkg in ("routing", "transit", "api", "driver_app")
             for f, ns in imports(pkg).items() if any(n == "ortools" or n.startswith("ortools.") for n in ns)]
    assert users == ["routing/ortools_solver.py"]
