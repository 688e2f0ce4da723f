"""The one batch engine: one row per (file, model), bad files and failing models become error rows.

`scan` scores files on disk (the CLI, `detector.scan`) and images held in memory (`ScanItem`:
bytes or decoded pixels, the apps' uploads) with models given loaded or by name, reporting its
progress batch by batch; the Gradio and Streamlit batch tables are made from its rows
(`detector.ui.presentation.batch_rows`).

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
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detector.core.errors import DetectorError, ImageLoadError, error_text
from detector.core.images import load_image
from detector.core.models import load_model
from detector.core.patches import MAX_PATCHES, calibrate, combine, image_views
from detector.core.spec import Preprocessing

log = logging.getLogger(__name__)

SCAN_FIELDS: tuple[str, ...] = ("path", "model", "p_fake", "label", "error")


@dataclass(frozen=True)
class ScanRow:
    """One (file, model) result of a scan; exactly one of ``p_fake`` and ``error`` is set.

    Attributes:
        path: The file's path, or the name of an in-memory `ScanItem`.
        model: The model's name.
        p_fake: The calibrated P(fake), or None on error.
        label: The model card's verdict for ``p_fake``, or None on error.
        error: What went wrong (``code: message``), or None.
        seconds: The model's time for this image (its share of the batch's model call), or None
            on error. A measurement: not in `SCAN_FIELDS`, nor compared between rows.
    """

    path: str
    model: str
    p_fake: float | None
    label: str | None
    error: str | None
    seconds: float | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the `SCAN_FIELDS` keys."""
        p_fake = None if self.p_fake is None else round(float(self.p_fake), 6)
        return {
            "path": self.path,
            "model": self.model,
            "p_fake": p_fake,
            "label": self.label,
            "error": self.error,
        }


@dataclass(frozen=True, eq=False)
class ScanItem:
    """An image held in memory for `scan`: a name to show, never used as a path.

    Attributes:
        name: What its rows show in the ``path`` column (e.g. an upload's file name).
        image: The file's bytes or its decoded pixels (an array `load_image` reads); None when
            ``error`` says why there is nothing to score.
        error: The error every model's row for it reports (e.g. a refused upload), or None.
    """

    name: str
    image: bytes | np.ndarray | None = field(default=None, repr=False)
    error: str | None = None


#: What `scan` reads: a file on disk (a path) or an image held in memory.
Source = str | os.PathLike[str] | ScanItem


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


def whole_image_p_fake(
    model: Any, inputs: Sequence[np.ndarray], temperature: float, *, scene: bool = False
) -> list[float]:
    """Each image's calibrated P(fake) from its `model_inputs`, as `Detector.predict` gives it.

    The views of all the images go through the model in one run (which the model chunks);
    each image's fake logits are combined (`detector.core.patches.combine`: their mean, the
    scene view weighing half), divided by the temperature and put through a sigmoid.

    Args:
        model: A `Detector` (anything with its ``fake_logits_batch``).
        inputs: One (N_i, size, size, 3) array per image.
        temperature: The model card's temperature.
        scene: The model's card has a ``scene_side`` (`uses_scene_view`).

    Returns:
        One P(fake) in [0, 1] per image.
    """
    if not inputs:
        return []
    logits = np.asarray(model.fake_logits_batch(np.concatenate(inputs)), dtype=np.float64)
    ends = np.cumsum([len(x) for x in inputs])
    return [
        float(np.clip(calibrate(combine(z, scene=scene), temperature), 0.0, 1.0))
        for z in np.split(logits, ends[:-1])
    ]


def uses_scene_view(prep: Preprocessing) -> bool:
    """Whether a model with this preprocessing adds a scene view to large images."""
    return prep.scene_side is not None


_InputKey = tuple[Preprocessing, int]


def _input_key(det: Any) -> _InputKey:
    return det.spec.preprocessing, int(det.max_patches)


def _source_name(source: Source) -> str:
    return source.name if isinstance(source, ScanItem) else str(source)


def _read_source(source: Source) -> np.ndarray | str:
    """A source's RGB uint8 pixels, or the error text of its rows."""
    if not isinstance(source, ScanItem):
        image = read_image(Path(source))
        return error_text(image) if isinstance(image, DetectorError) else image
    if source.image is None:
        return source.error or "unreadable_file"
    if isinstance(source.image, np.ndarray) and _is_rgb_uint8(source.image):
        return source.image
    try:
        return load_image(source.image)
    except (DetectorError, OSError) as exc:
        return error_text(exc)


def _is_rgb_uint8(image: np.ndarray) -> bool:
    return image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


def _decode_inputs(source: Source, keys: Sequence[_InputKey]) -> dict[_InputKey, Any] | str:
    """Decode one source and make each model input from it; the full-size pixels are dropped.

    Returns:
        The source's error text, or for each (preprocessing, max_patches) key the model input,
        or a ``model_failed`` text when making it failed.
    """
    image = _read_source(source)
    if isinstance(image, str):
        return image
    inputs: dict[_InputKey, Any] = {}
    for key in keys:
        try:
            inputs[key] = model_inputs(image, *key)
        except Exception as exc:  # as a failing model: these models' rows for this file
            log.exception("preprocessing failed on %s", _source_name(source))
            inputs[key] = f"model_failed: {type(exc).__name__}: {exc}"
    return inputs


def _score_batch(det: Any, decoded: Sequence[Any]) -> dict[int, tuple[float, float] | str]:
    """One model's (P(fake), seconds) or error text for each readable file of a decoded batch."""
    key = _input_key(det)
    results: dict[int, tuple[float, float] | str] = {}
    good = []
    for i, item in enumerate(decoded):
        if isinstance(item, str):
            continue
        if isinstance(item[key], str):
            results[i] = item[key]
        else:
            good.append(i)
    started = time.perf_counter()
    try:
        probs = whole_image_p_fake(
            det,
            [decoded[i][key] for i in good],
            det.temperature,
            scene=uses_scene_view(det.spec.preprocessing),
        )
    except Exception as exc:  # one failing model must not stop the others
        log.exception("model %s failed on a batch", det.name)
        return {**results, **dict.fromkeys(good, f"model_failed: {type(exc).__name__}: {exc}")}
    seconds = (time.perf_counter() - started) / max(len(good), 1)
    results.update((i, (p, seconds)) for i, p in zip(good, probs, strict=True))
    return results


@dataclass(frozen=True)
class _FailedModel:
    """A model named to `scan` that could not be loaded: its rows are errors."""

    name: str
    error: str


def _load(model: Any, load: Callable[[str], Any]) -> Any:
    """A loaded model (a name is loaded with ``load``), or `_FailedModel`."""
    if not isinstance(model, str):
        return model
    try:
        return load(model)
    except Exception as exc:  # every file gets an error row for it; the other models go on
        log.warning("model %s cannot load: %s", model, exc)
        return _FailedModel(model, f"model_failed: {error_text(exc)}")


def scan(
    files: Sequence[Source],
    detectors: Sequence[Any],
    *,
    batch_size: int = 32,
    workers: int = 2,
    progress: Callable[[int], None] | None = None,
    load: Callable[[str], Any] = load_model,
) -> Iterator[ScanRow]:
    """Score files with several models, yielding rows in file order, model by model.

    Each P(fake) is the one `Detector.predict` gives for the file (every patch of a large image,
    for a ``native_crop`` model). Images are decoded in a thread pool while the previous batch
    is scored; each image is turned into its model inputs as soon as it is decoded and its
    full-size pixels are dropped, so only the decoding threads' current images are ever held at
    full size. A file that cannot be read gives one error row per model; a model that fails (or
    cannot load) gives error rows for its files while the other models go on.

    Args:
        files: Files on disk (paths) and images held in memory (`ScanItem`: bytes or decoded
            pixels, or an error); a `ScanItem`'s name is only shown, never opened.
        detectors: Loaded `Detector` objects, or model names (see ``load``).
        batch_size: Images per model call (each adds all its patches to the call).
        workers: Decoding threads.
        progress: Called with the number of files finished after each batch (they add up to
            ``len(files)``), once that batch's rows are yielded.
        load: Loads the models named in ``detectors`` (default: `load_model`, from the default
            models folder).
    """
    models = [_load(model, load) for model in detectors]
    loaded = [det for det in models if not isinstance(det, _FailedModel)]
    keys = list(dict.fromkeys(_input_key(det) for det in loaded))

    def decode(source: Source) -> dict[_InputKey, Any] | str:
        return _decode_inputs(source, keys)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        batches = [files[i : i + batch_size] for i in range(0, len(files), batch_size)]
        pending = pool.map(decode, batches[0]) if batches else None
        for index, batch in enumerate(batches):
            decoded = list(pending) if pending is not None else []
            if index + 1 < len(batches):
                pending = pool.map(decode, batches[index + 1])
            scores = {id(det): _score_batch(det, decoded) for det in loaded}
            for i, source in enumerate(batch):
                name, item = _source_name(source), decoded[i]
                for det in models:
                    if isinstance(item, str):
                        yield ScanRow(name, det.name, None, None, item)
                        continue
                    if isinstance(det, _FailedModel):
                        yield ScanRow(name, det.name, None, None, det.error)
                        continue
                    result = scores[id(det)][i]
                    if isinstance(result, str):
                        yield ScanRow(name, det.name, None, None, result)
                        continue
                    p_fake, seconds = result
                    label = det.card.label_for(p_fake)
                    yield ScanRow(name, det.name, p_fake, label, None, seconds)
            if progress is not None:
                progress(len(batch))
