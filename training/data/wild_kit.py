"""Add the wild pool and the negative controls to a built kit.

The package part of the kit (real tiles and their upscaler / style-transfer fakes, see
``kit.py``) only knows one kind of fake. This step adds, in the same layout and manifest:

* ``origin=wild``: every file of the wild pool (real generators' outputs and real photos), split
  by SOURCE REPOSITORY (``wild.assign_wild_splits``), each given the same format-neutral
  treatment (``neutral.neutral_pixels``) whatever its class;
* ``origin=control``: negative controls labelled real (``neutral.make_control``): real images of
  every split (wild reals and package real tiles) enlarged, shrunk, re-encoded as JPEG or saved as
  screenshots, in the split of the image they were made from.

Every row records ``content`` (photo, portrait, art, render, text), ``family`` (the generator
family, for leave-one-family-out runs), ``origin`` and ``control``. The step is resumable: an
image already written with its recorded sha256 is kept. Package rows without these columns get
them (``content=photo``, ``origin=package``).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from . import tiles as T
from .kit import encode_png
from .kit_files import read_manifest, sha256_bytes, summarize, write_manifest
from .neutral import (
    CONTROLS,
    NeutralResult,
    NeutralSettings,
    control_kinds,
    make_control,
    neutral_pixels,
)
from .wild import WildImage, assign_wild_splits, family_of, read_wild_manifest

#: Controls made per real image of the wild pool, and per this many package real tiles.
PACKAGE_TILES_PER_CONTROL = 4

RAW_URL = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"


def _tqdm(iterable, **kw):
    try:
        from tqdm import tqdm

        return tqdm(iterable, file=sys.stderr, **kw)
    except ImportError:  # pragma: no cover - tqdm is a runtime dependency
        return iterable


def _package_defaults(row: dict) -> dict:
    row = dict(row)
    row.setdefault("origin", "")
    row["origin"] = row["origin"] or "package"
    row["content"] = row.get("content") or "photo"
    row["control"] = row.get("control") or ""
    if not row.get("family"):
        row["family"] = family_of(row["generator"]) if row.get("generator") else ""
    return row


def _write(out: Path, split: str, label: str, pixels: np.ndarray, known: dict[str, str]) -> dict:
    data = encode_png(pixels)
    digest = sha256_bytes(data)
    rel = f"images/{split}/{label}/{digest[:32]}.png"
    path = out / rel
    if known.get(rel) != digest or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return {"file": rel, "sha256": digest}


def wild_row_fields(w: WildImage, split: str) -> dict:
    """Manifest fields of a wild image (everything but the written file)."""
    return {
        "label": w.label,
        "label_id": w.label_id,
        "split": split,
        "source_package": "wild",
        "original_file": w.file,
        "licence": w.licence,
        "author": "",
        "generator": w.generator,
        "parent": "",
        "photo_id": f"wild:{w.file}",
        "source_group": w.source_repo,
        "source_url": RAW_URL.format(repo=w.source_repo, commit=w.commit, path=w.repo_path),
        "licence_source": "wild manifest",
        "content": w.content,
        "family": w.family,
        "origin": "wild",
        "control": "",
    }


def add_wild(
    out: Path | str,
    wild_dir: Path | str,
    *,
    seed: int = 0,
    rows: list[WildImage] | None = None,
    settings: NeutralSettings | None = None,
    quiet: bool = False,
    train_views: int = 1,
) -> dict:
    """Add the wild pool and the controls to the kit in ``out``; returns the new summary.

    ``train_views`` neutral views (windows, shrink factors and filters drawn anew) are written
    of each wild image of the train split; validation and test keep one view per image, so
    their figures stay comparable. The first view and the controls do not depend on it.
    """
    if train_views < 1:
        raise ValueError(f"train_views must be at least 1, got {train_views}")
    t0 = time.time()
    out, wild_dir = Path(out), Path(wild_dir)
    rows = rows if rows is not None else read_wild_manifest()
    existing = read_manifest(out)
    known = {r["file"]: r["sha256"] for r in existing}
    # the package rows only: the wild rows and the controls are made anew below
    kit_rows = [_package_defaults(r) for r in existing if r.get("origin", "") in ("", "package")]
    split_of_repo = wild_splits(rows, seed)

    added: list[dict] = []
    # (split, pixels, twice-larger pixels or None, row) of the real images
    sources: list[tuple[str, np.ndarray, np.ndarray | None, dict]] = []
    missing = []
    for w in _tqdm(rows, desc="wild", unit="img", disable=quiet):
        path = wild_dir / w.file
        if not path.is_file():
            missing.append(w.file)
            continue
        split = split_of_repo[w.source_repo]
        rng = T.rng_for(seed, "wild", w.file)
        data = path.read_bytes()
        res = neutral_pixels(data, rng, settings)
        rec = _wild_row(out, w, split, res, known)
        added.append(rec)
        if split == "train":
            added += _extra_views(out, w, data, res.pixels, seed, train_views, settings, known)
        if w.label == "real":
            sources.append((split, res.pixels, _larger(data, rng, res.pixels.shape[0]), rec))
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} files of the wild manifest are missing in {wild_dir}, e.g. "
            f"{missing[0]} (python -m training.data fetch-wild --out DIR downloads them)"
        )

    package_reals = [r for r in kit_rows if r["label"] == "real"]
    for i, r in enumerate(sorted(package_reals, key=lambda r: r["file"])):
        if i % PACKAGE_TILES_PER_CONTROL == 0:
            from PIL import Image

            with Image.open(out / r["file"]) as img:
                sources.append((r["split"], np.asarray(img.convert("RGB")), None, r))
    added += make_controls(out, sources, seed, known, quiet=quiet)

    all_rows = kit_rows + added
    all_rows.sort(key=lambda r: (T.SPLITS.index(r["split"]), r["origin"], r["label"], r["file"]))
    write_manifest(out, all_rows)
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    summary.update(summarize(all_rows))
    summary["wild"] = describe_rows(all_rows)
    summary["wild_seconds"] = round(time.time() - t0, 1)
    summary_path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def _extra_views(
    out: Path,
    w: WildImage,
    data: bytes,
    first: np.ndarray,
    seed: int,
    views: int,
    settings: NeutralSettings | None,
    known: dict[str, str],
) -> list[dict]:
    """Views 1..views-1 of a train image, each from its own random stream; a view identical to
    one already written (an image of exactly the kit's size has only one) is left out."""
    rows: list[dict] = []
    seen = {hashlib.sha256(first.tobytes()).digest()}
    for k in range(1, views):
        res = neutral_pixels(data, T.rng_for(seed, "wild", w.file, "view", str(k)), settings)
        digest = hashlib.sha256(res.pixels.tobytes()).digest()
        if digest in seen:
            continue
        seen.add(digest)
        rows.append(_wild_row(out, w, "train", res, known, gen_params=f"view={k}"))
    return rows


def _wild_row(
    out: Path,
    w: WildImage,
    split: str,
    res: NeutralResult,
    known: dict[str, str],
    gen_params: str = "",
) -> dict:
    """Write a neutral view of a wild image; its manifest row."""
    rec = {**wild_row_fields(w, split), **_write(out, split, w.label, res.pixels, known)}
    rec.update(scale=round(res.factor, 4), resample=res.resample, tile_y=res.window[1])
    rec.update(tile_x=res.window[0], gen_params=gen_params)
    return rec


def wild_splits(rows: list[WildImage], seed: int) -> dict[str, str]:
    """Source repository -> split; the minimum counts per split scale down for small pools."""
    smaller_class = min(sum(r.label_id for r in rows), sum(1 - r.label_id for r in rows))
    return assign_wild_splits(
        rows,
        seed=seed,
        min_images=min(60, max(1, smaller_class // 10)),
        min_repos=3 if smaller_class >= 300 else 1,
    )


def _larger(data: bytes, rng: np.random.Generator, side: int) -> np.ndarray | None:
    """The same photo, neutral at twice the side (for the shrink control), if it is that big."""
    try:
        return neutral_pixels(data, rng, NeutralSettings(side=2 * side, factor=(0.8, 1.0))).pixels
    except ValueError:
        return None


def make_controls(
    out: Path,
    sources: list[tuple[str, np.ndarray, np.ndarray | None, dict]],
    seed: int,
    known: dict[str, str],
    quiet: bool = False,
) -> list[dict]:
    """One control per source image: in each split, the kind made least so far among those the
    image allows (the shrink needs a twice larger version), ties in `CONTROLS` order."""
    made: Counter[tuple[str, str]] = Counter()
    added = []
    for split, pixels, larger, parent in _tqdm(sources, desc="controls", unit="img", disable=quiet):
        kinds = control_kinds(larger is not None)
        kind = min(kinds, key=lambda k: (made[(split, k)], (CONTROLS.index(k) + seed) % len(CONTROLS)))
        made[(split, kind)] += 1
        rng = T.rng_for(seed, "control", kind, parent["file"])
        arr, params = make_control(pixels, kind, rng, larger)
        rec = _write(out, split, "real", arr, known)
        rec.update(
            {
                "label": "real",
                "label_id": 0,
                "split": split,
                "source_package": parent["source_package"],
                "original_file": parent["original_file"],
                "licence": parent["licence"],
                "author": parent.get("author", ""),
                "generator": "",
                "parent": parent["file"],
                "photo_id": parent["photo_id"],
                "source_group": parent["source_group"],
                "source_url": parent.get("source_url", ""),
                "licence_source": parent.get("licence_source", ""),
                "scale": "",
                "resample": "",
                "tile_y": "",
                "tile_x": "",
                "gen_params": params,
                "content": parent.get("content") or "photo",
                "family": "",
                "origin": "control",
                "control": kind,
            }
        )
        added.append(rec)
    return added


def describe_rows(rows: list[dict]) -> dict:
    """Counts per (split, origin, label) and per (split, content, label) for the summary."""
    by_origin = Counter((r["split"], r["origin"], r["label"]) for r in rows)
    by_content = Counter(
        (r["split"], r["content"], r["label"]) for r in rows if r["origin"] == "wild"
    )
    controls = Counter((r["split"], r["control"]) for r in rows if r["origin"] == "control")
    return {
        "per_origin": {"/".join(k): v for k, v in sorted(by_origin.items())},
        "wild_per_content": {"/".join(k): v for k, v in sorted(by_content.items())},
        "controls": {"/".join(k): v for k, v in sorted(controls.items())},
    }
