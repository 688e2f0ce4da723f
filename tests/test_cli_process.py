"""The command line as users run it: a process started in any folder, quiet unless --verbose."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from conftest import encode, make_image

from detector.cli import build_parser
from detector.core.models import default_model_name, trained_cards

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "assets" / "models"
#: What TensorFlow says on its own while it loads or runs, in any case.
NOISE = ("onednn", "absl", "retracing", "cuda")
#: A line of absl's C++ log (``I0000 00:00:...``, ``W1205 ...``).
NATIVE_LOG_LINE = re.compile(r"^[IWEF]\d{4} ", re.MULTILINE)


def _installed() -> bool:
    try:
        metadata.distribution("fakedetect")
    except metadata.PackageNotFoundError:
        return False
    return True


def _env(*, with_checkout: bool) -> dict[str, str]:
    """A clean environment: no TensorFlow log settings, no models folder, no PYTHONPATH
    (unless ``with_checkout``: then the checkout, for a venv the project is not installed in)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TF_", "FAKEDETECT_")) and key not in ("PYTHONPATH", "PYTHONHOME")
    }
    if with_checkout:
        env["PYTHONPATH"] = str(ROOT)
    return env


def _run(
    args: list[str], cwd: Path, *, with_checkout: bool | None = None
) -> subprocess.CompletedProcess:
    if with_checkout is None:
        with_checkout = not _installed()
    return subprocess.run(
        args,
        cwd=cwd,
        env=_env(with_checkout=with_checkout),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _default_model() -> str:
    return default_model_name(BUNDLED)


def _smallest_model() -> str:
    cards = trained_cards(BUNDLED)
    return min(cards, key=lambda name: (BUNDLED / name / cards[name].weights_file).stat().st_size)


def _assert_quiet(stderr: str) -> None:
    lowered = stderr.lower()
    assert not [word for word in NOISE if word in lowered], stderr
    assert not NATIVE_LOG_LINE.search(stderr), stderr


def _lists_the_default_model(stdout: str) -> None:
    listed = {info["name"]: info["trained"] for info in json.loads(stdout)}
    assert listed.get(_default_model()) is True, listed


@pytest.mark.slow  # loads TensorFlow in a new process
def test_python_m_detector_from_another_folder_finds_the_bundled_models(tmp_path):
    done = _run([sys.executable, "-m", "detector", "list"], tmp_path)
    assert done.returncode == 0, done.stderr
    _lists_the_default_model(done.stdout)
    _assert_quiet(done.stderr)


@pytest.mark.slow  # loads TensorFlow in a new process
def test_installed_console_script_from_another_folder(tmp_path):
    """``fakedetect list`` from any folder: the project installed (editable) by ``run.sh``."""
    script = Path(sys.executable).with_name("fakedetect")
    in_run_sh_venv = Path(sys.prefix).resolve() == (ROOT / ".venv").resolve()
    if not (_installed() and script.is_file()):
        if in_run_sh_venv:
            pytest.fail("run.sh's venv lacks the project: `pip install --no-deps -e .` did not run")
        pytest.skip("the project is not installed in this venv (bash run.sh setup installs it)")
    where = _run(
        [sys.executable, "-c", "import detector; print(detector.__file__)"],
        tmp_path,
        with_checkout=False,
    )
    if Path(where.stdout.strip()).resolve() != (ROOT / "detector" / "__init__.py").resolve():
        pytest.skip(f"the installed project is another checkout: {where.stdout.strip()}")
    done = _run([str(script), "list"], tmp_path, with_checkout=False)
    assert done.returncode == 0, done.stderr
    _lists_the_default_model(done.stdout)
    _assert_quiet(done.stderr)


@pytest.mark.slow  # loads TensorFlow in a new process
def test_scan_keeps_tensorflow_quiet(tmp_path):
    image = tmp_path / "small.png"
    image.write_bytes(encode(make_image(64, 64, 3)))
    model = _smallest_model()
    done = _run(
        [sys.executable, "-m", "detector", "scan", str(image), "--model", model, "-q"], tmp_path
    )
    assert done.returncode == 0, done.stderr
    rows = done.stdout.splitlines()
    assert rows[0] == "path,model,p_fake,label,error"
    assert rows[1].startswith(f"{image},{model},") and rows[1].endswith(",")
    _assert_quiet(done.stderr)


@pytest.mark.slow  # loads TensorFlow in a new process
def test_verbose_logs_to_stderr(tmp_path):
    done = _run([sys.executable, "-m", "detector", "--verbose", "list"], tmp_path)
    assert done.returncode == 0, done.stderr
    _lists_the_default_model(done.stdout)
    assert f"INFO detector.cli: models folder: {BUNDLED}" in done.stderr


@pytest.mark.slow  # loads TensorFlow in a new process
@pytest.mark.parametrize("verbose", [False, True])
def test_retracing_warnings_only_when_verbose(tmp_path, verbose):
    code = (
        "from detector import quiet\n"
        f"quiet.configure(verbose={verbose})\n"
        "import tensorflow as tf\n"
        "f = tf.function(lambda x: x * 2)\n"
        "for n in range(1, 9):\n"
        "    f(tf.zeros((n,)))\n"
    )
    done = _run([sys.executable, "-c", code], tmp_path)
    assert done.returncode == 0, done.stderr
    if verbose:
        assert "retracing" in done.stderr
    else:
        _assert_quiet(done.stderr)


@pytest.mark.parametrize(
    ("argv", "verbose"),
    [
        (["list"], False),
        (["--verbose", "list"], True),
        (["list", "--verbose"], True),
        (["-v", "scan", "x.png"], True),
        (["scan", "x.png", "-q", "-v"], True),
        (["inspect", "x.png", "--verbose"], True),
        (["explain", "x.png", "-o", "y.png"], False),
    ],
)
def test_verbose_goes_before_or_after_the_command(argv, verbose):
    assert build_parser().parse_args(argv).verbose is verbose
