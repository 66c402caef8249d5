"""Property-based fuzzing of the whole REST API from its OpenAPI document: never a server error."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import unavailable


@pytest.mark.slow
@pytest.mark.parametrize("role", ["operator", "rider", "kiosk", "maas"])
def test_no_input_gets_a_server_error(live_server, role: str) -> None:  # type: ignore[no-untyped-def]
    """Hundreds of generated requests per role (valid, edge and malformed) never get a 5xx."""
    exe = Path(sys.executable).with_name("schemathesis")
    if not exe.exists() and shutil.which("schemathesis") is None:
        unavailable("schemathesis", "not installed (dev extra)")
    cmd = [str(exe if exe.exists() else "schemathesis"), "run", live_server.url("/openapi.json"),
           "-H", f"Authorization: Bearer {live_server.tokens[role]}", "-H", "maas-id: fuzz",
           "--checks", "not_a_server_error", "--max-examples", "25", "--seed", "1"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert " passed" in out.stdout
