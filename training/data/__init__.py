"""Data for training: the open starter kit and loaders for public dataset layouts.

* ``python -m training.data build-starter-kit --out DIR`` builds the kit (see :mod:`.kit`).
* :mod:`.loaders` reads the kit and common real-vs-fake layouts into :class:`Sample` records.
"""

from .loaders import (
    DatasetLayoutError,
    Sample,
    load_cifake,
    load_csv,
    load_dataset,
    load_faceforensics,
    load_kaggle_deepfake,
    load_starter_kit,
)

__all__ = [
    "DatasetLayoutError",
    "Sample",
    "load_cifake",
    "load_csv",
    "load_dataset",
    "load_faceforensics",
    "load_kaggle_deepfake",
    "load_starter_kit",
]
