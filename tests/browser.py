"""Debian's Chromium for the browser tests: where it is, how it is started, and what to do
when it or Playwright is missing (skip on a developer's machine, fail on CI)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
#: Headless, and without the background connections this machine's closed network refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 15_000


def unavailable(reason: str) -> None:
    """Skip the calling test module, or fail it on CI, where the browser must be there."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (required on CI)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require_browser() -> None:
    """Check Chromium and Playwright once, at a test module's import."""
    if not CHROMIUM.is_file():
        unavailable(f"{CHROMIUM} is missing: apt-get install chromium")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:  # pragma: no cover - depends on the environment
        unavailable("the playwright package is missing: pip install playwright")


def launch(p):
    """Start headless Chromium from a ``sync_playwright()`` handle."""
    return p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)


def chromium() -> Iterator[Any]:
    """Yield headless Chromium, closed after; the body of a module's ``browser`` fixture."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


DESKTOP = {"width": 1280, "height": 800}


def context_page(
    browser: Any, *, viewport: dict | None = None, timeout_ms: int = TIMEOUT_MS, **ctx: Any
) -> tuple[Any, Any]:
    """Open a page in a fresh context (own cookies), Chinese locale, desktop size unless told.

    The page's uncaught JavaScript errors collect in ``page.js_errors`` (tests assert it empty).
    Returns the context (close it after the test) and the page; ``ctx`` goes to
    ``browser.new_context`` (e.g. ``timezone_id``).
    """
    context = browser.new_context(locale="zh-CN", viewport=viewport or DESKTOP, **ctx)
    context.set_default_timeout(timeout_ms)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.js_errors = errors
    return context, page
