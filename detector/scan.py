"""Batch scanning of files and folders: one row per (file, model), bad files become error rows."""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detector.errors import DetectorError, ImageLoadError
from detector.images import load_image

log = logging.getLogger(__name__)

SCAN_FIELDS: tuple[str, ...] = ("path", "model", "p_fake", "label", "error")


@dataclass(frozen=True)
class ScanRow:
    """One (file, model) result of a scan; exactly one of ``p_fake`` and ``error`` is set."""

    path: str
    model: str
    p_fake: float | None
    label: str | None
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the `SCAN_FIELDS` keys."""
        data = asdict(self)
        if data["p_fake"] is not None:
            data["p_fake"] = round(float(data["p_fake"]), 6)
        return data


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files named directly, plus every non-hidden entry under named folders (sorted).

    Folders are walked without following symbolic links to folders, so link loops cannot trap
    the walk. Every entry that is not a folder is returned, whatever it is (dangling or looping
    links, links to folders, FIFOs, devices), and so are sub-folders that cannot be listed:
    `scan` turns each into an error row that names the problem rather than dropping it.

    Raises:
        FileNotFoundError: for a path that does not exist.
    """
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        try:
            is_dir = path.is_dir()
            exists = is_dir or path.exists()
        except OSError:  # e.g. a parent folder this user may not enter: a read_failed row
            files.append(path)
            continue
        if is_dir:
            files.extend(_walk(path))
        elif exists:
            files.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {raw}")
    return files


def _walk(top: Path) -> list[Path]:
    """Every non-hidden entry under ``top`` that is not a folder, plus unlistable folders."""
    found: list[Path] = []
    folders = [top]
    while folders:  # a stack, not recursion: depth is bounded by the file system alone
        folder = folders.pop()
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError as exc:  # an error row for the folder rather than nothing
            log.debug("cannot list %s: %s", folder, exc)
            found.append(folder)
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = folder / entry.name
            try:
                is_folder = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_folder = False
            (folders if is_folder else found).append(path)
    return sorted(found)


def _not_a_file(path: Path) -> ImageLoadError | None:
    """A named error for links that lead nowhere or to a folder, and for unlistable folders.

    Everything else (regular files, FIFOs, devices, missing files) is left to `load_image`.
    """
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(mode):
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            why = "it loops" if exc.errno == errno.ELOOP else "its target does not exist"
            if exc.errno not in (errno.ELOOP, errno.ENOENT, errno.ENOTDIR):
                why = exc.strerror or type(exc).__name__
            return ImageLoadError(f"broken link: {path.name} ({why})", code="broken_link")
        if stat.S_ISDIR(mode):
            return ImageLoadError(
                f"a link to a folder, not followed: {path.name}", code="not_a_file"
            )
        return None
    if stat.S_ISDIR(mode):
        try:
            with os.scandir(path):
                pass
        except OSError as exc:
            return ImageLoadError(
                f"cannot list folder {path.name}: {exc.strerror or exc}", code="read_failed"
            )
        return ImageLoadError(f"a folder, not a file: {path.name}", code="not_a_file")
    return None


def _decode(path: Path) -> np.ndarray | DetectorError:
    try:
        problem = _not_a_file(path)
        return problem if problem is not None else load_image(path)
    except DetectorError as exc:
        return exc
    except OSError as exc:  # e.g. no read permission: one error row, the scan goes on
        return ImageLoadError(f"cannot read {path.name}: {exc.strerror or exc}", code="read_failed")


def scan(
    files: Sequence[Path],
    detectors: Sequence[Any],
    *,
    batch_size: int = 32,
    workers: int = 2,
    progress: Callable[[int], None] | None = None,
) -> Iterator[ScanRow]:
    """Score files with several models, yielding rows in file order.

    Images are decoded in a thread pool while the previous batch is scored. A file that cannot be
    read gives one error row per model; a model that fails gives error rows for its files while
    the other models go on.

    Args:
        files: Files to scan.
        detectors: Loaded `Detector` objects.
        batch_size: Images per model call.
        workers: Decoding threads.
        progress: Called with the number of files finished after each batch.
    """
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        batches = [files[i : i + batch_size] for i in range(0, len(files), batch_size)]
        pending = pool.map(_decode, batches[0]) if batches else None
        for index, batch in enumerate(batches):
            decoded = list(pending) if pending is not None else []
            if index + 1 < len(batches):
                pending = pool.map(_decode, batches[index + 1])
            good = [i for i, item in enumerate(decoded) if isinstance(item, np.ndarray)]
            scores: dict[str, np.ndarray | str] = {}
            for det in detectors:
                try:
                    prep = det.spec.preprocessing
                    arrays = prep.apply_batch([decoded[i] for i in good]) if good else None
                    probs = det.p_fake_batch(arrays) if arrays is not None else np.zeros(0)
                    scores[det.name] = probs
                except Exception as exc:  # one failing model must not stop the others
                    log.exception("model %s failed on a batch", det.name)
                    scores[det.name] = f"model_failed: {type(exc).__name__}: {exc}"
            position = {file_index: k for k, file_index in enumerate(good)}
            for i, path in enumerate(batch):
                item = decoded[i]
                for det in detectors:
                    if isinstance(item, DetectorError):
                        yield ScanRow(str(path), det.name, None, None, f"{item.code}: {item}")
                        continue
                    result = scores[det.name]
                    if isinstance(result, str):
                        yield ScanRow(str(path), det.name, None, None, result)
                        continue
                    p_fake = float(result[position[i]])
                    yield ScanRow(str(path), det.name, p_fake, det.card.label_for(p_fake), None)
            if progress is not None:
                progress(len(batch))
