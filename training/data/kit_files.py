"""The starter kit's own files: manifest, summary, attribution, and the progress of a build.

`write_manifest` / `read_manifest` keep one row per image (`MANIFEST_COLUMNS`) as CSV and JSON,
`summarize` counts the classes per split and per generator (`format_summary` prints it),
`write_attribution` credits the authors and licences of the photos, and `Progress` records
finished work so that an interrupted build resumes where it stopped.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from . import tiles as T


class Progress:
    """Finished images: the partial manifest plus any final manifest from an earlier run."""

    def __init__(self, out: Path):
        self.out = out
        self.path = out / ".work" / "partial.jsonl"
        self.done: dict[tuple, dict] = {}
        for rec in self._load():
            key = self.key(rec)
            p = out / rec["file"]
            if p.exists() and sha256_file(p) == rec["sha256"]:
                self.done[key] = rec

    @staticmethod
    def key(rec: dict) -> tuple:
        if rec["kind"] == "real":
            return ("real", rec["tile_id"], rec["file"])
        return ("fake", rec["parent_id"], rec["generator"], rec["gen_params"])

    def _load(self) -> Iterable[dict]:
        mj = self.out / "manifest.json"
        if mj.exists():
            try:
                rows = json.loads(mj.read_text())["images"]
            except (ValueError, KeyError):
                rows = []
            for r in rows:
                if r["label"] == "real":
                    yield {
                        "kind": "real",
                        "file": r["file"],
                        "sha256": r["sha256"],
                        "tile_id": Path(r["file"]).stem,
                    }
                else:
                    yield {
                        "kind": "fake",
                        "file": r["file"],
                        "sha256": r["sha256"],
                        "parent_id": Path(r["parent"]).stem,
                        "generator": r["generator"],
                        "gen_params": r["gen_params"],
                    }
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                line = line.strip()
                if line:
                    try:
                        yield json.loads(line)
                    except ValueError:
                        continue  # a line cut by an interruption

    def get(self, key: tuple) -> dict | None:
        return self.done.get(key)

    def add(self, rec: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(rec, sort_keys=True) + "\n")
        self.done[self.key(rec)] = rec


def _remove_orphans(out: Path, keep: set[str]) -> None:
    """Delete kit images that the manifest no longer lists (e.g. from an interrupted write)."""
    img = out / "images"
    if not img.exists():
        return
    for p in img.rglob("*"):
        rel = p.relative_to(out).as_posix()
        if p.is_file() and rel not in keep and (p.suffix == ".png" or ".tmp" in p.name):
            p.unlink()


def write_manifest(out: Path, rows: list[dict]) -> None:
    """``manifest.csv`` (columns MANIFEST_COLUMNS) and ``manifest.json`` ({"columns", "images"})."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: r.get(c, "") for c in MANIFEST_COLUMNS})
    _write_atomic(out / "manifest.csv", buf.getvalue().encode())
    doc = {
        "columns": MANIFEST_COLUMNS,
        "images": [{c: r.get(c, "") for c in MANIFEST_COLUMNS} for r in rows],
    }
    _write_atomic(out / "manifest.json", (json.dumps(doc, indent=1) + "\n").encode())


def read_manifest(out: Path) -> list[dict]:
    with (Path(out) / "manifest.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def summarize(rows: list[dict]) -> dict:
    per_split: dict[str, dict[str, int]] = {}
    per_gen: dict[str, dict[str, int]] = {}
    per_group: dict[str, dict[str, int]] = {}
    for r in rows:
        s = per_split.setdefault(r["split"], {"real": 0, "fake": 0})
        s[r["label"]] += 1
        g = per_group.setdefault(r["source_group"], {"real": 0, "fake": 0})
        g[r["label"]] += 1
        if r["label"] == "fake":
            d = per_gen.setdefault(r["generator"], {})
            d[r["split"]] = d.get(r["split"], 0) + 1
    return {
        "total": {
            "real": sum(v["real"] for v in per_split.values()),
            "fake": sum(v["fake"] for v in per_split.values()),
        },
        "per_split": {k: per_split[k] for k in T.SPLITS if k in per_split},
        "per_generator": dict(sorted(per_gen.items())),
        "per_source_group": dict(sorted(per_group.items())),
    }


def format_summary(summary: dict) -> str:
    splits = list(summary["per_split"])
    lines = [f"{'':22s}" + "".join(f"{s:>10s}" for s in splits) + f"{'total':>10s}"]
    for label in ("real", "fake"):
        vals = [summary["per_split"][s][label] for s in splits]
        lines.append(f"{label:22s}" + "".join(f"{v:10d}" for v in vals) + f"{sum(vals):10d}")
    lines.append("-" * (22 + 10 * (len(splits) + 1)))
    for gen, d in summary["per_generator"].items():
        vals = [d.get(s, 0) for s in splits]
        lines.append(f"{gen:22s}" + "".join(f"{v:10d}" for v in vals) + f"{sum(vals):10d}")
    return "\n".join(lines)


def write_attribution(out: Path, rows: list[dict]) -> None:
    photos: dict[str, dict] = {}
    for r in rows:
        p = photos.setdefault(r["photo_id"], {**r, "n_real": 0, "n_fake": 0})
        p["n_real" if r["label"] == "real" else "n_fake"] += 1
    by_lic = defaultdict(list)
    for p in photos.values():
        by_lic[p["licence"]].append(p)
    lines = [
        "# Attribution",
        "",
        "Every image of this kit is cut from a photograph of a Debian package (GCompris,",
        "Lomiri wallpapers, MATE backgrounds). Real tiles are downscaled crops of the photo;",
        "fake tiles are further modified by an image generator (super-resolution after",
        "downscaling, or partial style transfer). The tiles are adaptations of the photos and",
        "are shared under the photo's licence; CC-BY-SA adaptations under the same licence.",
        "",
        "## Photos under CC-BY / CC-BY-SA",
        "",
        "| photo | author | licence | source | package | tiles (real+fake) |",
        "|---|---|---|---|---|---|",
    ]
    for lic in sorted(by_lic):
        if not lic.upper().startswith("CC-BY"):
            continue
        for p in sorted(by_lic[lic], key=lambda q: q["original_file"]):
            name = p["original_file"].rsplit("/", 1)[-1]
            url = p["source_url"] or "-"
            lines.append(
                f"| `{name}` | {p['author'] or 'unknown'} | {lic} | {url} | "
                f"{p['source_package']} | {p['n_real']}+{p['n_fake']} |"
            )
    lines += ["", "## Other photos", ""]
    for lic in sorted(by_lic):
        if lic.upper().startswith("CC-BY"):
            continue
        ps = sorted(by_lic[lic], key=lambda q: q["original_file"])
        lines.append(f"### {lic} ({len(ps)} photos)")
        lines.append("")
        for p in ps:
            name = p["original_file"].rsplit("/", 1)[-1]
            who = p["author"] or "see the package's copyright file"
            lines.append(f"- `{name}` ({p['source_package']}): {who}")
        lines.append("")
    lines.append(
        "Licence texts: the `copyright` file of each Debian package "
        "(`/usr/share/doc/<package>/copyright`) and https://creativecommons.org/licenses/."
    )
    _write_atomic(out / "ATTRIBUTION.md", ("\n".join(lines) + "\n").encode())


MANIFEST_COLUMNS = [
    "file",
    "label",
    "label_id",
    "split",
    "source_package",
    "original_file",
    "licence",
    "author",
    "generator",
    "parent",
    "sha256",
    # extra provenance
    "photo_id",
    "source_group",
    "source_url",
    "licence_source",
    "scale",
    "resample",
    "tile_y",
    "tile_x",
    "gen_params",
    # added by the wild step (wild_kit.py); package rows: content=photo, origin=package
    "content",
    "family",
    "origin",
    "control",
]


def sha256_file(p: Path) -> str:
    return sha256_bytes(Path(p).read_bytes())


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    tmp.replace(path)


def sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()
