"""Shared Playwright helper: Debian chromium, headless, no network side-channels.

Browsers cannot be downloaded here (``playwright install`` has no route), so tests drive the
Debian ``chromium`` package. When it is missing the browser tests skip, unless
``REQUIRE_BROWSER=1`` (CI), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def chromium_path() -> Path | None:
    """The chromium executable, or None."""
    if CHROMIUM.is_file():
        return CHROMIUM
    found = shutil.which("chromium")
    return Path(found) if found else None


def require_browser() -> Path:
    """The chromium path and an importable Playwright; skip (or fail under REQUIRE_BROWSER=1)."""
    required = os.environ.get("REQUIRE_BROWSER") == "1"
    path = chromium_path()
    problem = None
    if path is None:
        problem = "chromium not installed (apt-get install -y chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is not installed"
    if problem:
        if required:
            pytest.fail(f"REQUIRE_BROWSER=1 but {problem}")
        pytest.skip(problem)
    assert path is not None
    return path


def screenshot_dir(default: Path) -> Path:
    """Where screenshots go: ``$SCREENSHOT_DIR`` or ``default`` (created if needed)."""
    folder = Path(os.environ.get("SCREENSHOT_DIR") or default)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def browser_page(width: int = 1400, height: int = 1000) -> Iterator[object]:
    """A fresh Playwright page in headless Debian chromium (closed on exit)."""
    executable = require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(executable), args=list(CHROMIUM_ARGS))
        try:
            context = browser.new_context(viewport={"width": width, "height": height})
            page = context.new_page()
            yield page
            context.close()
        finally:
            browser.close()
