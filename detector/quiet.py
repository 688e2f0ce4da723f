"""Keep TensorFlow's start-up noise off the command line's stderr (unless ``--verbose``).

TensorFlow 2.21 writes a few lines straight to file descriptor 2 while it loads (absl's "All log
messages before absl::InitializeLog() is called ..." and oneDNN's "custom operations are on"),
whatever ``TF_CPP_MIN_LOG_LEVEL`` says. `configure` sets the log level TensorFlow does read,
points descriptor 2 at the null device while ``tensorflow`` is being imported (and only then:
Python's own messages, the progress bar and errors reach stderr as before, and a failed import
still raises), and lowers TensorFlow's, absl's and Keras's Python loggers and warnings to errors
(the "triggered tf.function retracing" warnings among them). Numerics are untouched: oneDNN
stays on, only its message is hidden.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from types import ModuleType

#: Python loggers that only ever speak for TensorFlow and its helpers.
NOISY_LOGGERS = ("tensorflow", "absl", "keras", "tf_keras_vis")
#: Modules whose Python warnings a quiet command does not show.
NOISY_MODULES = r"(tensorflow|keras|absl|tf_keras_vis|h5py)(\.|$)"


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at the null device for the block (C and C++ writes included)."""
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _QuietLoader(importlib.abc.Loader):
    """Runs the real loader of ``tensorflow`` with descriptor 2 silenced."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        try:
            with native_stderr_silenced():
                self.loader.exec_module(module)
        finally:  # the module keeps its own loader (resources, reloads)
            module.__loader__ = self.loader
            if module.__spec__ is not None:
                module.__spec__.loader = self.loader


class _QuietImport(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` once, with `_QuietLoader` around its loader; then steps aside."""

    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def configure(verbose: bool = False) -> None:
    """Quiet TensorFlow for this process (before it is imported, for its start-up lines too).

    Args:
        verbose: Leave TensorFlow's messages alone and let its Python loggers through.
    """
    level = logging.NOTSET if verbose else logging.ERROR
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(level)
    if verbose:
        return
    warnings.filterwarnings("ignore", module=NOISY_MODULES)
    if "tensorflow" in sys.modules:  # already loaded: its start-up has been said
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if not any(isinstance(finder, _QuietImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietImport())
