"""Pure logic of the starter kit: photo filter, downscaling, tiling, splits, generator mix.

Nothing here touches the network or the generators, so it is unit-tested on generated images.

Photo filter (:func:`photo_check`) -- a source image is dropped as clip art / not a photograph
when, on a thumbnail of at most 512 px:

* one exact colour covers more than 25 % of the pixels (cut-outs on a flat background, clip art),
* fewer than 3000 distinct colours are used (drawings, posterised graphics), or
* more than 70 % of the pixels have no local gradient (``|dx|+|dy|`` summed over RGB <= 3), or
* the 90th percentile of the absolute Laplacian of the grey image is below 3 (smooth synthetic
  gradients: abstract wallpapers have no sensor noise or texture anywhere).

Flat tiles (:func:`is_flat`) -- a tile is skipped when the standard deviation of its grey
level is below 5 or its mean absolute gradient is below 0.8 (grey levels 0-255): clear sky,
out-of-focus background and white studio backdrops carry no generator traces to learn from.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

RESAMPLERS = {
    "lanczos": Image.Resampling.LANCZOS,
    "bicubic": Image.Resampling.BICUBIC,
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
}

SPLIT_FRACTIONS = {"train": 0.70, "val": 0.15, "test": 0.15}
OOD_SPLIT = "test_ood"
SPLITS = ("train", "val", "test", OOD_SPLIT)

# one cycle of the generator mix: each family 1/4, each ESRGAN scale 1/8
GENERATOR_CYCLE = (
    "realesrgan-x4plus",
    "esrgan-slim-x2",
    "esrgan-medium-x4",
    "style-multistyle26",
    "realesrgan-x4plus",
    "esrgan-slim-x4",
    "esrgan-medium-x2",
    "style-multistyle26",
)


def rng_for(seed: int, *keys: str | int) -> np.random.Generator:
    """A generator seeded by ``seed`` and string/int keys (stable across runs and machines)."""
    h = hashlib.sha256(repr((int(seed), *tuple(keys))).encode()).digest()
    return np.random.default_rng(np.frombuffer(h[:16], dtype=np.uint32).tolist())


def pixel_id(arr: np.ndarray) -> str:
    """Content id of an image: sha256 over shape and pixels, 16 hex digits."""
    a = np.ascontiguousarray(arr)
    h = hashlib.sha256(repr(a.shape).encode())
    h.update(a.tobytes())
    return h.hexdigest()[:16]


def _gray(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float32)
    if a.ndim == 2:
        return a
    return a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114


@dataclass(frozen=True)
class PhotoCheck:
    ok: bool
    reason: str
    top_colour: float
    unique_colours: int
    flat_fraction: float
    laplacian_p90: float


def photo_check(img: Image.Image) -> PhotoCheck:
    """Decide whether an image is a photograph (see module doc for the rule)."""
    im = img.convert("RGB")
    if max(im.size) > 512:
        im = im.copy()
        im.thumbnail((512, 512), Image.Resampling.BOX)
    a = np.asarray(im).astype(np.int32)
    q = (a[..., 0] << 16) | (a[..., 1] << 8) | a[..., 2]
    _, counts = np.unique(q, return_counts=True)
    top = float(counts.max() / q.size)
    uniq = len(counts)
    g = np.abs(np.diff(a, axis=0)).sum(-1)[:, :-1] + np.abs(np.diff(a, axis=1)).sum(-1)[:-1]
    flat = float((g <= 3).mean())
    gr = _gray(a)
    lap = np.abs(4 * gr[1:-1, 1:-1] - gr[:-2, 1:-1] - gr[2:, 1:-1] - gr[1:-1, :-2] - gr[1:-1, 2:])
    p90 = float(np.percentile(lap, 90))
    reason = ""
    if top > 0.25:
        reason = f"one colour covers {top:.0%}"
    elif uniq < 3000:
        reason = f"only {uniq} colours"
    elif flat > 0.70:
        reason = f"{flat:.0%} flat pixels"
    elif p90 < 3.0:
        reason = f"smooth synthetic gradients (laplacian p90 {p90:.1f})"
    return PhotoCheck(not reason, reason, top, uniq, flat, p90)


def tile_stats(tile: np.ndarray) -> tuple[float, float]:
    """(grey std, mean absolute gradient) of a tile."""
    g = _gray(tile)
    grad = 0.5 * (np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean())
    return float(g.std()), float(grad)


def is_flat(tile: np.ndarray, min_std: float = 5.0, min_grad: float = 0.8) -> bool:
    std, grad = tile_stats(tile)
    return std < min_std or grad < min_grad


@dataclass(frozen=True)
class ScalePlan:
    """How a source photo is resized before tiling."""

    width: int
    height: int
    factor: float  # new/old (< 1 is a downscale)
    resample: str


def plan_scale(
    width: int,
    height: int,
    tile: int,
    rng: np.random.Generator,
    short_range: tuple[float, float] = (3.0, 6.0),
    min_downscale: float = 1.25,
    max_upscale: float = 1.35,
) -> ScalePlan | None:
    """Pick the size a photo is resized to before it is cut into tiles.

    The shorter side becomes ``tile * U(short_range)``, but the photo is always shrunk by at
    least ``min_downscale`` (to wash out the source's JPEG/WebP traces) when it is big enough.
    A photo too small for that is used at the smallest size that holds one tile (a slight
    upscale of at most ``max_upscale``); a smaller photo is skipped (returns None).
    """
    short = min(width, height)
    target = tile * float(rng.uniform(*short_range))
    target = min(target, short / min_downscale)
    if target < tile:
        if short * max_upscale < tile:
            return None
        target = max(tile, min(short, target))
    new_short = max(tile, round(target))
    factor = new_short / short
    new_long = max(new_short, round(max(width, height) * factor))
    w, h = (new_long, new_short) if width >= height else (new_short, new_long)
    resample = str(rng.choice(sorted(RESAMPLERS)))
    return ScalePlan(w, h, factor, resample)


def resize(img: Image.Image, plan: ScalePlan) -> np.ndarray:
    im = img.convert("RGB")
    if (im.width, im.height) != (plan.width, plan.height):
        im = im.resize((plan.width, plan.height), RESAMPLERS[plan.resample])
    return np.asarray(im)


def tile_grid(
    height: int, width: int, tile: int, rng: np.random.Generator
) -> list[tuple[int, int]]:
    """Top-left corners of non-overlapping tiles covering the image, grid shifted at random
    within the leftover margin."""
    ny, nx = height // tile, width // tile
    if ny == 0 or nx == 0:
        return []
    oy = int(rng.integers(0, height - ny * tile + 1))
    ox = int(rng.integers(0, width - nx * tile + 1))
    return [(oy + i * tile, ox + j * tile) for i in range(ny) for j in range(nx)]


def cut_tiles(
    arr: np.ndarray,
    tile: int,
    rng: np.random.Generator,
    max_tiles: int | None = None,
    min_std: float = 5.0,
    min_grad: float = 0.8,
) -> tuple[list[tuple[int, int, np.ndarray]], int]:
    """Non-overlapping, non-flat tiles of an image: ([(y, x, tile)], number of flat skipped).

    With ``max_tiles``, a random subset (seeded by ``rng``) is kept, in grid order.
    """
    corners = tile_grid(arr.shape[0], arr.shape[1], tile, rng)
    kept, flat = [], 0
    for y, x in corners:
        t = arr[y : y + tile, x : x + tile]
        if is_flat(t, min_std, min_grad):
            flat += 1
            continue
        kept.append((y, x, np.ascontiguousarray(t)))
    if max_tiles is not None and len(kept) > max_tiles:
        idx = sorted(rng.choice(len(kept), size=max_tiles, replace=False).tolist())
        kept = [kept[i] for i in idx]
    return kept, flat


def assign_splits(
    tile_counts: dict[str, int],
    groups: dict[str, str],
    seed: int,
    fractions: dict[str, float] | None = None,
    ood_groups: Sequence[str] = ("mate",),
) -> dict[str, str]:
    """Split photos (never tiles) into train/val/test, plus every photo of ``ood_groups`` into
    ``test_ood``.

    Photos are visited in a seeded random order; each goes to the split whose share of tiles is
    furthest below its target fraction, so the tile counts follow the fractions even though
    photos give very different numbers of tiles. Photos with no tile get no split.
    """
    fractions = dict(fractions or SPLIT_FRACTIONS)
    names = list(fractions)
    out: dict[str, str] = {}
    order = sorted(tile_counts, key=lambda p: (rng_for(seed, "split", p).random(), p))
    have = {s: 0 for s in names}
    for p in order:
        n = tile_counts[p]
        if n <= 0:
            continue
        if groups.get(p) in ood_groups:
            out[p] = OOD_SPLIT
            continue
        total = sum(have.values()) + n
        deficit = {s: fractions[s] * total - have[s] for s in names}
        best = max(names, key=lambda s: (deficit[s] / fractions[s], -names.index(s)))
        # a split that has nothing yet gets the next photo (small kits keep every split)
        empty = [s for s in names if have[s] == 0]
        if empty and best not in empty and sum(have.values()) > 0:
            best = empty[0]
        out[p] = best
        have[best] += n
    return out


def assign_generators(
    tiles_by_split: dict[str, list[str]], seed: int, cycle: Sequence[str] = GENERATOR_CYCLE
) -> dict[str, str]:
    """One generator per real tile, cycling through ``cycle`` in a seeded order per split.

    The cycle continues from one split to the next, so any kit with at least ``len(cycle)``
    tiles uses every generator, and each split's mix follows the cycle's proportions.
    """
    out: dict[str, str] = {}
    k = 0
    for split in sorted(tiles_by_split):
        ids = sorted(tiles_by_split[split], key=lambda t: (rng_for(seed, "gen", t).random(), t))
        for t in ids:
            out[t] = cycle[k % len(cycle)]
            k += 1
    return out


def generator_params(name: str, tile_id: str, seed: int) -> dict:
    """Per-tile random choices of a generator (deterministic in seed and tile id)."""
    rng = rng_for(seed, "params", tile_id, name)
    if name.startswith("style"):
        return {"style": int(rng.integers(0, 26)), "alpha": round(float(rng.uniform(0.3, 0.7)), 3)}
    return {"shrink": str(rng.choice(["bicubic", "bilinear", "lanczos", "box"]))}


def expected_tiles(width: int, height: int, tile: int) -> int:
    return math.floor(width / tile) * math.floor(height / tile)
