"""Loaders for the starter kit and public real-vs-fake dataset layouts.

Every loader returns a list of :class:`Sample` (label 1 = fake, 0 = real; split one of
``train``, ``val``, ``test`` or, for the starter kit, ``test_ood``), sorted by split and path.
Folder names are matched case-insensitively. :func:`load_dataset` detects the layout; a wrong
layout raises :class:`DatasetLayoutError` naming what was expected and what was found.

Layouts:

* starter kit: ``DIR/manifest.csv`` written by ``python -m training.data build-starter-kit``
* CIFAKE: ``train/{REAL,FAKE}``, ``test/{REAL,FAKE}``; ``val`` is carved from train by seed
* Kaggle "deepfake and real images": ``{Train,Validation,Test}/{Real,Fake}``
* FaceForensics++ frames: ``Original`` (real) and ``Deepfakes``, ``Face2Face``,
  ``FaceShifter``, ``FaceSwap``, ``NeuralTextures`` (fake); split 70/15/15 by seed, by video
  when the file or folder names carry FF++ video ids (``000`` / ``000_003``), else by file
* CSV: columns ``path,label[,split]`` (``label`` 1/0/fake/real; paths relative to the CSV)
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from detector import IMAGE_EXTENSIONS

IMAGE_EXTS = {f".{ext}" for ext in IMAGE_EXTENSIONS}
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm"}
SPLITS = ("train", "val", "test", "test_ood")
FF_FAKE_METHODS = ("Deepfakes", "Face2Face", "FaceShifter", "FaceSwap", "NeuralTextures")
FF_REAL = "Original"
KIT_REQUIRED_COLUMNS = ("file", "label", "label_id", "split")


class DatasetLayoutError(ValueError):
    """A folder or file does not have the layout a loader expects."""


@dataclass(frozen=True)
class Sample:
    """One image: ``label`` 1 = fake (generated), 0 = real."""

    path: Path
    label: int
    split: str
    source: str
    generator: str | None = None
    content: str = ""
    origin: str = ""
    family: str = ""
    control: str = ""


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _sorted(samples: Iterable[Sample]) -> list[Sample]:
    order = {s: i for i, s in enumerate(SPLITS)}
    return sorted(samples, key=lambda s: (order.get(s.split, 99), str(s.path)))


def _listing(d: Path, limit: int = 12) -> str:
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in d.iterdir())
    except OSError as e:
        return f"<cannot list: {e}>"
    if not names:
        return "an empty folder"
    more = f" ... (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _child(d: Path, name: str) -> Path | None:
    """Sub-folder of ``d`` named ``name``, case-insensitively."""
    if not d.is_dir():
        return None
    exact = d / name
    if exact.is_dir():
        return exact
    for p in sorted(d.iterdir()):
        if p.is_dir() and p.name.lower() == name.lower():
            return p
    return None


def _images(d: Path) -> list[Path]:
    return sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def _unit(seed: int, *keys: str) -> float:
    """A stable pseudo-random number in [0, 1) from a seed and keys."""
    h = hashlib.sha256(repr((int(seed), *keys)).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def _split3(keys: list[str], seed: int, fractions=(0.70, 0.15, 0.15)) -> dict[str, str]:
    """Assign keys to train/val/test: seeded shuffle, then cut at the fractions."""
    order = sorted(set(keys), key=lambda k: (_unit(seed, "split", k), k))
    n = len(order)
    n_val = round(n * fractions[1])
    n_test = round(n * fractions[2])
    if n >= 3:
        n_val, n_test = max(1, n_val), max(1, n_test)
    n_train = max(0, n - n_val - n_test)
    out = {}
    for i, k in enumerate(order):
        out[k] = "train" if i < n_train else ("val" if i < n_train + n_val else "test")
    return out


def _root_with(d: Path, test) -> Path:
    """``d`` itself, or its only sub-folder (archives often unpack into one folder)."""
    if test(d):
        return d
    subs = [p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if len(subs) == 1 and test(subs[0]):
        return subs[0]
    return d


def _need_dir(d: Path, what: str) -> Path:
    d = Path(d)
    if not d.exists():
        raise DatasetLayoutError(f"{what}: {d} does not exist")
    if not d.is_dir():
        raise DatasetLayoutError(f"{what}: expected a folder, found a file {d}")
    return d


def parse_label(value: str) -> int:
    """1/0/fake/real (any case, also true/false, yes/no) -> 1 (fake) or 0 (real)."""
    v = str(value).strip().lower()
    if v in ("1", "fake", "true", "yes", "1.0", "generated", "synthetic", "ai"):
        return 1
    if v in ("0", "real", "false", "no", "0.0", "authentic"):
        return 0
    raise ValueError(f"label {value!r} is not one of 1/0/fake/real")


def _norm_split(v: str) -> str:
    s = v.strip().lower()
    return {
        "validation": "val",
        "valid": "val",
        "dev": "val",
        "training": "train",
        "testing": "test",
    }.get(s, s)


# --------------------------------------------------------------------------------------------
# loaders
# --------------------------------------------------------------------------------------------


def load_starter_kit(directory: Path | str, check_files: bool = True) -> list[Sample]:
    """A kit built by ``python -m training.data build-starter-kit`` (reads manifest.csv)."""
    d = _need_dir(Path(directory), "starter kit")
    man = d / "manifest.csv"
    if not man.exists():
        raise DatasetLayoutError(
            f"starter kit: expected {man} (written by build-starter-kit); found {_listing(d)}"
        )
    with man.open(newline="") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        missing = [c for c in KIT_REQUIRED_COLUMNS if c not in cols]
        if missing:
            raise DatasetLayoutError(
                f"starter kit: {man} lacks columns {missing}; expected at least "
                f"{list(KIT_REQUIRED_COLUMNS)}, found {cols}"
            )
        out = []
        for r in reader:
            label = int(r["label_id"])
            if label != parse_label(r["label"]):
                raise DatasetLayoutError(f"starter kit: label/label_id disagree for {r['file']}")
            group = r.get("source_group") or r.get("source_package") or "unknown"
            out.append(
                Sample(
                    path=d / r["file"],
                    label=label,
                    split=r["split"],
                    source=f"starter-kit/{group}",
                    generator=r.get("generator") or None,
                    content=r.get("content") or "photo",
                    origin=r.get("origin") or "package",
                    family=r.get("family") or "",
                    control=r.get("control") or "",
                )
            )
    if check_files:
        missing_files = [s.path for s in out if not s.path.exists()]
        if missing_files:
            raise DatasetLayoutError(
                f"starter kit: {len(missing_files)} files of the manifest are missing, "
                f"e.g. {missing_files[0]}"
            )
    return _sorted(out)


def _is_cifake(d: Path) -> bool:
    return all(
        _child(_child(d, s) or d / "_", c) for s in ("train", "test") for c in ("REAL", "FAKE")
    )


def load_cifake(directory: Path | str, seed: int = 0, val_fraction: float = 0.1) -> list[Sample]:
    """CIFAKE: ``train|test/REAL|FAKE``. ``val`` is carved from train (per class, by seed)."""
    d = _need_dir(Path(directory), "CIFAKE")
    d = _root_with(d, _is_cifake)
    if not _is_cifake(d):
        raise DatasetLayoutError(
            f"CIFAKE: expected folders train/REAL, train/FAKE, test/REAL, test/FAKE in {d}; "
            f"found {_listing(d)}"
        )
    out = []
    for split in ("train", "test"):
        for cls, label in (("REAL", 0), ("FAKE", 1)):
            files = _images(_child(_child(d, split), cls))
            if split == "train":
                order = sorted(files, key=lambda p: (_unit(seed, "cifake", p.name), p.name))
                n_val = round(len(order) * val_fraction)
                val = set(order[:n_val])
            for p in files:
                s = "val" if split == "train" and p in val else split
                gen = "stable-diffusion-1.4" if label else None
                out.append(Sample(p, label, s, "cifake", gen))
    return _sorted(out)


_KAGGLE_SPLITS = {"train": "Train", "val": "Validation", "test": "Test"}


def _is_kaggle(d: Path) -> bool:
    return all(
        _child(_child(d, s) or d / "_", c)
        for s in _KAGGLE_SPLITS.values()
        for c in ("Real", "Fake")
    )


def load_kaggle_deepfake(directory: Path | str) -> list[Sample]:
    """Kaggle "deepfake and real images": ``Train|Validation|Test/Real|Fake``."""
    d = _need_dir(Path(directory), "Kaggle deepfake")
    d = _root_with(d, _is_kaggle)
    if not _is_kaggle(d):
        raise DatasetLayoutError(
            "Kaggle deepfake: expected folders Train, Validation, Test each holding Real and "
            f"Fake in {d}; found {_listing(d)}"
        )
    out = []
    for split, folder in _KAGGLE_SPLITS.items():
        for cls, label in (("Real", 0), ("Fake", 1)):
            for p in _images(_child(_child(d, folder), cls)):
                out.append(Sample(p, label, split, "kaggle-deepfake", None))
    return _sorted(out)


_FF_VIDEO = re.compile(r"^(\d{3,4})(?:_(\d{3,4}))?(?:$|[_.\-])")


def _ff_folders(d: Path) -> dict[str, Path]:
    """Method name -> folder, looked for in ``d`` and one level below (case-insensitive)."""
    found: dict[str, Path] = {}
    wanted = {m.lower(): m for m in (FF_REAL, *FF_FAKE_METHODS)}
    wanted["original_sequences"] = FF_REAL
    for base in [d, *sorted(p for p in d.iterdir() if p.is_dir())]:
        for p in sorted(base.iterdir()) if base.is_dir() else []:
            m = wanted.get(p.name.lower())
            if p.is_dir() and m and m not in found:
                found[m] = p
    return found


def _ff_video_ids(rel: Path) -> tuple[str, ...] | None:
    """FF++ video ids in a path below a method folder: ``000_003/0001.png`` -> (000, 003)."""
    for part in rel.parts:
        m = _FF_VIDEO.match(part)
        if m:
            return tuple(x for x in m.groups() if x)
    return None


def load_faceforensics(directory: Path | str, seed: int = 0) -> list[Sample]:
    """FaceForensics++ frames: ``Original`` real, the five manipulation folders fake.

    Split 70/15/15 by seed. When names carry FF++ video ids, all frames of a video -- and of
    the videos paired with it (``000_003`` joins 000 and 003) -- share one split; otherwise
    each file is split on its own.
    """
    d = _need_dir(Path(directory), "FaceForensics++")
    folders = _ff_folders(d)
    if FF_REAL not in folders or not any(m in folders for m in FF_FAKE_METHODS):
        raise DatasetLayoutError(
            f"FaceForensics++: expected a folder {FF_REAL} and at least one of "
            f"{', '.join(FF_FAKE_METHODS)} in {d}; found {_listing(d)}"
        )
    items: list[tuple[Path, int, str, tuple[str, ...] | None]] = []
    videos_only = True
    for method, folder in folders.items():
        files = _images(folder)
        if files:
            videos_only = False
        elif any(p.suffix.lower() in VIDEO_EXTS for p in folder.rglob("*")):
            continue
        label = 0 if method == FF_REAL else 1
        for p in files:
            items.append((p, label, method, _ff_video_ids(p.relative_to(folder))))
    if not items:
        hint = " (only videos: extract frames first)" if videos_only else ""
        raise DatasetLayoutError(f"FaceForensics++: no images found under {d}{hint}")
    by_video = all(v is not None for *_, v in items)
    if by_video:
        parent: dict[str, str] = {}

        def find(x: str) -> str:
            parent.setdefault(x, x)
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for *_, vids in items:
            root = find(vids[0])
            for v in vids[1:]:
                parent[find(v)] = root
        # name each group by its smallest video id
        smallest: dict[str, str] = {}
        for v in parent:
            r = find(v)
            smallest[r] = min(smallest.get(r, v), v)
        keys = [smallest[find(vids[0])] for *_, vids in items]
    else:
        keys = [f"{m}/{p.relative_to(folders[m]).as_posix()}" for p, _, m, _ in items]
    split_of = _split3(keys, seed)
    out = []
    for (p, label, method, _), k in zip(items, keys, strict=False):
        gen = None if label == 0 else method
        out.append(Sample(p, label, split_of[k], f"faceforensics/{method}", gen))
    return _sorted(out)


def load_csv(path: Path | str, default_split: str = "train") -> list[Sample]:
    """A CSV with columns ``path,label[,split]`` (optional ``source``, ``generator``).

    Relative paths are taken from the CSV's folder; ``label`` accepts 1/0/fake/real.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetLayoutError(f"CSV: {path} is not a file")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        cols = [c.strip().lower() for c in (reader.fieldnames or [])]
        if "path" not in cols or "label" not in cols:
            raise DatasetLayoutError(
                f"CSV: expected columns path,label[,split] in {path}; found {cols or 'no header'}"
            )
        out = []
        for i, raw in enumerate(reader, start=2):
            r = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k}
            try:
                label = parse_label(r["label"])
            except ValueError as e:
                raise DatasetLayoutError(f"CSV {path} line {i}: {e}") from None
            p = Path(r["path"])
            if not p.is_absolute():
                p = path.parent / p
            split = _norm_split(r.get("split") or default_split)
            out.append(
                Sample(p, label, split, r.get("source") or "csv", r.get("generator") or None)
            )
    return _sorted(out)


def _csv_has_columns(p: Path, *cols: str) -> bool:
    try:
        with p.open(newline="") as f:
            head = next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError):
        return False
    names = {h.strip().lower() for h in head}
    return all(c in names for c in cols)


def detect_layout(path: Path | str) -> str:
    """Name of the layout at ``path``: starter_kit, cifake, kaggle_deepfake, faceforensics,
    csv. Raises DatasetLayoutError when none fits."""
    p = Path(path)
    if not p.exists():
        raise DatasetLayoutError(f"{p} does not exist")
    if p.is_file():
        if p.suffix.lower() == ".csv":
            if _csv_has_columns(p, *KIT_REQUIRED_COLUMNS):
                return "starter_kit"
            if _csv_has_columns(p, "path", "label"):
                return "csv"
        raise DatasetLayoutError(
            f"{p}: expected a CSV with columns path,label[,split] or a kit manifest.csv"
        )
    if (p / "manifest.csv").exists() and _csv_has_columns(p / "manifest.csv", "file", "label"):
        return "starter_kit"
    # Kaggle first: its Train/Test/Real/Fake also fit CIFAKE's case-insensitive names
    if _is_kaggle(_root_with(p, _is_kaggle)):
        return "kaggle_deepfake"
    if _is_cifake(_root_with(p, _is_cifake)):
        return "cifake"
    ff = _ff_folders(p)
    if FF_REAL in ff and any(m in ff for m in FF_FAKE_METHODS):
        return "faceforensics"
    csvs = [c for c in sorted(p.glob("*.csv")) if _csv_has_columns(c, "path", "label")]
    if len(csvs) == 1:
        return "csv"
    raise DatasetLayoutError(
        f"no known dataset layout in {p}. Expected one of: manifest.csv (starter kit); "
        "train|test/REAL|FAKE (CIFAKE); Train|Validation|Test/Real|Fake (Kaggle deepfake); "
        f"Original + {'/'.join(FF_FAKE_METHODS)} (FaceForensics++); "
        f"one CSV with columns path,label[,split]. Found: {_listing(p)}"
    )


def load_dataset(path: Path | str, seed: int = 0) -> list[Sample]:
    """Load any supported layout (see :func:`detect_layout`)."""
    p = Path(path)
    kind = detect_layout(p)
    if kind == "starter_kit":
        return load_starter_kit(p.parent if p.is_file() else p)
    if kind == "cifake":
        return load_cifake(p, seed=seed)
    if kind == "kaggle_deepfake":
        return load_kaggle_deepfake(p)
    if kind == "faceforensics":
        return load_faceforensics(p, seed=seed)
    if p.is_file():
        return load_csv(p)
    csvs = [c for c in sorted(p.glob("*.csv")) if _csv_has_columns(c, "path", "label")]
    return load_csv(csvs[0])
