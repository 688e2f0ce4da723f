"""``python app.py`` as a live server for end-to-end tests: `gradio_app` starts it on 127.0.0.1
at a free port, waits until it answers, and stops it afterwards."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class AppServer:
    url: str
    port: int
    process: subprocess.Popen
    log: Path


@contextlib.contextmanager
def gradio_app(env: dict[str, str], log: Path, timeout: float = 180.0) -> Iterator[AppServer]:
    """Run ``python app.py`` with ``env`` on top of the defaults; output goes to ``log``.

    Fails the test if the app exits or does not answer ``/config`` within ``timeout`` seconds.
    """
    port = free_port()
    full_env = {
        **os.environ,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "MPLBACKEND": "Agg",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **env,
    }
    url = f"http://127.0.0.1:{port}/"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=full_env, stdout=out, stderr=out
        )
    deadline = time.monotonic() + timeout
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"app exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url + "config", timeout=5):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"app did not start in {timeout:.0f} s:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield AppServer(url, port, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
