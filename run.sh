#!/usr/bin/env bash
# One entry point for newcomers and CI:
#   bash run.sh app        install (once) and launch the Gradio app on the bundled models
#   bash run.sh streamlit  install (once) and launch the Streamlit app
#   bash run.sh test       install (once, with dev tools) and run lint + the whole test suite
#   bash run.sh setup      only install (with dev tools)
#   bash run.sh screenshots  regenerate docs/screenshots/ from the apps on the bundled models
# Every mode also installs the project itself into the venv (editable, no dependencies of its
# own beyond the requirements file), so that `fakedetect ...` and `python -m detector ...` work
# from any folder and find the bundled models in assets/models/.
# Extra arguments after `test` go to pytest (e.g. `bash run.sh test -m "not slow"`).
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-}"
if [[ -z "$PYTHON" ]]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then PYTHON="$candidate"; break; fi
  done
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "error: Python 3.11 is required (found $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 2
fi

VENV="${VENV:-.venv}"
install() {  # $1: requirements file
  local req="$1" stamp
  [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
  stamp="$VENV/.installed-$(cat requirements*.txt pyproject.toml | sha256sum | cut -c1-16)-$(basename "$req")"
  if [[ ! -f "$stamp" ]]; then
    echo "installing $req into $VENV (first run only, about a minute)..." >&2
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -r "$req"
    if [[ "$req" == requirements-dev.txt ]]; then
      # Reference for tests/test_watermark.py only: invisible-watermark's dwtDct encoder and
      # decoder, without its dependencies (torch, and opencv-python, which clashes with
      # opencv-python-headless), in a folder of its own so that `pip check` stays clean.
      "$VENV/bin/python" -m pip install --quiet --no-deps --upgrade \
        --target "$VENV/invisible-watermark-0.2.0" invisible-watermark==0.2.0
    fi
    # The project, editable: setuptools and wheel are already in the venv (Python 3.11's venv
    # and the requirements bring them), so nothing is downloaded for the build either. Older
    # setuptools warns that its pyproject support is "beta": PYTHONWARNINGS keeps that quiet.
    PYTHONWARNINGS=ignore "$VENV/bin/python" -m pip install --quiet --no-deps \
      --no-build-isolation --editable .
    touch "$stamp"
  fi
}

export MPLBACKEND=Agg GRADIO_ANALYTICS_ENABLED=False TF_CPP_MIN_LOG_LEVEL=2

cmd="${1:-app}"
shift || true
case "$cmd" in
  app)
    install requirements.txt
    exec "$VENV/bin/python" app.py "$@"
    ;;
  streamlit)
    install requirements.txt
    exec "$VENV/bin/python" -m streamlit run streamlit_app.py --browser.gatherUsageStats false "$@"
    ;;
  setup)
    install requirements-dev.txt
    ;;
  test)
    install requirements-dev.txt
    if ! command -v chromium >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
      echo "installing Debian chromium for the browser tests..." >&2
      (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "warning: chromium not installed; browser tests will be skipped" >&2
    fi
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check .
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  screenshots)
    # The browser tests that take the documentation's screenshots, run against real app servers
    # on the bundled models (E2E_MODELS_DIR) and the bundled examples, not the tiny test models.
    install requirements-dev.txt
    E2E_MODELS_DIR="${E2E_MODELS_DIR:-assets/models}" SCREENSHOT_DIR="${SCREENSHOT_DIR:-docs/screenshots}" \
      REQUIRE_BROWSER=1 exec "$VENV/bin/python" -m pytest -p no:cacheprovider -m browser \
      -k "browser_drop_image or browser_upload_shows" tests/test_app_e2e.py tests/test_streamlit_app.py "$@"
    ;;
  *)
    echo "usage: bash run.sh [app|streamlit|test|setup|screenshots] [args...]" >&2
    exit 2
    ;;
esac
