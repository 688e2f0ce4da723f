"""Build the open starter kit: real photo tiles and aligned generated fakes.

Layout of a kit directory::

    images/<split>/<real|fake>/<id>.png   RGB PNG, tile x tile, ids = sha256 of the pixels
    manifest.csv, manifest.json           one row per image (see MANIFEST_COLUMNS)
    summary.json                          class balance per split and per generator, settings
    ATTRIBUTION.md                        authors and licences of the CC-BY / CC-BY-SA photos

Steps: fetch the sources (cached), list the photos of the allowed sources with their licences,
drop non-photographs, resize every photo at ``scales`` random sizes and cut non-overlapping
non-flat tiles, split by photo (train/val/test 70/15/15 by tile count, all MATE photos in
``test_ood``), then make exactly one fake per real tile with one generator (cycle: each
generator family a quarter, each ESRGAN scale an eighth). A fake inherits its parent's split.

Both classes are written by the same function (:func:`encode_png`), so they share encoding,
size and colour mode. The build is deterministic for a seed and resumable: finished images are
listed in ``.work/partial.jsonl`` (and in the final manifest) and skipped on a rerun when the
file is there with the recorded sha256.
"""

from __future__ import annotations

import io
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from .kit_files import (
    Progress,
    _remove_orphans,
    _write_atomic,
    format_summary,
    sha256_bytes,
    summarize,
    write_attribution,
    write_manifest,
)

from . import tiles as T
from .sources import PhotoSource

KIT_FORMAT = 1

GeneratorFn = Callable[[str, np.ndarray, dict], np.ndarray]


@dataclass
class KitConfig:
    tile: int = 256
    seed: int = 0
    limit: int | None = None
    scales: int = 3
    short_range: tuple[float, float] = (2.0, 7.0)
    min_downscale: float = 1.25
    max_tiles_per_photo: int = 64
    ood_groups: tuple[str, ...] = ("mate",)
    generators: tuple[str, ...] = T.GENERATOR_CYCLE

    def key(self) -> dict[str, Any]:
        d = asdict(self)
        d["short_range"] = list(self.short_range)
        d["ood_groups"] = list(self.ood_groups)
        d["generators"] = list(self.generators)
        d["format"] = KIT_FORMAT
        return d


def encode_png(arr: np.ndarray) -> bytes:
    """The one encoder for both classes: RGB uint8 PNG, no metadata, zlib level 6."""
    a = np.asarray(arr)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected HxWx3 uint8, got {a.shape} {a.dtype}")
    buf = io.BytesIO()
    Image.fromarray(a, "RGB").save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# scanning photos into tiles
# --------------------------------------------------------------------------------------------


@dataclass
class TileSpec:
    tile_id: str
    photo_id: str
    scale_index: int
    width: int
    height: int
    factor: float
    resample: str
    y: int
    x: int


@dataclass
class ScanResult:
    photo_id: str
    ok: bool
    reason: str
    tiles: list[TileSpec] = field(default_factory=list)
    flat_skipped: int = 0


def decode_photo(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im = ImageOps.exif_transpose(im)
    return im.convert("RGB")


def scan_photo(
    photo_id: str, data: bytes, cfg: KitConfig, tile_dir: Path | None = None
) -> ScanResult:
    """Check, resize and tile one photo; with ``tile_dir``, write each tile's PNG there."""
    try:
        im = decode_photo(data)
    except Exception as e:
        return ScanResult(photo_id, False, f"cannot decode: {e}")
    chk = T.photo_check(im)
    if not chk.ok:
        return ScanResult(photo_id, False, chk.reason)
    rng = T.rng_for(cfg.seed, "photo", photo_id)
    found: list[tuple[TileSpec, np.ndarray]] = []
    seen_sizes = set()
    flat = 0
    for k in range(cfg.scales):
        plan = T.plan_scale(im.width, im.height, cfg.tile, rng, cfg.short_range, cfg.min_downscale)
        if plan is None:
            return ScanResult(photo_id, False, f"too small ({im.width}x{im.height})")
        if (plan.width, plan.height) in seen_sizes:
            continue
        seen_sizes.add((plan.width, plan.height))
        arr = T.resize(im, plan)
        kept, nflat = T.cut_tiles(arr, cfg.tile, rng)
        flat += nflat
        for y, x, t in kept:
            spec = TileSpec(
                T.pixel_id(t),
                photo_id,
                k,
                plan.width,
                plan.height,
                plan.factor,
                plan.resample,
                y,
                x,
            )
            found.append((spec, t))
    if cfg.max_tiles_per_photo and len(found) > cfg.max_tiles_per_photo:
        idx = sorted(rng.choice(len(found), cfg.max_tiles_per_photo, replace=False).tolist())
        found = [found[i] for i in idx]
    res = ScanResult(photo_id, bool(found), "" if found else "only flat tiles", [], flat)
    for spec, t in found:
        res.tiles.append(spec)
        if tile_dir is not None:
            p = tile_dir / f"{spec.tile_id}.png"
            if not p.exists():
                _write_atomic(p, encode_png(t))
    return res


def _scan_job(args):
    photo_id, data, cfg, tile_dir = args
    return scan_photo(photo_id, data, cfg, tile_dir)


# --------------------------------------------------------------------------------------------
# fakes
# --------------------------------------------------------------------------------------------

_BANK = None


def _init_worker(model_paths, threads: int) -> None:
    global _BANK
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from .generators import GeneratorBank

    _BANK = GeneratorBank(model_paths, threads=threads)


@dataclass
class FakeJob:
    parent_file: str  # relative path of the real tile in the kit
    parent_id: str
    split: str
    generator: str
    params: dict


def make_fake(job: FakeJob, out: Path, gen: GeneratorFn) -> dict:
    """Generate, encode and write one fake; returns its partial-manifest record."""
    real = np.asarray(Image.open(out / job.parent_file).convert("RGB"))
    fake = np.asarray(gen(job.generator, real, job.params), dtype=np.uint8)
    if fake.shape != real.shape:
        raise RuntimeError(f"{job.generator}: fake shape {fake.shape} != {real.shape}")
    data = encode_png(fake)
    fid = T.pixel_id(fake)
    rel = f"images/{job.split}/fake/{fid}.png"
    _write_atomic(out / rel, data)
    return {
        "kind": "fake",
        "file": rel,
        "sha256": sha256_bytes(data),
        "parent_id": job.parent_id,
        "generator": job.generator,
        "gen_params": json.dumps(job.params, sort_keys=True),
    }


def _fake_job(args):
    job, out = args
    return make_fake(job, out, _BANK)


# --------------------------------------------------------------------------------------------
# the build
# --------------------------------------------------------------------------------------------


def select_limited(photos: list[PhotoSource], n: int, seed: int) -> list[PhotoSource]:
    """Candidate order for ``--limit``: groups taken in turn, photos shuffled by seed."""
    groups: dict[str, list[PhotoSource]] = defaultdict(list)
    for p in photos:
        groups[p.group].append(p)
    for g in groups.values():
        g.sort(key=lambda p: (T.rng_for(seed, "limit", p.photo_id).random(), p.photo_id))
    order = []
    names = sorted(groups)
    i = 0
    while any(groups.values()):
        g = groups[names[i % len(names)]]
        if g:
            order.append(g.pop(0))
        i += 1
    return order


def _tqdm(iterable=None, **kw):
    from tqdm import tqdm

    kw.setdefault("file", sys.stderr)
    kw.setdefault("dynamic_ncols", True)
    kw.setdefault("mininterval", 1.0)
    return tqdm(iterable, **kw)


def _check_config(out: Path, cfg: KitConfig, overwrite: bool) -> None:
    stamp = out / ".work" / "config.json"
    old = None
    if stamp.exists():
        old = json.loads(stamp.read_text())
    elif (out / "summary.json").exists():
        old = json.loads((out / "summary.json").read_text()).get("config")
    if old is not None and old != cfg.key() and not overwrite:
        raise SystemExit(
            f"{out} holds a kit built with other settings ({old}); use another --out "
            "or pass --overwrite to replace it"
        )
    if overwrite and old is not None and old != cfg.key():
        for name in ("images", ".work"):
            shutil.rmtree(out / name, ignore_errors=True)
        for name in ("manifest.csv", "manifest.json", "summary.json", "ATTRIBUTION.md"):
            (out / name).unlink(missing_ok=True)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(cfg.key(), sort_keys=True))


def build_starter_kit(
    out: Path | str,
    cfg: KitConfig | None = None,
    cache: Path | str | None = None,
    workers: int = 2,
    photos: list[PhotoSource] | None = None,
    generator_fn: GeneratorFn | None = None,
    overwrite: bool = False,
    quiet: bool = False,
) -> dict:
    """Build (or resume) a kit in ``out``; returns the summary dict.

    ``photos`` and ``generator_fn`` replace the fetched sources and the real generators (tests
    use generated photos and a stub); with ``generator_fn`` everything runs in this process.
    """
    t_start = time.time()
    cfg = cfg or KitConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_config(out, cfg, overwrite)
    work = out / ".work"
    tile_dir = work / "tiles"
    tile_dir.mkdir(parents=True, exist_ok=True)
    log = (lambda s: None) if quiet else (lambda s: print(s, file=sys.stderr, flush=True))

    deb_versions: dict[str, str] = {}
    model_paths = None
    if photos is None or generator_fn is None:
        from .sources import ensure_sources, list_photos
        from .sources import model_paths as _mp

        src = ensure_sources(cache, progress=not quiet)
        deb_versions = src.deb_versions
        if photos is None:
            photos = list_photos(src)
        model_paths = _mp(src)
    by_id = {p.photo_id: p for p in photos}
    workers = max(1, int(workers))
    if generator_fn is not None:
        workers = 1
    threads = max(1, (os.cpu_count() or 2) // workers)

    # ---- 1. scan photos -> tiles (cached per photo in .work/scan) ----
    scan_dir = work / "scan"
    scan_dir.mkdir(parents=True, exist_ok=True)

    def cached_scan(pid: str) -> ScanResult | None:
        f = scan_dir / f"{pid}.json"
        if not f.exists():
            return None
        d = json.loads(f.read_text())
        res = ScanResult(
            d["photo_id"],
            d["ok"],
            d["reason"],
            [TileSpec(**t) for t in d["tiles"]],
            d["flat_skipped"],
        )

        # usable when every tile is staged or already in the kit (a missing one is re-cut later)
        def have(tid: str) -> bool:
            return (tile_dir / f"{tid}.png").exists() or any(
                (out / "images" / s / "real" / f"{tid}.png").exists() for s in T.SPLITS
            )

        return res if all(have(t.tile_id) for t in res.tiles) else None

    def store_scan(res: ScanResult) -> None:
        _write_atomic(scan_dir / f"{res.photo_id}.json", json.dumps(asdict(res)).encode())

    scans: dict[str, ScanResult] = {}
    if cfg.limit:
        order = select_limited(photos, len(photos), cfg.seed)
        bar = _tqdm(total=cfg.limit, desc="photos", unit="photo")
        for p in order:
            if sum(1 for r in scans.values() if r.ok) >= cfg.limit:
                break
            res = cached_scan(p.photo_id) or scan_photo(p.photo_id, p.data, cfg, tile_dir)
            store_scan(res)
            scans[p.photo_id] = res
            if res.ok:
                bar.update(1)
        bar.close()
    else:
        todo = []
        for p in photos:
            res = cached_scan(p.photo_id)
            if res is not None:
                scans[p.photo_id] = res
            else:
                todo.append((p.photo_id, p.data, cfg, tile_dir))
        bar = _tqdm(total=len(photos), initial=len(scans), desc="photos", unit="photo")
        if workers > 1 and len(todo) > 1:
            ctx = mp.get_context("spawn")
            with ctx.Pool(workers) as pool:
                for res in pool.imap_unordered(_scan_job, todo):
                    store_scan(res)
                    scans[res.photo_id] = res
                    bar.update(1)
        else:
            for args in todo:
                res = _scan_job(args)
                store_scan(res)
                scans[res.photo_id] = res
                bar.update(1)
        bar.close()

    # unique tiles (a tile id seen twice is kept once, with its first photo)
    tiles: dict[str, TileSpec] = {}
    for pid in sorted(scans):
        for t in scans[pid].tiles:
            tiles.setdefault(t.tile_id, t)
    counts = Counter(t.photo_id for t in tiles.values())
    groups = {pid: by_id[pid].group for pid in counts}
    split_of_photo = T.assign_splits(dict(counts), groups, cfg.seed, ood_groups=cfg.ood_groups)
    tiles_by_split: dict[str, list[str]] = defaultdict(list)
    for tid, t in tiles.items():
        tiles_by_split[split_of_photo[t.photo_id]].append(tid)
    gen_of_tile = T.assign_generators(tiles_by_split, cfg.seed, cfg.generators)

    # ---- 2. reals ----
    progress = Progress(out)
    real_rec: dict[str, dict] = {}
    for tid in sorted(tiles):
        t = tiles[tid]
        split = split_of_photo[t.photo_id]
        rel = f"images/{split}/real/{tid}.png"
        rec = progress.get(("real", tid, rel))
        if rec is None:
            src_png = tile_dir / f"{tid}.png"
            if not src_png.exists():  # scan cache lost its tile: rescan that photo
                p = by_id[t.photo_id]
                scan_photo(p.photo_id, p.data, cfg, tile_dir)
            data = src_png.read_bytes()
            _write_atomic(out / rel, data)
            rec = {"kind": "real", "file": rel, "sha256": sha256_bytes(data), "tile_id": tid}
            progress.add(rec)
        real_rec[tid] = rec

    # ---- 3. fakes ----
    jobs: list[FakeJob] = []
    fake_rec: dict[str, dict] = {}
    for tid in sorted(tiles):
        gen = gen_of_tile[tid]
        params = T.generator_params(gen, tid, cfg.seed)
        key = ("fake", tid, gen, json.dumps(params, sort_keys=True))
        rec = progress.get(key)
        if rec is not None:
            fake_rec[tid] = rec
            continue
        split = split_of_photo[tiles[tid].photo_id]
        jobs.append(FakeJob(real_rec[tid]["file"], tid, split, gen, params))
    # spread the slow generator over the run
    jobs.sort(key=lambda j: (T.rng_for(cfg.seed, "order", j.parent_id).random(), j.parent_id))
    bar = _tqdm(total=len(tiles), initial=len(tiles) - len(jobs), desc="fakes", unit="tile")
    if jobs:
        if generator_fn is not None:
            for j in jobs:
                rec = make_fake(j, out, generator_fn)
                progress.add(rec)
                fake_rec[j.parent_id] = rec
                bar.update(1)
        else:
            ctx = mp.get_context("spawn")
            with ctx.Pool(
                workers, initializer=_init_worker, initargs=(model_paths, threads)
            ) as pool:
                for rec in pool.imap_unordered(_fake_job, [(j, out) for j in jobs], chunksize=2):
                    progress.add(rec)
                    fake_rec[rec["parent_id"]] = rec
                    bar.update(1)
    bar.close()

    # ---- 4. manifest, summary, attribution ----
    rows = []
    for tid in sorted(tiles):
        t = tiles[tid]
        p = by_id[t.photo_id]
        split = split_of_photo[t.photo_id]
        common = {
            "split": split,
            "source_package": p.source_package,
            "original_file": p.original_file,
            "licence": p.licence,
            "author": p.author,
            "photo_id": p.photo_id,
            "source_group": p.group,
            "source_url": p.source_url,
            "licence_source": p.licence_source,
            "scale": round(t.factor, 4),
            "resample": t.resample,
            "tile_y": t.y,
            "tile_x": t.x,
        }
        rr = real_rec[tid]
        rows.append(
            {
                **common,
                "file": rr["file"],
                "label": "real",
                "label_id": 0,
                "generator": "",
                "parent": "",
                "sha256": rr["sha256"],
                "gen_params": "",
            }
        )
        fr = fake_rec[tid]
        rows.append(
            {
                **common,
                "file": fr["file"],
                "label": "fake",
                "label_id": 1,
                "generator": fr["generator"],
                "parent": rr["file"],
                "sha256": fr["sha256"],
                "gen_params": fr["gen_params"],
            }
        )
    rows.sort(key=lambda r: (T.SPLITS.index(r["split"]), r["label"] != "real", r["file"]))
    write_manifest(out, rows)
    _remove_orphans(out, {r["file"] for r in rows})
    summary = summarize(rows)
    dropped = {by_id[pid].original_file: r.reason for pid, r in sorted(scans.items()) if not r.ok}
    summary.update(
        {
            "config": cfg.key(),
            "deb_versions": deb_versions,
            "photos_scanned": len(scans),
            "photos_dropped": dropped,
            "flat_tiles_skipped": sum(r.flat_skipped for r in scans.values()),
            "photos_per_split": dict(sorted(Counter(split_of_photo.values()).items())),
            "build_seconds": round(time.time() - t_start, 1),
        }
    )
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    write_attribution(out, rows)
    shutil.rmtree(work / "tiles", ignore_errors=True)
    (work / "partial.jsonl").unlink(missing_ok=True)
    if not quiet:
        print(format_summary(summary))
    log(f"kit written to {out} in {summary['build_seconds']} s")
    return summary
