"""Batch scanning of files and folders: one row per (file, model), bad files become error rows.

Each image is scored exactly as `Detector.predict` scores it: a ``native_crop`` model reads
the patches `detector.core.patches.patch_grid` spreads over a large image and combines their fake
logits by the mean (a small image gets its one centre crop), other models read their one view.
`model_inputs` and `whole_image_p_fake` are that computation in two steps, shared with the
Beam pipeline (`detector.scale.beam`) so that both give the same rows.
"""

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

from detector.core.errors import DetectorError, ImageLoadError
from detector.core.images import load_image
from detector.core.patches import MAX_PATCHES, calibrate, combine, image_views
from detector.core.spec import Preprocessing

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


def read_image(path: Path) -> np.ndarray | DetectorError:
    """A local file's RGB uint8 pixels, or the error its scan rows report.

    The file's problems are returned, not raised: links that lead nowhere or to a folder,
    folders, FIFOs, devices, unreadable and non-image files each give a named `DetectorError`
    (see `expand_paths`).
    """
    try:
        problem = _not_a_file(path)
        return problem if problem is not None else load_image(path)
    except DetectorError as exc:
        return exc
    except OSError as exc:  # e.g. no read permission: one error row, the scan goes on
        return ImageLoadError(f"cannot read {path.name}: {exc.strerror or exc}", code="read_failed")


def model_inputs(
    image: np.ndarray, prep: Preprocessing, max_patches: int = MAX_PATCHES
) -> np.ndarray:
    """What a model reads of one RGB uint8 image, as `Detector.predict` makes it.

    The views of `detector.core.patches.image_views`: a ``native_crop`` model's patches (the one
    centre crop of an image too small for two), or the single view of other resize modes. They
    are kept as uint8: crops and resizes of a uint8 image, their float32 values are whole
    numbers 0-255, which uint8 holds exactly in a quarter of the memory.

    Args:
        image: RGB uint8 (H, W, 3).
        prep: The model's preprocessing.
        max_patches: Most patches (the detector's ``max_patches``).

    Returns:
        (N, size, size, 3), one row per view: uint8 (float32 should a value not be a whole
        number 0-255).
    """
    batch = image_views(image, prep, max_patches=max_patches).batch
    compact = batch.astype(np.uint8)
    return compact if np.array_equal(compact, batch) else batch


def whole_image_p_fake(model: Any, inputs: Sequence[np.ndarray], temperature: float) -> list[float]:
    """Each image's calibrated P(fake) from its `model_inputs`, as `Detector.predict` gives it.

    The views of all the images go through the model in one run (which the model chunks);
    each image's fake logits are combined by their mean (`detector.core.patches.combine`), divided
    by the temperature and put through a sigmoid.

    Args:
        model: A `Detector` (anything with its ``fake_logits_batch``).
        inputs: One (N_i, size, size, 3) array per image.
        temperature: The model card's temperature.

    Returns:
        One P(fake) in [0, 1] per image.
    """
    if not inputs:
        return []
    logits = np.asarray(model.fake_logits_batch(np.concatenate(inputs)), dtype=np.float64)
    ends = np.cumsum([len(x) for x in inputs])
    return [
        float(np.clip(calibrate(combine(z), temperature), 0.0, 1.0))
        for z in np.split(logits, ends[:-1])
    ]


_InputKey = tuple[Preprocessing, int]


def _input_key(det: Any) -> _InputKey:
    return det.spec.preprocessing, int(det.max_patches)


def _decode_inputs(path: Path, keys: Sequence[_InputKey]) -> dict[_InputKey, Any] | DetectorError:
    """Decode one file and make each model input from it; the full-size pixels are dropped.

    Returns:
        The file's error, or for each (preprocessing, max_patches) key the model input, or a
        ``model_failed`` text when making it failed.
    """
    image = read_image(path)
    if isinstance(image, DetectorError):
        return image
    inputs: dict[_InputKey, Any] = {}
    for key in keys:
        try:
            inputs[key] = model_inputs(image, *key)
        except Exception as exc:  # as a failing model: these models' rows for this file
            log.exception("preprocessing failed on %s", path)
            inputs[key] = f"model_failed: {type(exc).__name__}: {exc}"
    return inputs


def _score_batch(det: Any, decoded: Sequence[Any]) -> dict[int, float | str]:
    """One model's P(fake) or error text for each readable file of a decoded batch."""
    key = _input_key(det)
    results: dict[int, float | str] = {}
    good = []
    for i, item in enumerate(decoded):
        if isinstance(item, DetectorError):
            continue
        if isinstance(item[key], str):
            results[i] = item[key]
        else:
            good.append(i)
    try:
        probs = whole_image_p_fake(det, [decoded[i][key] for i in good], det.temperature)
    except Exception as exc:  # one failing model must not stop the others
        log.exception("model %s failed on a batch", det.name)
        return {**results, **dict.fromkeys(good, f"model_failed: {type(exc).__name__}: {exc}")}
    results.update(zip(good, probs, strict=True))
    return results


def scan(
    files: Sequence[Path],
    detectors: Sequence[Any],
    *,
    batch_size: int = 32,
    workers: int = 2,
    progress: Callable[[int], None] | None = None,
) -> Iterator[ScanRow]:
    """Score files with several models, yielding rows in file order.

    Each P(fake) is the one `Detector.predict` gives for the file (every patch of a large image,
    for a ``native_crop`` model). Images are decoded in a thread pool while the previous batch
    is scored; each image is turned into its model inputs as soon as it is decoded and its
    full-size pixels are dropped, so only the decoding threads' current images are ever held at
    full size. A file that cannot be read gives one error row per model; a model that fails
    gives error rows for its files while the other models go on.

    Args:
        files: Files to scan.
        detectors: Loaded `Detector` objects.
        batch_size: Images per model call (each adds all its patches to the call).
        workers: Decoding threads.
        progress: Called with the number of files finished after each batch.
    """
    keys = list(dict.fromkeys(_input_key(det) for det in detectors))

    def decode(path: Path) -> dict[_InputKey, Any] | DetectorError:
        return _decode_inputs(path, keys)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        batches = [files[i : i + batch_size] for i in range(0, len(files), batch_size)]
        pending = pool.map(decode, batches[0]) if batches else None
        for index, batch in enumerate(batches):
            decoded = list(pending) if pending is not None else []
            if index + 1 < len(batches):
                pending = pool.map(decode, batches[index + 1])
            scores = [_score_batch(det, decoded) for det in detectors]
            for i, path in enumerate(batch):
                item = decoded[i]
                for det, results in zip(detectors, scores, strict=True):
                    if isinstance(item, DetectorError):
                        yield ScanRow(str(path), det.name, None, None, f"{item.code}: {item}")
                        continue
                    result = results[i]
                    if isinstance(result, str):
                        yield ScanRow(str(path), det.name, None, None, result)
                        continue
                    yield ScanRow(str(path), det.name, result, det.card.label_for(result), None)
            if progress is not None:
                progress(len(batch))
