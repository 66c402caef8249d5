"""Accessibility checks in real Chromium: axe-core (WCAG 2.x A/AA rules) and what axe cannot see,
plus screenshots kept as test artifacts in tests/e2e/artifacts/ (gitignored)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

AXE_OPTIONS = {
    "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]},
    "resultTypes": ["violations"],
}


def axe(page: Any, where: str = "", *, skip: tuple[str, ...] = ()) -> None:
    """axe-core finds no violation on the page as it is now (every state is checked where it is shown).

    ``skip`` names rules left out, for markup that is not ours (the vendored Swagger UI)."""
    from axe_playwright_python.sync_playwright import Axe

    options = {**AXE_OPTIONS, "rules": {rule: {"enabled": False} for rule in skip}}
    results = Axe().run(page, options=options)
    found = [
        f"{v['id']} ({v['impact']}): {v['help']} — " + "; ".join(n["target"][0] for n in v["nodes"][:4])
        for v in results.response["violations"]
    ]
    assert found == [], f"axe-core on {where or page.url}: {found}"


def shot(page: Any, name: str, full_page: bool = True) -> Path:
    """A screenshot of the page kept as a test artifact."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


SMALL_TARGETS = """
(min) => [...document.querySelectorAll('button, a[href], input:not([type=hidden]), select, [role=button]')]
  .filter((e) => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0
                   && getComputedStyle(e).visibility !== 'hidden'; })
  .map((e) => { const r = e.getBoundingClientRect();
                return [Math.round(r.width), Math.round(r.height), (e.id || e.textContent || '').trim().slice(0, 30)]; })
  .filter(([w, h]) => w < min || h < min)
"""

SMALL_TEXT = """
(min) => { const out = [];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walk.nextNode()) { const n = walk.currentNode; const e = n.parentElement;
    if (!n.textContent.trim() || !e || e.closest('[hidden], svg, .sr-only')) continue;
    const r = e.getBoundingClientRect(); if (!r.width || !r.height) continue;
    const px = parseFloat(getComputedStyle(e).fontSize);
    if (px < min) out.push([px, n.textContent.trim().slice(0, 30)]); }
  return out; }
"""

OVERFLOW = """
() => { const d = document.documentElement; return [d.scrollWidth - d.clientWidth, d.scrollHeight - d.clientHeight]; }
"""


def targets_at_least(page: Any, px: int) -> None:
    small = page.evaluate(SMALL_TARGETS, px)
    assert small == [], f"targets under {px} px: {small}"


def text_at_least(page: Any, px: float) -> None:
    small = page.evaluate(SMALL_TEXT, px)
    assert small == [], f"text under {px} px: {small}"


def overflow(page: Any) -> tuple[int, int]:
    """(horizontal, vertical) overflow of the page in CSS px: 0 means it all fits in the viewport."""
    w, h = page.evaluate(OVERFLOW)
    return int(w), int(h)
