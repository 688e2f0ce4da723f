"""The "wild" pool: generator outputs and camera photos from public GitHub repositories.

Every row of :data:`DEFAULT_MANIFEST` names a repository, a commit and a path, so the pool can
be rebuilt from GitHub by :func:`fetch_wild` (``python -m training.data fetch-wild --out DIR``).
Files with ``cut=no`` are the original bytes (checked by ``sha256``); ``cut=yes`` rows are
tiles cropped from a sample grid (``box (x0, y0, x1, y1)`` in ``note``) and saved as PNG, checked
by ``pixel_sha256`` because PNG bytes depend on the encoder. The images are never committed
(research licences). Splits go by source repository (:func:`assign_wild_splits`) and every
generator belongs to a family (:data:`FAMILIES`) for leave-one-family-out evaluation.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import os
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

DEFAULT_MANIFEST = Path(__file__).with_name("wild_manifest.csv")
BASE_COLUMNS = (
    *("file", "label", "generator", "source_repo", "repo_path", "commit", "licence"),
    *("width", "height", "format", "sha256", "cut", "note", "content"),
)
COLUMNS = (*BASE_COLUMNS, "family", "pixel_sha256")
SPLITS = ("train", "val", "test")
BALANCED_CONTENT = ("photo", "portrait", "art")
MAX_DOWNLOAD_BYTES = 16 * 2**20
TIMEOUT_S = 60.0

_FAMILY_MEMBERS = {
    "diffusion_unet": (
        *("sd14", "sd15", "sd2", "sd21", "sdxl", "sdxl-turbo", "lcm-sd15", "deepfloyd-if"),
        *("kandinsky2", "kandinsky3", "stable-cascade"),
    ),
    "diffusion_transformer": (
        *("flux1-dev", "flux1-schnell", "pixart-alpha", "hunyuan-dit", "dit", "sit"),
        *("cogview4", "omnigen"),
    ),
    # vqgan and rq-transformer sample tokens with a transformer, but their pixels come from a
    # decoder trained with an adversarial (GAN) loss, so they sit with the GANs.
    "gan": ("stylegan1", "stylegan-xl", "vqgan", "rq-transformer"),
    # The starter kit's own generators (training.data.generators).
    "upscaler": (
        *("realesrgan-x4plus", "esrgan-slim", "esrgan-slim-x2", "esrgan-slim-x4"),
        *("esrgan-medium", "esrgan-medium-x2", "esrgan-medium-x4"),
    ),
    "style_transfer": ("style-multistyle26",),
}
FAMILIES: dict[str, str] = {g: fam for fam, gens in _FAMILY_MEMBERS.items() for g in gens}

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX40 = re.compile(r"[0-9a-f]{40}")
_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_BOX = re.compile(r"box \((\d+), (\d+), (\d+), (\d+)\)")


class WildManifestError(ValueError):
    """A wild manifest lacks columns or has rows that do not parse."""


@dataclass(frozen=True)
class WildImage:
    """One manifest row. ``label_id`` is 1 for fakes; ``family`` is "" for reals."""

    file: str
    label: str
    label_id: int
    generator: str
    family: str
    source_repo: str
    repo_path: str
    commit: str
    licence: str
    width: int
    height: int
    format: str
    sha256: str
    cut: bool
    box: tuple[int, int, int, int] | None
    content: str
    pixel_sha256: str
    note: str


def family_of(generator: str) -> str:
    """The family of a generator label (``sdxl`` -> ``diffusion_unet``); ValueError if unknown."""
    if generator in FAMILIES:
        return FAMILIES[generator]
    if generator.startswith(("realesrgan", "esrgan")):
        return "upscaler"
    if generator.startswith("style-"):
        return "style_transfer"
    raise ValueError(f"unknown generator {generator!r}: add it to training.data.wild.FAMILIES")


def pixel_sha256(image: Image.Image) -> str:
    """sha256 of ``f"{h}x{w}:"`` followed by the RGB pixel bytes (encoder-independent)."""
    arr = np.asarray(image.convert("RGB"))
    digest = hashlib.sha256(f"{arr.shape[0]}x{arr.shape[1]}:".encode())
    digest.update(arr.tobytes())
    return digest.hexdigest()


def default_wild_dir() -> Path | None:
    """``$FAKEDETECT_WILD``, else ``../shared/data/wild`` beside the repository if present."""
    env = os.environ.get("FAKEDETECT_WILD")
    if env:
        return Path(env)
    local = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "wild"
    return local if local.is_dir() else None


def _safe_relpath(p: str) -> bool:
    parts = p.split("/")
    return bool(p) and "\\" not in p and all(s not in ("", ".", "..") for s in parts)


def _parse_row(r: dict[str, str]) -> WildImage:
    label, cut = r["label"], r["cut"]
    if label not in ("real", "fake"):
        raise ValueError(f"label {label!r} is not real/fake")
    if cut not in ("yes", "no"):
        raise ValueError(f"cut {cut!r} is not yes/no")
    for col in ("file", "repo_path"):
        if not _safe_relpath(r[col]):
            raise ValueError(f"{col} {r[col]!r} is not a plain relative path")
    if not _REPO.fullmatch(r["source_repo"]) or r["source_repo"].startswith("."):
        raise ValueError(f"source_repo {r['source_repo']!r} is not owner/name")
    if not _HEX40.fullmatch(r["commit"]):
        raise ValueError(f"commit {r['commit']!r} is not 40 hex digits")
    if not _HEX64.fullmatch(r["sha256"]):
        raise ValueError("sha256 is not 64 hex digits")
    pix = r.get("pixel_sha256") or ""
    if pix and not _HEX64.fullmatch(pix):
        raise ValueError("pixel_sha256 is not 64 hex digits")
    if cut == "yes" and "pixel_sha256" in r and not pix:
        raise ValueError("cut=yes row without pixel_sha256")
    width, height = int(r["width"]), int(r["height"])
    if width < 1 or height < 1:
        raise ValueError(f"bad size {width}x{height}")
    box = None
    if cut == "yes":
        m = _BOX.search(r["note"])
        if not m:
            raise ValueError("cut=yes row without 'box (x0, y0, x1, y1)' in note")
        box = (int(m[1]), int(m[2]), int(m[3]), int(m[4]))
        if (box[2] - box[0], box[3] - box[1]) != (width, height):
            raise ValueError(f"box {box} does not match {width}x{height}")
    family = family_of(r["generator"]) if label == "fake" else ""
    if r.get("family") not in (None, family):
        raise ValueError(f"family {r['family']!r} should be {family!r}")
    text = ("file", "generator", "source_repo", "repo_path", "commit", "licence", "format")
    return WildImage(
        **{c: r[c] for c in (*text, "sha256", "content", "note")},
        label=label,
        label_id=int(label == "fake"),
        family=family,
        width=width,
        height=height,
        cut=cut == "yes",
        box=box,
        pixel_sha256=pix,
    )


def read_wild_manifest(path: str | Path = DEFAULT_MANIFEST) -> list[WildImage]:
    """Read and validate a wild manifest (the repo's copy or the pool's ``manifest.csv``).

    ``family`` and ``pixel_sha256`` are optional (a pool's own manifest lacks them; the family
    is then derived from the generator). Raises :class:`WildManifestError` naming missing
    columns or the bad rows (line numbers and reasons).
    """
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in BASE_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise WildManifestError(f"{path}: missing columns: {', '.join(missing)}")
        rows, problems, seen = [], [], set()
        for r in reader:
            try:
                if None in r or any(r[c] is None for c in BASE_COLUMNS):
                    raise ValueError("wrong number of fields")
                row = _parse_row(r)
                if row.file in seen:
                    raise ValueError(f"duplicate file {row.file!r}")
            except ValueError as e:
                problems.append(f"line {reader.line_num}: {e}")
                continue
            seen.add(row.file)
            rows.append(row)
    if problems:
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise WildManifestError(
            f"{path}: {len(problems)} bad rows: " + "; ".join(problems[:10]) + more
        )
    return rows


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:  # not mkstemp: keep the umask's file mode
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_wild_manifest(rows: Sequence[WildImage], path: str | Path) -> None:
    """Write rows as CSV with :data:`COLUMNS` (atomically)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        d = {c: getattr(r, c) for c in COLUMNS}
        d["cut"] = "yes" if r.cut else "no"
        writer.writerow(d)
    _atomic_write(Path(path), buf.getvalue().encode("utf-8"))


def build_wild_manifest(
    wild_dir: str | Path, out: str | Path = DEFAULT_MANIFEST
) -> list[WildImage]:
    """(Re)generate the repo's manifest copy from a local pool: adds family and pixel_sha256."""
    wild_dir = Path(wild_dir)
    rows = []
    for r in read_wild_manifest(wild_dir / "manifest.csv"):
        with Image.open(wild_dir / r.file) as im:
            rows.append(dataclasses.replace(r, pixel_sha256=pixel_sha256(im)))
    write_wild_manifest(rows, out)
    return rows


def _check(path: Path, row: WildImage) -> str | None:
    """None when ``path`` holds the row's file, else the problem."""
    if not path.is_file():
        return "missing"
    if not row.cut:
        got = hashlib.sha256(path.read_bytes()).hexdigest()
        return None if got == row.sha256 else f"sha256 mismatch (got {got[:12]})"
    if not row.pixel_sha256:
        return "no pixel_sha256 to check against"
    try:
        with Image.open(path) as im:
            got = pixel_sha256(im)
    except Exception as e:
        return f"unreadable ({e})"
    return None if got == row.pixel_sha256 else f"pixel hash mismatch (got {got[:12]})"


def verify_pool(
    directory: str | Path, rows: Sequence[WildImage] | None = None, check_hashes: bool = True
) -> list[str]:
    """Problems of a local pool, one ``"<file>: <problem>"`` string each (empty when all good).

    cut=no files are checked by the sha256 of their bytes, cut=yes tiles by ``pixel_sha256``.
    """
    directory = Path(directory)
    rows = read_wild_manifest() if rows is None else rows
    problems = []
    for r in rows:
        path = directory / r.file
        why = _check(path, r) if check_hashes else (None if path.is_file() else "missing")
        if why:
            problems.append(f"{r.file}: {why}")
    return problems


# --------------------------------------------------------------------------------------------
# Splits by source repository
# --------------------------------------------------------------------------------------------


def _repo_features(rows: Sequence[WildImage]) -> tuple[list[str], np.ndarray]:
    """Per repo: fakes, reals, (label, content) counts for BALANCED_CONTENT, has fakes/reals."""
    repos = sorted({r.source_repo for r in rows})
    index = {name: i for i, name in enumerate(repos)}
    feats = np.zeros((len(repos), 10))
    for r in rows:
        i, fake = index[r.source_repo], r.label_id
        feats[i, 1 - fake] += 1
        if r.content in BALANCED_CONTENT:
            feats[i, 2 + 3 * (1 - fake) + BALANCED_CONTENT.index(r.content)] += 1
    feats[:, 8], feats[:, 9] = feats[:, 0] > 0, feats[:, 1] > 0
    return repos, feats


def assign_wild_splits(
    rows: Sequence[WildImage],
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.70, 0.15, 0.15),
    *,
    trials: int = 5000,
    min_images: int = 60,
    min_repos: int = 3,
) -> dict[str, str]:
    """Map each ``source_repo`` to train/val/test; a repository is never split.

    Seeded search: ``trials`` random assignments, then single moves and pairwise swaps while
    they help. The cost is the deviation from ``fractions`` of the fakes and of the reals
    (weight 1) and of each (label, content) count for photo/portrait/art (weight 0.5). Val and
    test must each hold ``min_images`` fakes and reals and ``min_repos`` repositories with
    fakes and with reals. Deterministic for a seed; ValueError when nothing is feasible.
    """
    target = np.asarray(fractions, dtype=float)
    if target.shape != (3,) or abs(target.sum() - 1) > 1e-6 or (target <= 0).any():
        raise ValueError(f"fractions must be three positive numbers summing to 1: {fractions}")
    repos, feats = _repo_features(rows)
    totals = np.maximum(feats.sum(0)[:8], 1)
    weights = np.array([1.0, 1.0] + [0.5] * 6)
    mins = np.array([min_images, min_images, min_repos, min_repos], dtype=float)

    def cost(sums: np.ndarray) -> np.ndarray:  # sums: (..., 3 splits, 10 features)
        dev = np.abs(sums[..., :8] / totals - target[:, None]) * weights
        ok = (sums[..., 1:, [0, 1, 8, 9]] >= mins).all(axis=(-1, -2))
        return np.where(ok, dev.sum(axis=(-1, -2)), np.inf)

    rng = np.random.default_rng(seed)
    assign = rng.choice(3, size=(trials, len(repos)), p=target)
    onehot = assign[:, :, None] == np.arange(3)  # (trials, repos, splits)
    costs = cost(np.einsum("trs,rf->tsf", onehot, feats))
    if not np.isfinite(costs.min()):
        raise ValueError("no split meets the minimum counts: lower min_images or min_repos")
    best = assign[int(np.argmin(costs))].copy()
    sums = np.stack([feats[best == s].sum(0) for s in range(3)])
    current = float(cost(sums))
    improved = True
    while improved:
        improved = False
        for i in range(len(repos)):
            # Candidates: move repo i to another split, or swap it with repo j elsewhere.
            for j in [None, *range(i + 1, len(repos))]:
                targets = [s for s in range(3) if s != best[i]] if j is None else [best[j]]
                for s in targets:
                    if j is not None and s == best[i]:
                        continue
                    trial = sums.copy()
                    trial[best[i]] -= feats[i]
                    trial[s] += feats[i]
                    if j is not None:
                        trial[s] -= feats[j]
                        trial[best[i]] += feats[j]
                    c = float(cost(trial))
                    if c < current - 1e-12:
                        if j is not None:
                            best[j] = best[i]
                        best[i], sums, current, improved = s, trial, c, True
    return {name: SPLITS[s] for name, s in zip(repos, best, strict=True)}


def split_of(row: WildImage, mapping: dict[str, str]) -> str:
    """The split of a row under a repository mapping from :func:`assign_wild_splits`."""
    try:
        return mapping[row.source_repo]
    except KeyError:
        raise KeyError(f"repository {row.source_repo!r} has no split") from None


def describe_splits(rows: Sequence[WildImage], mapping: dict[str, str]) -> str:
    """A text table per split: fakes and reals per content tag, repositories, generators."""
    order = (*BALANCED_CONTENT, "render", "text")
    contents = sorted(
        {r.content for r in rows},
        key=lambda c: (c not in order, order.index(c) if c in order else 0, c),
    )
    head = ["split", "label", *contents, "total", "repos"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    gens = []
    for split in SPLITS:
        part = [r for r in rows if split_of(r, mapping) == split]
        for label in ("fake", "real"):
            sel = [r for r in part if r.label == label]
            n = Counter(r.content for r in sel)
            cells = [split, label, *(str(n[c]) for c in contents), str(len(sel))]
            lines.append("| " + " | ".join([*cells, str(len({r.source_repo for r in sel}))]) + " |")
        g = Counter(r.generator for r in part if r.label == "fake")
        gens.append(f"{split} generators: " + ", ".join(f"{k} {v}" for k, v in sorted(g.items())))
    return "\n".join([*lines, "", *gens])


# --------------------------------------------------------------------------------------------
# Download from GitHub (or any mirror laid out as <base>/<owner>/<repo>/<commit>/<path>)
# --------------------------------------------------------------------------------------------


@dataclass
class FetchReport:
    """What :func:`fetch_wild` did: files written, already present and valid, failed (reason)."""

    out: Path
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every row is present and verified."""
        return not self.failed

    def summary(self, limit: int = 50) -> str:
        """One line of counts, then one line per failure (at most ``limit``)."""
        n_ok = len(self.written) + len(self.skipped)
        lines = [
            f"{n_ok} files verified in {self.out} ({len(self.written)} downloaded, "
            f"{len(self.skipped)} already present), {len(self.failed)} failed"
        ]
        lines += [f"  {f}: {why}" for f, why in sorted(self.failed.items())[:limit]]
        if len(self.failed) > limit:
            lines.append(f"  ... and {len(self.failed) - limit} more")
        return "\n".join(lines)


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[override]
        if urllib.parse.urlsplit(newurl).scheme not in ("http", "https"):
            raise urllib.error.HTTPError(
                newurl, code, f"redirect to {newurl!r} refused", headers, fp
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def source_url(row: WildImage, base_url: str = "https://raw.githubusercontent.com") -> str:
    """``{base_url}/{owner}/{repo}/{commit}/{quoted repo_path}``."""
    path = urllib.parse.quote(row.repo_path)
    return f"{base_url.rstrip('/')}/{row.source_repo}/{row.commit}/{path}"


def _download(opener, url: str, timeout: float, max_bytes: int) -> bytes:
    with opener.open(url, timeout=timeout) as resp:
        length = resp.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > max_bytes:
            raise ValueError(f"{length} bytes, over the {max_bytes}-byte cap")
        data = resp.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"over the {max_bytes}-byte cap")
    return data


def _source_image(data: bytes) -> Image.Image:
    """Decoded source: RGBA when it has non-opaque alpha, else RGB."""
    with Image.open(io.BytesIO(data)) as im:
        if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
            rgba = im.convert("RGBA")
            if rgba.getchannel("A").getextrema()[0] < 255:
                return rgba
        return im.convert("RGB")


def _fetch_group(
    opener, url: str, group: list[WildImage], out: Path, timeout: float, max_bytes: int
) -> dict[str, str | None]:
    """Download one source URL and write every row cut from it: file -> failure or None."""
    try:
        data = _download(opener, url, timeout, max_bytes)
    except urllib.error.HTTPError as e:
        e.close()
        return dict.fromkeys((r.file for r in group), f"HTTP {e.code} {e.reason} for {url}")
    except Exception as e:
        return dict.fromkeys((r.file for r in group), f"download failed for {url}: {e}")
    result: dict[str, str | None] = {}
    source = None
    for r in group:
        try:
            if not r.cut:
                got = hashlib.sha256(data).hexdigest()
                if got != r.sha256:
                    raise ValueError(f"sha256 mismatch (got {got[:12]}, want {r.sha256[:12]})")
                _atomic_write(out / r.file, data)
            else:
                source = _source_image(data) if source is None else source
                if not (r.box and r.box[2] <= source.width and r.box[3] <= source.height):
                    raise ValueError(
                        f"box {r.box} outside the {source.width}x{source.height} source"
                    )
                tile = source.crop(r.box)
                got = pixel_sha256(tile)
                if got != r.pixel_sha256:
                    raise ValueError(f"pixel hash mismatch (got {got[:12]})")
                buf = io.BytesIO()
                tile.save(buf, format="PNG")
                _atomic_write(out / r.file, buf.getvalue())
            result[r.file] = None
        except Exception as e:
            result[r.file] = str(e) or type(e).__name__
    return result


def fetch_wild(
    out: str | Path,
    rows: Sequence[WildImage] | None = None,
    base_url: str = "https://raw.githubusercontent.com",
    workers: int = 4,
    opener: urllib.request.OpenerDirector | None = None,
    progress: bool = True,
    *,
    timeout: float = TIMEOUT_S,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
) -> FetchReport:
    """Download the pool into ``out`` (``out/<file>``), verify every file, and resume reruns.

    Each source URL is fetched once (several tiles may come from one grid). Files already
    present and valid are skipped; a failed row (HTTP error, size cap, hash mismatch) is
    recorded in the report and the others continue. Ends by writing ``out/manifest.csv``.
    """
    from tqdm.auto import tqdm

    if urllib.parse.urlsplit(base_url).scheme not in ("http", "https", "file"):
        raise ValueError(f"base_url must be http(s):// or file://, not {base_url!r}")
    out = Path(out)
    rows = read_wild_manifest() if rows is None else list(rows)
    opener = opener or urllib.request.build_opener(_HttpOnlyRedirects)
    report = FetchReport(out=out)
    groups: dict[str, list[WildImage]] = {}
    for r in rows:
        if _check(out / r.file, r) is None:
            report.skipped.append(r.file)
        else:
            groups.setdefault(source_url(r, base_url), []).append(r)
    with tqdm(total=len(rows), disable=not progress, unit="file", desc="wild pool") as bar:
        bar.update(len(report.skipped))
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = [
                pool.submit(_fetch_group, opener, url, g, out, timeout, max_bytes)
                for url, g in groups.items()
            ]
            for fut in as_completed(futures):
                for file, why in fut.result().items():
                    if why is None:
                        report.written.append(file)
                    else:
                        report.failed[file] = why
                    bar.update(1)
    write_wild_manifest(rows, out / "manifest.csv")
    return report
