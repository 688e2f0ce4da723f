"""Uploads and batch files: zip archives read in memory with limits, batch tables written as CSV.

`read_uploads` turns uploaded files and ``.zip`` archives into named images without writing a
visitor's file name to disk, within `UploadLimits` (files, bytes, members); `BatchRow` is one row
of the batch table, which `write_csv` saves (cells that a spreadsheet would run as formulas are
defused) and `prune_files` clears away after an hour.
"""

from __future__ import annotations

import csv
import io
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detector.core.images import (
    MAX_FILE_BYTES,
)
from detector.scale.batch import ScanRow
from detector.ui.texts import (
    LABELS,
)


@dataclass(frozen=True)
class UploadLimits:
    """Limits on what a batch upload may contain.

    Attributes:
        max_files: Most images in one batch (archive members included).
        max_file_bytes: Largest single file or archive member, in bytes.
        max_total_bytes: Most bytes read in one batch (archives counted uncompressed).
        max_ratio: Largest compression ratio accepted for an archive member (zip-bomb guard).
    """

    max_files: int = 200
    max_file_bytes: int = MAX_FILE_BYTES
    max_total_bytes: int = 300 * 1024 * 1024
    max_ratio: float = 250.0


@dataclass(frozen=True)
class UploadItem:
    """One file of a batch, read into memory: either ``data`` or ``error`` is set."""

    name: str
    data: bytes | None = field(default=None, repr=False)
    error: str | None = None


def clean_name(name: str, limit: int = 200) -> str:
    """A user's file name made safe to show: printable characters only, at most ``limit``."""
    text = "".join(ch if ch.isprintable() else "?" for ch in str(name)).strip() or "(unnamed)"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _is_zip(data: bytes) -> bool:
    return data[:4] in (b"PK\x03\x04", b"PK\x05\x06")


def extract_zip(
    data: bytes,
    archive_name: str = "archive.zip",
    limits: UploadLimits | None = None,
    *,
    used_files: int = 0,
    used_bytes: int = 0,
) -> list[UploadItem]:
    """Read the files of a zip archive into memory (nothing touches the disk).

    Folders, hidden files and ``__MACOSX`` entries are skipped. Members that are too large,
    compressed suspiciously well, encrypted, damaged or themselves archives become items with an
    error; files past ``limits.max_files`` or ``limits.max_total_bytes`` become one error item.
    ``used_files`` and ``used_bytes`` count what earlier files of the same batch used up.
    """
    limits = limits or UploadLimits()
    archive_name = clean_name(archive_name)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        return [UploadItem(archive_name, error=f"bad_archive: not a readable zip file ({exc})")]
    items: list[UploadItem] = []
    total = used_bytes
    with archive:
        wanted = [m for m in members if not m.is_dir() and not _hidden(m.filename)]
        for index, info in enumerate(wanted):
            name = f"{archive_name}/{clean_name(info.filename)}"
            if used_files + len(items) >= limits.max_files:
                items.append(
                    UploadItem(
                        archive_name,
                        error=f"too_many_files: {len(wanted) - index} more file(s) skipped "
                        f"(limit {limits.max_files} per batch)",
                    )
                )
                break
            if info.flag_bits & 0x1:
                items.append(UploadItem(name, error="encrypted: password-protected member"))
                continue
            if info.file_size > limits.max_file_bytes:
                items.append(UploadItem(name, error=_too_large(info.file_size, limits)))
                continue
            if info.compress_size and info.file_size / info.compress_size > limits.max_ratio:
                items.append(
                    UploadItem(name, error="suspicious_archive: compression ratio too high")
                )
                continue
            if total + info.file_size > limits.max_total_bytes:
                items.append(
                    UploadItem(
                        archive_name,
                        error=f"batch_too_large: {len(wanted) - index} more file(s) skipped "
                        f"(limit {limits.max_total_bytes // (1024 * 1024)} MB per batch)",
                    )
                )
                break
            try:
                with archive.open(info) as member:
                    content = member.read(limits.max_file_bytes + 1)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError) as exc:
                items.append(UploadItem(name, error=f"bad_archive_member: {exc}"))
                continue
            if len(content) > limits.max_file_bytes:
                items.append(UploadItem(name, error=_too_large(len(content), limits)))
                continue
            total += len(content)
            if _is_zip(content):
                items.append(
                    UploadItem(
                        name, error="nested_archive: archives inside archives are not opened"
                    )
                )
                continue
            items.append(UploadItem(name, data=content))
    if not items:
        items.append(UploadItem(archive_name, error="empty_archive: no files in the archive"))
    return items


def _hidden(member: str) -> bool:
    parts = [p for p in member.replace("\\", "/").split("/") if p]
    return not parts or parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts)


def _too_large(size: int, limits: UploadLimits) -> str:
    return (
        f"file_too_large: {size / 1e6:.1f} MB (limit {limits.max_file_bytes / 1e6:.0f} MB per file)"
    )


def read_uploads(
    files: Sequence[str | Path | tuple[str, bytes]], limits: UploadLimits | None = None
) -> list[UploadItem]:
    """Read uploaded files (paths, or ``(name, bytes)`` pairs) into memory, opening zip archives.

    Names shown to users are the files' base names (archive members as ``archive.zip/member``).
    Unreadable files and anything past the limits become items with an error.
    """
    limits = limits or UploadLimits()
    items: list[UploadItem] = []
    total = 0
    for index, entry in enumerate(files):
        if len(items) >= limits.max_files:
            items.append(
                UploadItem(
                    "(more files)",
                    error=f"too_many_files: {len(files) - index} more file(s) skipped "
                    f"(limit {limits.max_files} per batch)",
                )
            )
            break
        if isinstance(entry, tuple):
            name, data = clean_name(entry[0]), bytes(entry[1])
        else:
            path = Path(entry)
            name = clean_name(path.name)
            try:
                size = path.stat().st_size
                if size > max(limits.max_file_bytes, limits.max_total_bytes):
                    items.append(UploadItem(name, error=_too_large(size, limits)))
                    continue
                data = path.read_bytes()
            except OSError as exc:
                items.append(UploadItem(name, error=f"unreadable_file: {exc.strerror or exc}"))
                continue
        if _is_zip(data):
            members = extract_zip(data, name, limits, used_files=len(items), used_bytes=total)
            total += sum(len(m.data) for m in members if m.data is not None)
            items.extend(members)
            continue
        if len(data) > limits.max_file_bytes:
            items.append(UploadItem(name, error=_too_large(len(data), limits)))
            continue
        if total + len(data) > limits.max_total_bytes:
            items.append(
                UploadItem(
                    name,
                    error=f"batch_too_large: over {limits.max_total_bytes // (1024 * 1024)} MB",
                )
            )
            continue
        total += len(data)
        items.append(UploadItem(name, data=data))
    return items


#: Columns of the batch table and its CSV.
BATCH_FIELDS: tuple[str, ...] = ("file", "model", "verdict", "p_fake", "seconds", "error")


@dataclass(frozen=True)
class BatchRow:
    """One (file, model) row of a batch table: a verdict and P(fake), or an error.

    The apps' table and CSV columns (`BATCH_FIELDS`); its rows are made from the batch engine's
    (`from_scan`), whose own columns (`detector.SCAN_FIELDS`) the CLI writes.
    """

    file: str
    model: str
    verdict: str | None
    p_fake: float | None
    seconds: float | None
    error: str | None

    @classmethod
    def from_scan(cls, row: ScanRow) -> BatchRow:
        """The table row of a batch engine row (`detector.scale.batch.scan`)."""
        return cls(row.path, row.model, row.label, row.p_fake, row.seconds, row.error)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the `BATCH_FIELDS` keys."""
        return {
            "file": self.file,
            "model": self.model,
            "verdict": self.verdict,
            "p_fake": None if self.p_fake is None else round(self.p_fake, 6),
            "seconds": None if self.seconds is None else round(self.seconds, 6),
            "error": self.error,
        }

    def to_list(self) -> list[Any]:
        """The row's values in `BATCH_FIELDS` order (empty strings for missing values)."""
        data = self.to_dict()
        return ["" if data[key] is None else data[key] for key in BATCH_FIELDS]


def batch_summary(rows: Sequence[BatchRow]) -> str:
    """One sentence summarising a batch, e.g. ``"3 files x 2 models: 2 fake, 3 real, 1 error."``."""
    files = len(dict.fromkeys(r.file for r in rows))
    models = len(dict.fromkeys(r.model for r in rows))
    counts = Counter(r.verdict or "error" for r in rows)
    parts = [f"{counts[k]} {k}" for k in (*LABELS, "error") if counts[k]]
    return (
        f"{files} file{'s' if files != 1 else ''} x {models} model{'s' if models != 1 else ''}: "
        + (", ".join(parts) if parts else "nothing scored")
        + "."
    )


def _csv_cell(value: Any) -> Any:
    # Spreadsheets run cells that start with these characters as formulas.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def write_csv(rows: Sequence[BatchRow], directory: str | Path | None = None) -> Path:
    """Write rows to a fresh CSV file with a generated name (never a user's file name).

    Args:
        rows: The batch rows.
        directory: Folder for the file (default: the system temporary folder).

    Returns:
        The path of the new file.
    """
    handle, name = tempfile.mkstemp(prefix="fakedetect-batch-", suffix=".csv", dir=directory)
    with open(handle, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(BATCH_FIELDS)
        for row in rows:
            writer.writerow([_csv_cell(v) for v in row.to_list()])
    return Path(name)


def prune_files(directory: str | Path, max_age_seconds: float = 3600.0) -> int:
    """Delete files older than ``max_age_seconds`` in ``directory``; returns how many."""
    removed = 0
    cutoff = time.time() - max_age_seconds
    for path in Path(directory).glob("fakedetect-batch-*.csv"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except OSError:
            continue
    return removed
