"""Batch scanning of files and folders: one row per (file, model), bad files become error rows."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detector.errors import DetectorError
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
    """Files named directly, plus every non-hidden file under named folders (sorted).

    Raises:
        FileNotFoundError: for a path that does not exist.
    """
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(
                sorted(
                    p
                    for p in path.rglob("*")
                    if p.is_file()
                    and not any(part.startswith(".") for part in p.relative_to(path).parts)
                )
            )
        elif path.exists():
            files.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {raw}")
    return files


def _decode(path: Path) -> np.ndarray | DetectorError:
    try:
        return load_image(path)
    except DetectorError as exc:
        return exc


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
