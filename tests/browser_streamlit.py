"""Helpers for browser tests of the Streamlit app: a live ``streamlit run`` server.

The browser itself comes from the shared `browser` helper (headless Debian chromium through
Playwright). `streamlit_server` starts the app on 127.0.0.1 at a free port and stops it
afterwards; `wait_until_idle` waits for a script run to finish; `screenshot_app` captures the
whole page.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from servers import free_port

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def streamlit_server(env: dict[str, str] | None = None, timeout: float = 60.0) -> Iterator[str]:
    """Run ``streamlit run streamlit_app.py`` on 127.0.0.1 at a free port; yields its URL."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(ROOT / "streamlit_app.py"),
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
    ]
    full_env = {**os.environ, "MPLBACKEND": "Agg", "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    log = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"streamlit exited early:\n{log.read()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"streamlit not healthy after {timeout:.0f} s")
            time.sleep(0.3)
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        log.close()


def wait_until_idle(page, timeout_ms: int = 120_000) -> None:
    """Wait until the app's script is not running (Streamlit marks its state on ``stApp``).

    After an action, first wait for something the action produces: the rerun may not have
    started yet when this is called.
    """
    page.wait_for_selector(
        '[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout_ms
    )


def screenshot_app(
    page, path: str | Path, until: str | None = None, gap: int = 16, max_height: int = 6000
) -> Path:
    """Screenshot the whole app: the viewport grows to the height of the scrolled content.

    Args:
        page: The Playwright page.
        path: Where to write the PNG.
        until: A Playwright selector; when given, the shot stops just above its first match.
        gap: How many pixels above that match the shot stops.
        max_height: Tallest screenshot, in pixels.
    """
    height = page.evaluate(
        "() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
        " return m ? m.scrollHeight : document.body.scrollHeight; }"
    )
    width = page.viewport_size["width"] if page.viewport_size else 1400
    height = min(max(int(height), 600), max_height)
    page.set_viewport_size({"width": width, "height": height})
    page.wait_for_timeout(800)  # let images re-layout at the new size
    clip = {"x": 0, "y": 0, "width": width, "height": height}
    if until is not None:
        box = page.locator(until).first.bounding_box()
        if box is not None:
            clip["height"] = max(200, min(height, int(box["y"]) - gap))
    path = Path(path)
    page.screenshot(path=str(path), clip=clip)
    return path
