"""The Beam pipeline's plain steps, none of which needs Apache Beam to import or to test.

Which files a pattern means (`resolve_pattern`, `local_folder` and `list_folder`, `is_visible`,
so that a folder is listed as `detector.expand_paths` lists it), how one file becomes a decoded
image or an error (`_decode`, as `detector.scan` reads it), how rows are written (`csv_line`,
`jsonl_line`, the `detector.SCAN_FIELDS` schema) and which models are shared by a worker
machine's processes (`share_decision`; which models may run is `detector.resolve_model_names`'s
answer). `detector.scale.beam` wires them into a pipeline.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detector.core.errors import (
    DetectorError,
    ImageLoadError,
)
from detector.core.images import MAX_FILE_BYTES, load_image
from detector.core.models import MODELS_DIR_ENV
from detector.scale.batch import SCAN_FIELDS, ScanRow, expand_paths, read_image

#: With ``share_models="auto"``, weights files at least this large are loaded once per machine
#: and shared by its worker processes (Beam's ``share_model_across_processes``).
SHARE_MODEL_BYTES = 150 * 1024 * 1024

_GLOB_CHARS = re.compile(r"[*?\[]")


def worker_models_dir(models_dir: str | Path | None = None) -> str | None:
    """The models folder to hand to workers explicitly.

    Args:
        models_dir: The ``--models-dir`` value, if any.

    Returns:
        ``models_dir`` or ``$FAKEDETECT_MODELS_DIR`` as an absolute path, or None when neither is
        set (each worker then uses its own ``$FAKEDETECT_MODELS_DIR`` or package default).

    Raises:
        DetectorError: for a URL: models load from a local or mounted folder, never a bucket.
    """
    chosen = models_dir if models_dir is not None else os.environ.get(MODELS_DIR_ENV) or None
    if chosen is None:
        return None
    text = str(chosen)
    if "://" in text:
        raise DetectorError(
            f"models folder {text!r} is a URL; models load from a local or mounted folder "
            "(bake it into the worker image or mount it, see README 'Scaling out')",
            code="usage",
        )
    return os.path.abspath(text)


def resolve_pattern(pattern: str) -> str:
    """The Beam file pattern for a user's input: a local folder becomes ``folder/**``.

    Beam's ``*`` stays inside one folder and ``**`` crosses folders, so ``photos/**`` scans a
    tree as ``scan photos/`` does.

    Raises:
        FileNotFoundError: for a local path without wildcards that does not exist.
    """
    if _GLOB_CHARS.search(pattern) or "://" in pattern:
        return pattern
    if os.path.isdir(pattern):
        return pattern.rstrip("/\\") + "/**"
    if not os.path.exists(pattern):
        raise FileNotFoundError(f"no such file or folder: {pattern}")
    return pattern


def is_visible(path: str, pattern: str) -> bool:
    """False for files under a hidden file or folder below the pattern's fixed folder.

    Mirrors `detector.expand_paths`, which skips hidden entries under the folders it walks; a
    pattern that itself spells a hidden name (``photos/.cache/*``) keeps what it names.
    """
    fixed = _GLOB_CHARS.split(pattern, 1)[0]
    base = re.split(r"[/\\]", fixed)
    base_dir = fixed[: len(fixed) - len(base[-1])]
    spelled = pattern[len(base_dir) :]
    if any(part.startswith(".") for part in re.split(r"[/\\]", spelled) if part):
        return True
    rest = path[len(base_dir) :] if path.startswith(base_dir) else os.path.basename(path)
    return not any(part.startswith(".") for part in re.split(r"[/\\]", rest) if part)


def local_folder(pattern: str) -> str | None:
    """The local folder a pattern means in full (``folder/**``, no other wildcard), else None.

    Such a folder is listed by `list_folder`, as ``scan`` lists it, rather than matched.
    """
    if "://" in pattern:
        return None
    for ending in ("/**", "\\**"):
        if pattern.endswith(ending):
            folder = pattern[: -len(ending)] or ending[0]
            if not _GLOB_CHARS.search(folder) and os.path.isdir(folder):
                return folder
    return None


def list_folder(folder: str) -> list[str]:
    """The paths `detector.expand_paths` gives for a local folder: one ``scan`` row each.

    Beam's own listing of ``folder/**`` drops some entries without a word: links that lead
    nowhere or loop, links to folders and sub-folders it cannot list. ``scan`` gives each of
    them an error row that names the problem, and so does the pipeline with this listing.
    """
    return [str(path) for path in expand_paths([folder])]


def _decode(element: Any) -> tuple[str, np.ndarray | DetectorError]:
    """(path, RGB array or the `ImageLoadError`) for a path string or a Beam ``ReadableFile``."""
    from apache_beam.io.filesystems import CompressionTypes, FileSystems

    metadata = getattr(element, "metadata", None)
    path = metadata.path if metadata is not None else str(element)
    try:
        if FileSystems.get_scheme(path) is None:  # local: exactly what `scan` does
            return path, read_image(Path(path))
        size = metadata.size_in_bytes if metadata is not None else None
        if size is not None and size > MAX_FILE_BYTES:
            raise ImageLoadError(
                f"file too large: {size / 1e6:.1f} MB (limit {MAX_FILE_BYTES / 1e6:.0f} MB)",
                code="file_too_large",
            )
        raw = CompressionTypes.UNCOMPRESSED  # bytes as stored, whatever the file name says
        opened = (
            element.open(compression_type=raw)
            if metadata is not None
            else FileSystems.open(path, compression_type=raw)
        )
        with opened as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
        return path, load_image(data)
    except DetectorError as exc:
        return path, exc
    except OSError as exc:  # unreadable remote object: a row, not a failed pipeline
        return path, ImageLoadError(f"cannot read: {exc}", code="read_failed")


def _error_rows(path: str, names: Sequence[str], error: str) -> Iterator[dict[str, Any]]:
    for name in names:
        yield ScanRow(path, name, None, None, error).to_dict()


def _result_row(path: str, result: Any) -> dict[str, Any]:
    p_fake, label, error = result.inference
    return ScanRow(path, result.model_id, p_fake, label, error).to_dict()


def csv_line(row: dict[str, Any]) -> str:
    """One CSV record (no line end) of a row, written as `detector.cli`'s ``scan`` writes it."""
    buffer = io.StringIO()
    csv.DictWriter(buffer, fieldnames=list(SCAN_FIELDS), lineterminator="").writerow(row)
    return buffer.getvalue()


def jsonl_line(row: dict[str, Any]) -> str:
    """One JSON Lines record (no line end) of a row, as ``scan --format jsonl`` writes it."""
    return json.dumps(row)


def share_decision(
    names: Sequence[str], models_dir: str | Path | None, mode: str
) -> dict[str, bool]:
    """Whether each model is shared across a worker machine's processes.

    One copy per process is fastest on CPU; one copy per machine (served to its processes by
    Beam's multi-process sharing) keeps very large models within memory.

    Args:
        names: Model names.
        models_dir: Models folder as seen from the launching machine.
        mode: ``always``, ``never`` or ``auto`` (weights of at least `SHARE_MODEL_BYTES`).

    Returns:
        Model name to True when it is shared.
    """
    if mode in ("always", "never"):
        return dict.fromkeys(names, mode == "always")
    from detector.core.models import _scan

    found = _scan(models_dir)
    decision = {}
    for name in names:
        card, folder = found[name]
        weights = folder / card.weights_file
        decision[name] = weights.is_file() and weights.stat().st_size >= SHARE_MODEL_BYTES
    return decision
