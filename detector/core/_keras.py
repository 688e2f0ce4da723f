"""The single place that imports TensorFlow and Keras, with quiet, offline-friendly settings.

Keras imports scikit-learn (for `keras.wrappers`) and ``matplotlib.pyplot`` (for
`keras.visualization`) when they are installed, about a second of CPU on 2 cores that every
start of the apps and the CLI paid for modules `detector` never uses. While Keras is imported
here they count as absent (Keras falls back as it does when they are not installed), unless the
process imported them already; afterwards they import normally. The cost: `keras.wrappers` and
`keras.visualization` do not work in a process that imported `detector` first.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("MPLBACKEND", "Agg")

#: Optional imports of Keras that `detector` never uses.
UNUSED_BY_KERAS: tuple[str, ...] = ("sklearn", "matplotlib.pyplot")


@contextmanager
def absent(modules: tuple[str, ...]) -> Iterator[None]:
    """Make ``import`` of each module (not imported yet) raise ImportError inside the block."""
    blocked = [name for name in modules if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # the import system's "absent"
    try:
        yield
    finally:
        for name in blocked:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


with absent(UNUSED_BY_KERAS):
    import keras
    import tensorflow as tf

__all__ = ["keras", "tf"]
