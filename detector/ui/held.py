"""Images held in memory by the apps: an upload's bytes, its decode while in use, what is shown.

An `Upload` keeps its (compressed) bytes, and its decoded image only while a page works on it
(`Upload.release`); `Checked` is the display-size copy (or the reason the bytes are unreadable) and
`Degraded` an image re-encoded or downsized for the robustness demo; `held_rows` gives an input's
batch-table rows from the batch engine. A user's file name is only ever shown, never used as a path.
Nothing here imports a UI library.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from detector.core.errors import DetectorError
from detector.ui import presentation
from detector.ui.visitor import visitor_text


@dataclass(eq=False)
class Upload:
    """One image held in memory: a display name, its bytes and their SHA-256.

    ``array`` decodes the bytes on first use (cached functions receive the whole object unhashed
    and only decode it on a cache miss) and keeps the full-size image until `release`. Pages
    release an upload as soon as its results are computed, so that a run never holds more than
    one decoded image at a time, however many files a batch has.
    """

    name: str
    data: bytes
    note: str = ""

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the bytes: the cache key of everything computed from this image."""
        return hashlib.sha256(self.data).hexdigest()

    @cached_property
    def loaded(self) -> presentation.LoadedImage:
        """The decoded image with its `ImageInfo` and bytes (raises `detector.ImageLoadError`)."""
        return presentation.load_file(self.data)

    @cached_property
    def array(self) -> np.ndarray:
        """The decoded RGB image (raises `detector.ImageLoadError`)."""
        return self.loaded.array

    def release(self) -> None:
        """Drop the decoded image (the bytes stay): the next use decodes the bytes again."""
        self.__dict__.pop("array", None)
        self.__dict__.pop("loaded", None)


def release(*items: object) -> None:
    """`Upload.release` for every upload among ``items`` (anything else is ignored)."""
    for item in items:
        if isinstance(item, Upload):
            item.release()


def held_uploads(files: Sequence[tuple[str, bytes]]) -> list[Upload | presentation.UploadItem]:
    """Uploaded files (name, bytes) as in-memory items: zip archives opened, limits applied."""
    items = presentation.read_uploads(list(files))
    return [Upload(item.name, item.data) if item.data is not None else item for item in items]


def held_rows(
    item: Upload | presentation.UploadItem, names: Sequence[str], error: str | None = None
) -> list[presentation.BatchRow]:
    """One input's batch-table rows, made by the batch engine (`presentation.batch_rows`).

    An `Upload` is scored on its decoded pixels (`Upload.array`: the page's own decode, not a
    second one); ``error`` (why the page could not read it) or a refused `UploadItem`'s error
    gives one error row per model. Error texts are made safe to show a visitor (`visitor_text`).
    """
    if error is not None:
        source = presentation.ScanItem(item.name, error=error)
    elif isinstance(item, Upload):
        try:
            source = presentation.ScanItem(item.name, item.array)
        except DetectorError:  # the engine reads the bytes and names the problem
            source = presentation.ScanItem(item.name, item.data)
    else:
        source = presentation.ScanItem(item.name, item.data, item.error)
    rows = presentation.batch_rows([source], names, chunk=1)
    return [replace(r, error=visitor_text(r.error)) if r.error else r for r in rows]


@dataclass(frozen=True, eq=False)
class Checked:
    """The result of reading an upload: a display-size image, or an error for the user."""

    image: np.ndarray | None
    width: int = 0
    height: int = 0
    error: str | None = None


@dataclass(frozen=True, eq=False)
class Degraded:
    """An image after JPEG re-encoding or downsizing, as a new in-memory upload."""

    upload: Upload
    display: np.ndarray | None
    width: int
    height: int
    nbytes: int
    error: str | None = None


def degraded_name(name: str, kind: str, level: int) -> str:
    """The display name of an image re-encoded (``kind`` ``jpeg``) or downsized to ``level``."""
    return f"{name} · JPEG q{level}" if kind == "jpeg" else f"{name} · {level}%"


def degraded_caption(degraded: Degraded, kind: str, level: int) -> str:
    """The caption under a degraded image: its JPEG quality and size, or its new dimensions."""
    if kind == "jpeg":
        return f"JPEG quality {level} · {degraded.nbytes / 1024:.0f} KB"
    return f"{level}% · {degraded.width} x {degraded.height} px"
