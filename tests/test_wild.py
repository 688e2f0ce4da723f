"""The wild pool: manifest reader, families, splits by repository, verified downloader.

The downloader is tested against a tiny generated "GitHub" tree served on 127.0.0.1 (and as
file:// URLs); the shipped manifest is checked for families and splits; the real pool is only
read when it is present locally.
"""

from __future__ import annotations

import csv
import hashlib
import http.server
import io
import re
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import encode, make_image
from PIL import Image

from training.data import wild
from training.data.__main__ import main as cli
from training.data.generators import GENERATORS
from training.data.tiles import GENERATOR_CYCLE

COMMIT_A = "a" * 40
COMMIT_B = "b" * 40


def _row(file: str, label: str, generator: str, repo: str, path: str, data: bytes, **kw):
    im = Image.open(io.BytesIO(data))
    box = kw.get("box")
    tile = im.crop(box) if box else im
    commit = COMMIT_A if label == "fake" else COMMIT_B
    return wild.WildImage(
        file=file,
        label=label,
        label_id=int(label == "fake"),
        generator=generator,
        family=wild.family_of(generator) if label == "fake" else "",
        source_repo=repo,
        repo_path=path,
        commit=commit,
        licence="MIT",
        width=tile.width,
        height=tile.height,
        format="PNG" if box else im.format,
        sha256=hashlib.sha256(data).hexdigest(),
        cut=box is not None,
        box=box,
        content=kw.get("content", "photo"),
        pixel_sha256=wild.pixel_sha256(tile),
        note=f"cut from grid, box {box}" if box else "whole file",
    )


@pytest.fixture
def tree(tmp_path) -> tuple[Path, list[wild.WildImage]]:
    """A GitHub-like tree ``<root>/<owner>/<repo>/<commit>/<path>`` and its manifest rows."""
    root = tmp_path / "github"
    grid = make_image(64, 96, seed=1)  # 2 x 3 tiles of 32 px
    rgba = np.dstack([make_image(32, 64, seed=2), np.full((32, 64), 255, np.uint8)])
    rgba[:4, :4, 3] = 0  # non-opaque alpha in the source: tiles keep RGBA
    sources = {
        ("alice/gen-demo", COMMIT_A, "assets/grid 1+x.png"): encode(grid),
        ("alice/gen-demo", COMMIT_A, "assets/rgba'grid.png"): encode(rgba),
        ("carol/dit-samples", COMMIT_A, "out/sample%1.jpg"): encode(make_image(40, 40, 3), "JPEG"),
        ("bob/photos", COMMIT_B, "img/a.jpg"): encode(make_image(48, 40, seed=4), "JPEG"),
        ("bob/photos", COMMIT_B, "img/b c.png"): encode(make_image(40, 56, seed=5)),
    }
    for (repo, commit, path), data in sources.items():
        p = root / repo / commit / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    src = {path: data for (_, _, path), data in sources.items()}
    rows = [
        _row("fake/sdxl/t0.png", "fake", "sdxl", "alice/gen-demo", "assets/grid 1+x.png",
             src["assets/grid 1+x.png"], box=(0, 0, 32, 32)),
        _row("fake/sdxl/t5.png", "fake", "sdxl", "alice/gen-demo", "assets/grid 1+x.png",
             src["assets/grid 1+x.png"], box=(64, 32, 96, 64), content="art"),
        _row("fake/sdxl/rgba0.png", "fake", "sdxl", "alice/gen-demo", "assets/rgba'grid.png",
             src["assets/rgba'grid.png"], box=(32, 0, 64, 32)),
        _row("fake/dit/s1.jpg", "fake", "dit", "carol/dit-samples", "out/sample%1.jpg",
             src["out/sample%1.jpg"]),
        _row("real/photos/a.jpg", "real", "Canon EOS 80D", "bob/photos", "img/a.jpg",
             src["img/a.jpg"], content="portrait"),
        _row("real/photos/b.png", "real", "photos", "bob/photos", "img/b c.png",
             src["img/b c.png"]),
    ]  # fmt: skip
    return root, rows


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.endswith(("/redirect-file.png", "/redirect-ftp.png")):
            scheme = "file://" if "file" in self.path else "ftp://127.0.0.1"
            self.send_response(302)
            self.send_header("Location", f"{scheme}/etc/passwd")
            self.end_headers()
            return
        super().do_GET()


@pytest.fixture
def server(tree):
    """Serve the tree on 127.0.0.1; yields the base URL."""
    root, _ = tree
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a: _Handler(*a, directory=str(root))
    )
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_fetch_over_http_verifies_and_writes(tree, server, tmp_path):
    root, rows = tree
    out = tmp_path / "pool"
    report = wild.fetch_wild(out, rows, base_url=server, workers=2, progress=False)
    assert report.ok, report.summary()
    assert sorted(report.written) == sorted(r.file for r in rows)
    assert wild.verify_pool(out, rows) == []
    assert wild.read_wild_manifest(out / "manifest.csv") == rows
    src = np.asarray(Image.open(root / "alice/gen-demo" / COMMIT_A / "assets/grid 1+x.png"))
    assert np.array_equal(np.asarray(Image.open(out / "fake/sdxl/t5.png")), src[32:64, 64:96])
    assert Image.open(out / "fake/sdxl/t0.png").mode == "RGB"
    assert Image.open(out / "fake/sdxl/rgba0.png").mode == "RGBA"
    real = root / "bob/photos" / COMMIT_B / "img/a.jpg"
    assert (out / "real/photos/a.jpg").read_bytes() == real.read_bytes()


def test_tampered_and_missing_sources_are_reported_and_the_rest_download(tree, server, tmp_path):
    root, rows = tree
    path = root / "bob/photos" / COMMIT_B / "img/b c.png"
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))
    (root / "carol/dit-samples" / COMMIT_A / "out/sample%1.jpg").unlink()
    report = wild.fetch_wild(tmp_path / "pool", rows, base_url=server, progress=False)
    assert set(report.failed) == {"real/photos/b.png", "fake/dit/s1.jpg"}
    assert "sha256 mismatch" in report.failed["real/photos/b.png"]
    assert "HTTP 404" in report.failed["fake/dit/s1.jpg"]
    assert len(report.written) == len(rows) - 2
    assert not (tmp_path / "pool/real/photos/b.png").exists()
    assert "real/photos/b.png: sha256 mismatch" in report.summary()


def test_tampered_grid_is_a_pixel_hash_mismatch(tree, server, tmp_path):
    root, rows = tree
    grid = root / "alice/gen-demo" / COMMIT_A / "assets/grid 1+x.png"
    pixels = np.asarray(Image.open(grid)).copy()
    pixels[40, 70] ^= 1  # inside the t5 tile only
    grid.write_bytes(encode(pixels))
    report = wild.fetch_wild(tmp_path / "pool", rows, base_url=server, progress=False)
    assert list(report.failed) == ["fake/sdxl/t5.png"]
    assert "pixel hash mismatch" in report.failed["fake/sdxl/t5.png"]


def test_rerun_skips_valid_files_and_replaces_bad_ones(tree, server, tmp_path):
    _, rows = tree
    out = tmp_path / "pool"
    assert wild.fetch_wild(out, rows, base_url=server, progress=False).ok
    (out / "fake/sdxl/t0.png").write_bytes(encode(make_image(32, 32, seed=9)))
    (out / "real/photos/a.jpg").unlink()
    again = wild.fetch_wild(out, rows, base_url=server, progress=False)
    assert again.ok
    assert sorted(again.written) == ["fake/sdxl/t0.png", "real/photos/a.jpg"]
    assert len(again.skipped) == len(rows) - 2
    assert wild.verify_pool(out, rows) == []
    assert not list(out.rglob("*.tmp"))


def test_file_urls_work(tree, tmp_path):
    root, rows = tree
    report = wild.fetch_wild(tmp_path / "pool", rows, base_url=root.as_uri(), progress=False)
    assert report.ok, report.summary()
    assert wild.verify_pool(tmp_path / "pool", rows) == []


def test_size_cap_redirects_and_bad_base_urls(tree, server, tmp_path):
    _, rows = tree
    capped = wild.fetch_wild(
        tmp_path / "a", rows[:1], base_url=server, progress=False, max_bytes=100
    )
    assert "cap" in capped.failed[rows[0].file]
    for scheme in ("file", "ftp"):  # urllib refuses file://, the opener also refuses ftp://
        row = wild.dataclasses.replace(rows[3], repo_path=f"out/redirect-{scheme}.png")
        report = wild.fetch_wild(tmp_path / "b", [row], base_url=server, progress=False)
        assert re.search("refused|not allowed", report.failed[row.file]), report.failed
        assert not (tmp_path / "b" / row.file).exists()
    with pytest.raises(ValueError, match="base_url"):
        wild.fetch_wild(tmp_path / "c", rows, base_url="ftp://example.org", progress=False)


def test_cli_fetch_exit_codes(tree, server, tmp_path, capsys):
    root, rows = tree
    manifest = tmp_path / "m.csv"
    wild.write_wild_manifest(rows, manifest)
    args = ["fetch-wild", "--out", str(tmp_path / "pool"), "--manifest", str(manifest)]
    assert cli([*args, "--base-url", server, "--workers", "2"]) == 0
    (root / "bob/photos" / COMMIT_B / "img/a.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "pool/real/photos/a.jpg").unlink()
    assert cli([*args, "--base-url", server]) == 1
    assert "real/photos/a.jpg: sha256 mismatch" in capsys.readouterr().err


def test_build_manifest_from_a_local_pool(tree, server, tmp_path):
    _, rows = tree
    pool = tmp_path / "pool"
    assert wild.fetch_wild(pool, rows, base_url=server, progress=False).ok
    # A pool's own manifest has no family / pixel_sha256 columns: they are recomputed.
    with open(pool / "manifest.csv", newline="") as f:
        plain = [{c: r[c] for c in wild.BASE_COLUMNS} for r in csv.DictReader(f)]
    with open(pool / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=wild.BASE_COLUMNS)
        writer.writeheader()
        writer.writerows(plain)
    assert cli(["wild-manifest", "--wild", str(pool), "--out", str(tmp_path / "copy.csv")]) == 0
    assert wild.read_wild_manifest(tmp_path / "copy.csv") == rows


def test_verify_pool_finds_missing_and_changed_files(tree, tmp_path):
    _, rows = tree
    out = tmp_path / "pool"
    assert wild.fetch_wild(out, rows, base_url=tree[0].as_uri(), progress=False).ok
    (out / "real/photos/b.png").unlink()
    (out / "fake/sdxl/t5.png").write_bytes(encode(make_image(32, 32, seed=7)))
    problems = wild.verify_pool(out, rows)
    assert problems[0].startswith("fake/sdxl/t5.png: pixel hash mismatch")
    assert problems[1] == "real/photos/b.png: missing"
    assert wild.verify_pool(out, rows, check_hashes=False) == ["real/photos/b.png: missing"]


def _write_csv(path: Path, rows: list[dict[str, str]], columns) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def test_reader_rejects_missing_columns_and_bad_rows(tmp_path):
    with open(wild.DEFAULT_MANIFEST, newline="") as f:
        rows = list(csv.DictReader(f))[:5]
    cols = [c for c in wild.COLUMNS if c not in ("sha256", "commit")]
    _write_csv(tmp_path / "m.csv", rows, cols)
    with pytest.raises(wild.WildManifestError, match="missing columns: commit, sha256"):
        wild.read_wild_manifest(tmp_path / "m.csv")
    bad = [dict(r) for r in rows]
    bad[1]["label"] = "maybe"
    bad[2]["generator"] = "mystery-gan"
    bad[3]["file"] = "../escape.png"
    _write_csv(tmp_path / "b.csv", bad, wild.COLUMNS)
    with pytest.raises(wild.WildManifestError) as err:
        wild.read_wild_manifest(tmp_path / "b.csv")
    msg = str(err.value)
    assert "3 bad rows" in msg and "line 3: label 'maybe'" in msg
    assert "mystery-gan" in msg and "'../escape.png'" in msg


def test_families_cover_the_shipped_manifest_and_the_starter_kit():
    rows = wild.read_wild_manifest()
    fakes = [r for r in rows if r.label == "fake"]
    assert len(rows) == 1263 and len(fakes) == 613
    assert all(r.family == wild.family_of(r.generator) for r in fakes)
    assert all(r.family == "" for r in rows if r.label == "real")
    assert {r.family for r in fakes} == {"diffusion_unet", "diffusion_transformer", "gan"}
    assert all(len(r.pixel_sha256) == 64 for r in rows)
    assert sum(r.cut for r in rows) == sum(r.box is not None for r in rows) == 224
    for g in (*GENERATORS, *GENERATOR_CYCLE):
        assert wild.family_of(g) in ("upscaler", "style_transfer")
    assert wild.family_of("vqgan") == wild.family_of("rq-transformer") == "gan"
    with pytest.raises(ValueError, match="unknown generator 'midjourney'"):
        wild.family_of("midjourney")


def test_splits_keep_repositories_whole_and_meet_the_constraints():
    rows = wild.read_wild_manifest()
    mapping = wild.assign_wild_splits(rows, seed=0)
    assert mapping == wild.assign_wild_splits(rows, seed=0)
    assert set(mapping) == {r.source_repo for r in rows}
    assert set(mapping.values()) == set(wild.SPLITS)
    n = Counter((wild.split_of(r, mapping), r.label) for r in rows)
    repos = {(mapping[r.source_repo], r.label, r.source_repo) for r in rows}
    for split in ("val", "test"):
        assert n[split, "fake"] >= 60 and n[split, "real"] >= 60
        for label in ("fake", "real"):
            assert sum(1 for s, lab, _ in repos if (s, lab) == (split, label)) >= 3
    for label, total in (("fake", 613), ("real", 650)):
        assert 0.6 < n["train", label] / total < 0.8
    other = wild.assign_wild_splits(rows, seed=1)
    assert other == wild.assign_wild_splits(rows, seed=1)
    table = wild.describe_splits(rows, mapping)
    assert "| val | fake |" in table and "test generators:" in table
    with pytest.raises(ValueError, match="minimum"):
        wild.assign_wild_splits(rows, min_images=400)


def test_default_wild_dir_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FAKEDETECT_WILD", str(tmp_path))
    assert wild.default_wild_dir() == tmp_path


def test_real_pool_matches_the_shipped_manifest(monkeypatch):
    monkeypatch.delenv("FAKEDETECT_WILD", raising=False)
    pool = wild.default_wild_dir()
    if pool is None or not (pool / "manifest.csv").is_file():
        pytest.skip("no local wild pool")
    rows = wild.read_wild_manifest()
    assert [(r.file, r.sha256) for r in wild.read_wild_manifest(pool / "manifest.csv")] == [
        (r.file, r.sha256) for r in rows
    ]
    assert wild.verify_pool(pool, rows) == []
