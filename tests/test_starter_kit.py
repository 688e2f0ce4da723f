"""The open starter kit: pure logic on generated photos with a stub generator, plus one
integration test that fetches the real sources and builds a ``--limit`` kit."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import struct
import tarfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.data import kit as K
from training.data import kit_files as KF
from training.data import licences as L
from training.data import sources as S
from training.data import tiles as T
from training.data.loaders import load_starter_kit

# ---------------------------------------------------------------------------- helpers


def photo_array(h: int, w: int, seed: int) -> np.ndarray:
    """A photo-like image: smooth colour fields, edges and sensor-like noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    f = rng.uniform(0.005, 0.03, size=6)
    base = np.stack(
        [
            np.sin(xx * f[0] + yy * f[1] + seed),
            np.cos(yy * f[2] - xx * f[3]),
            np.sin((xx + yy) * f[4]) * np.cos(xx * f[5]),
        ],
        axis=-1,
    )
    blobs = (np.sin(xx / 9.0) * np.sin(yy / 7.0) > 0.6)[..., None] * 0.3
    noise = rng.normal(0, 0.06, size=(h, w, 3))
    return np.clip((base * 0.35 + 0.5 + blobs + noise) * 255, 0, 255).astype(np.uint8)


def jpeg_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def make_photos(n: int = 8, n_ood: int = 2, size=(420, 560)) -> list[S.PhotoSource]:
    out = []
    for i in range(n + n_ood):
        data = jpeg_bytes(photo_array(size[0] + 16 * (i % 3), size[1], seed=i))
        group = "mate" if i >= n else ("gcompris" if i % 2 else "lomiri")
        lic = "CC-BY-SA-4.0" if i % 3 == 0 else "CC0-1.0"
        out.append(
            S.PhotoSource(
                photo_id=hashlib.sha256(data).hexdigest()[:16],
                group=group,
                source_package=f"{group}-pkg 1.0",
                original_file=f"usr/share/{group}/photo{i}.jpg",
                licence=lic,
                licence_source="test",
                author=f"Author {i}",
                source_url="",
                data=data,
            )
        )
    return out


class StubGenerator:
    """Stand-in for the networks: a deterministic, visibly different image per generator."""

    def __init__(self):
        self.calls = Counter()

    def __call__(self, name: str, tile: np.ndarray, params: dict) -> np.ndarray:
        self.calls[name] += 1
        shift = 1 + sum(map(ord, name + json.dumps(params, sort_keys=True))) % 7
        out = np.roll(tile.astype(np.int16), shift, axis=1) + shift
        return np.clip(out, 0, 255).astype(np.uint8)


SMALL = K.KitConfig(
    tile=64, seed=0, scales=2, short_range=(2.0, 3.5), min_downscale=1.25, max_tiles_per_photo=6
)


def build(out: Path, cfg: K.KitConfig = SMALL, photos=None, gen=None, **kw):
    gen = gen or StubGenerator()
    summary = K.build_starter_kit(
        out, cfg, photos=photos or make_photos(), generator_fn=gen, quiet=True, **kw
    )
    return summary, gen


# ---------------------------------------------------------------------------- tiling


def test_tile_grid_is_non_overlapping_and_inside():
    rng = np.random.default_rng(0)
    corners = T.tile_grid(300, 530, 64, rng)
    assert len(corners) == (300 // 64) * (530 // 64) == 32
    occupied = np.zeros((300, 530), dtype=np.int32)
    for y, x in corners:
        assert y >= 0 and y + 64 <= 300 and x >= 0 and x + 64 <= 530
        occupied[y : y + 64, x : x + 64] += 1
    assert occupied.max() == 1
    assert T.tile_grid(63, 500, 64, rng) == []


def test_flat_tiles_are_skipped():
    img = photo_array(128, 256, seed=3)
    img[:, 128:] = 200  # right half a flat wall
    img[64:, 128:192] = np.clip(200 + np.random.default_rng(0).normal(0, 1, (64, 64, 3)), 0, 255)
    kept, flat = T.cut_tiles(img, 64, np.random.default_rng(0))
    assert flat == 4 and len(kept) == 4
    assert all(x < 128 for _, x, _ in kept)
    assert all(t.shape == (64, 64, 3) for *_, t in kept)
    assert T.is_flat(np.full((64, 64, 3), 90, np.uint8))
    assert not T.is_flat(photo_array(64, 64, seed=1))


def test_cut_tiles_cap_keeps_random_subset_deterministically():
    img = photo_array(256, 512, seed=2)
    a, _ = T.cut_tiles(img, 64, np.random.default_rng(5), max_tiles=5)
    b, _ = T.cut_tiles(img, 64, np.random.default_rng(5), max_tiles=5)
    assert len(a) == 5
    assert [(y, x) for y, x, _ in a] == [(y, x) for y, x, _ in b]


def test_photo_check_rejects_clip_art_and_gradients():
    assert T.photo_check(Image.fromarray(photo_array(240, 320, 0))).ok
    clip = np.full((240, 320, 3), 255, np.uint8)
    clip[60:180, 80:240] = (200, 30, 30)
    chk = T.photo_check(Image.fromarray(clip))
    assert not chk.ok and "one colour" in chk.reason
    yy, xx = np.mgrid[0:240, 0:320]
    grad = np.stack([xx * 255 / 320, yy * 255 / 240, (xx + yy) * 255 / 560], -1)
    grad = (grad + np.random.default_rng(0).uniform(0, 1, grad.shape)).astype(np.uint8)
    chk = T.photo_check(Image.fromarray(grad))
    assert not chk.ok and ("flat" in chk.reason or "gradients" in chk.reason)


def test_plan_scale_ranges():
    rng = np.random.default_rng(0)
    for _ in range(50):
        p = T.plan_scale(4000, 3000, 256, rng, (2.0, 7.0), 1.25)
        assert 512 <= p.height <= 7 * 256 and p.width > p.height
        assert abs(p.width / p.height - 4 / 3) < 0.01
        assert p.resample in T.RESAMPLERS
    # big enough: always shrunk by at least the minimum factor
    p = T.plan_scale(1000, 700, 256, rng, (5.0, 6.0), 1.25)
    assert p.height == 560 and p.factor == pytest.approx(0.8)
    # small photo: slight upscale to hold one tile; too small: skipped
    p = T.plan_scale(320, 213, 256, rng, (2.0, 7.0), 1.25)
    assert (p.width, p.height) == (385, 256) and p.factor > 1
    assert T.plan_scale(320, 150, 256, rng) is None
    assert T.plan_scale(150, 320, 256, rng) is None


# ---------------------------------------------------------------------------- splits, mix


def test_assign_splits_by_photo_with_ood_group():
    rng = np.random.default_rng(1)
    counts = {f"p{i}": int(rng.integers(1, 40)) for i in range(60)}
    groups = {p: ("mate" if i % 10 == 0 else "lomiri") for i, p in enumerate(counts)}
    a = T.assign_splits(counts, groups, seed=0)
    assert a == T.assign_splits(counts, groups, seed=0)
    assert a != T.assign_splits(counts, groups, seed=1)
    assert set(a) == set(counts)
    assert all((a[p] == "test_ood") == (groups[p] == "mate") for p in counts)
    tiles = Counter()
    for p, s in a.items():
        tiles[s] += counts[p]
    inside = tiles["train"] + tiles["val"] + tiles["test"]
    assert tiles["train"] / inside == pytest.approx(0.70, abs=0.05)
    assert tiles["val"] / inside == pytest.approx(0.15, abs=0.05)
    assert tiles["test"] / inside == pytest.approx(0.15, abs=0.05)


def test_assign_splits_small_kit_fills_every_split():
    a = T.assign_splits({"a": 5, "b": 1, "c": 2, "d": 9}, {}, seed=0)
    assert sorted(set(a.values())) == ["test", "train", "val"]
    assert T.assign_splits({"a": 0}, {}, seed=0) == {}


def test_assign_generators_balanced_and_complete():
    by_split = {"train": [f"t{i}" for i in range(80)], "val": [f"v{i}" for i in range(16)]}
    g = T.assign_generators(by_split, seed=0)
    assert set(g) == set(by_split["train"]) | set(by_split["val"])
    train = Counter(g[t] for t in by_split["train"])
    assert train["realesrgan-x4plus"] == 20 and train["style-multistyle26"] == 20
    assert train["esrgan-slim-x2"] == train["esrgan-slim-x4"] == 10
    assert train["esrgan-medium-x2"] == train["esrgan-medium-x4"] == 10
    tiny = T.assign_generators({"test": ["a", "b", "c"], "train": list("defgh")}, seed=3)
    assert set(tiny.values()) == set(T.GENERATOR_CYCLE)


def test_generator_params_deterministic():
    p = T.generator_params("style-multistyle26", "abc", 0)
    assert p == T.generator_params("style-multistyle26", "abc", 0)
    assert 0 <= p["style"] < 26 and 0.3 <= p["alpha"] <= 0.7
    assert T.generator_params("esrgan-slim-x2", "abc", 0)["shrink"] in (
        "bicubic",
        "bilinear",
        "lanczos",
        "box",
    )


# ---------------------------------------------------------------------------- the build


def read_rows(out: Path) -> list[dict]:
    with (out / "manifest.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_build_manifest_balance_and_no_leak(tmp_path: Path):
    out = tmp_path / "kit"
    summary, gen = build(out)
    rows = read_rows(out)
    assert list(rows[0]) == KF.MANIFEST_COLUMNS
    assert KF.MANIFEST_COLUMNS[:11] == [
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
    ]
    by_file = {r["file"]: r for r in rows}
    reals = [r for r in rows if r["label"] == "real"]
    fakes = [r for r in rows if r["label"] == "fake"]
    assert len(reals) == len(fakes) > 20
    for r in rows:
        data = (out / r["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == r["sha256"]
        assert r["label_id"] == ("1" if r["label"] == "fake" else "0")
        assert r["file"] == f"images/{r['split']}/{r['label']}/{Path(r['file']).name}"
        im = Image.open(io.BytesIO(data))
        assert (im.format, im.mode, im.size) == ("PNG", "RGB", (64, 64))
        # ids come from the content
        assert Path(r["file"]).stem == T.pixel_id(np.asarray(im))
    for r in reals:
        assert r["generator"] == "" and r["parent"] == ""
    for f in fakes:
        parent = by_file[f["parent"]]
        assert parent["label"] == "real" and parent["split"] == f["split"]
        assert parent["original_file"] == f["original_file"]
        assert f["generator"] in T.GENERATOR_CYCLE
    # one fake per real, so 1:1 in every split
    assert Counter(f["parent"] for f in fakes) == Counter(r["file"] for r in reals)
    per_split = Counter((r["split"], r["label"]) for r in rows)
    for s in ("train", "val", "test", "test_ood"):
        assert per_split[(s, "real")] == per_split[(s, "fake")] > 0
    # no photo in two splits; the ood group only in test_ood
    splits_of_photo = defaultdict(set)
    for r in rows:
        splits_of_photo[r["original_file"]].add(r["split"])
    assert all(len(v) == 1 for v in splits_of_photo.values())
    assert all((r["split"] == "test_ood") == (r["source_group"] == "mate") for r in rows)
    assert set(gen.calls) == set(T.GENERATOR_CYCLE)
    assert sum(gen.calls.values()) == len(fakes)
    # summary and manifest.json agree with the CSV
    assert summary["total"] == {"real": len(reals), "fake": len(fakes)}
    assert json.loads((out / "summary.json").read_text())["per_split"] == summary["per_split"]
    doc = json.loads((out / "manifest.json").read_text())
    assert doc["columns"] == KF.MANIFEST_COLUMNS and len(doc["images"]) == len(rows)
    attribution = (out / "ATTRIBUTION.md").read_text()
    assert "CC-BY-SA-4.0" in attribution and "Author 0" in attribution
    assert not (out / ".work" / "tiles").exists()
    # the loader reads it back
    samples = load_starter_kit(out)
    assert sum(s.label for s in samples) == len(fakes)
    assert Counter(s.split for s in samples) == Counter(r["split"] for r in rows)


def test_build_is_deterministic(tmp_path: Path):
    build(tmp_path / "a")
    build(tmp_path / "b")
    assert (tmp_path / "a" / "manifest.csv").read_bytes() == (
        tmp_path / "b" / "manifest.csv"
    ).read_bytes()
    other = K.KitConfig(**{**SMALL.__dict__, "seed": 1})
    build(tmp_path / "c", cfg=other)
    a = {r["sha256"] for r in read_rows(tmp_path / "a")}
    c = {r["sha256"] for r in read_rows(tmp_path / "c")}
    assert a != c


def test_build_resumes_without_redoing_work(tmp_path: Path):
    out = tmp_path / "kit"
    build(out)
    before = (out / "manifest.csv").read_bytes()
    _, gen = build(out)
    assert sum(gen.calls.values()) == 0
    assert (out / "manifest.csv").read_bytes() == before
    # lose one fake and corrupt another: exactly those two are made again
    fakes = [r for r in read_rows(out) if r["label"] == "fake"]
    (out / fakes[0]["file"]).unlink()
    (out / fakes[1]["file"]).write_bytes(b"broken")
    _, gen = build(out)
    assert sum(gen.calls.values()) == 2
    assert (out / "manifest.csv").read_bytes() == before
    # a lost real tile is cut again from its photo, identical, without new fakes
    real = next(r for r in read_rows(out) if r["label"] == "real")
    (out / real["file"]).unlink()
    _, gen = build(out)
    assert sum(gen.calls.values()) == 0
    assert hashlib.sha256((out / real["file"]).read_bytes()).hexdigest() == real["sha256"]
    assert (out / "manifest.csv").read_bytes() == before


def test_interrupted_build_resumes_from_partial_manifest(tmp_path: Path):
    out = tmp_path / "kit"

    class Boom(Exception):
        pass

    class FailAfter(StubGenerator):
        def __call__(self, name, tile, params):
            if sum(self.calls.values()) >= 5:
                raise Boom
            return super().__call__(name, tile, params)

    with pytest.raises(Boom):
        build(out, gen=FailAfter())
    assert not (out / "manifest.csv").exists()
    partial = (out / ".work" / "partial.jsonl").read_text().splitlines()
    assert sum('"kind": "fake"' in line for line in partial) == 5
    summary, gen = build(out)
    assert sum(gen.calls.values()) == summary["total"]["fake"] - 5
    ref = tmp_path / "ref"
    build(ref)
    assert (out / "manifest.csv").read_bytes() == (ref / "manifest.csv").read_bytes()


def test_other_settings_need_overwrite(tmp_path: Path):
    out = tmp_path / "kit"
    build(out)
    other = K.KitConfig(**{**SMALL.__dict__, "seed": 7})
    with pytest.raises(SystemExit, match="other settings"):
        build(out, cfg=other)
    summary, _ = build(out, cfg=other, overwrite=True)
    rows = read_rows(out)
    assert len(rows) == summary["total"]["real"] * 2
    assert {p.relative_to(out).as_posix() for p in (out / "images").rglob("*.png")} == {
        r["file"] for r in rows
    }


def test_limit_takes_photos_from_every_group(tmp_path: Path):
    cfg = K.KitConfig(**{**SMALL.__dict__, "limit": 3, "max_tiles_per_photo": 4})
    summary, _ = build(tmp_path / "kit", cfg=cfg)
    rows = read_rows(tmp_path / "kit")
    assert len({r["photo_id"] for r in rows}) == 3
    assert {r["source_group"] for r in rows} == {"gcompris", "lomiri", "mate"}
    assert summary["total"]["real"] <= 12


def test_encode_png_same_for_both_classes():
    a = photo_array(32, 32, 0)
    data = K.encode_png(a)
    im = Image.open(io.BytesIO(data))
    assert im.mode == "RGB" and not im.info.get("dpi") and np.array_equal(np.asarray(im), a)
    with pytest.raises(ValueError):
        K.encode_png(a.astype(np.float32))
    with pytest.raises(ValueError):
        K.encode_png(a[..., 0])


def test_to_uint8_rounds_and_clips():
    from training.data.generators import to_uint8

    x = np.array([-0.2, 0.0, 0.5 / 255, 1.49 / 255, 0.5, 1.0, 1.3], dtype=np.float32)
    assert to_uint8(x).tolist() == [0, 0, 1, 1, 128, 255, 255]


# ---------------------------------------------------------------------------- source readers


def _ar(members: dict[str, bytes]) -> bytes:
    out = b"!<arch>\n"
    for name, data in members.items():
        hdr = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        out += hdr + data + (b"\n" if len(data) % 2 else b"")
    return out


def test_read_deb_without_dpkg(tmp_path: Path):
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w:xz") as tf:
        for name, data in {
            "./usr/share/backgrounds/a.jpg": b"JPEGDATA",
            "./usr/share/doc/pkg/copyright": b"Files: *\nLicense: CC0-1.0\n",
            "./usr/share/other.txt": b"x",
        }.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    deb = tmp_path / "pkg_1.0_all.deb"
    deb.write_bytes(
        _ar({"debian-binary": b"2.0\n", "control.tar.xz": b"x", "data.tar.xz": tar_buf.getvalue()})
    )
    got = S.deb_members(deb, lambda p: p.startswith("usr/share/backgrounds/") or "doc" in p)
    assert got == {
        "usr/share/backgrounds/a.jpg": b"JPEGDATA",
        "usr/share/doc/pkg/copyright": b"Files: *\nLicense: CC0-1.0\n",
    }
    with pytest.raises(S.SourceFetchError):
        S.read_ar(b"not an archive")


def _rcc(files: dict[str, bytes]) -> bytes:
    """A minimal Qt resource file (format 1): root -> one folder -> files."""
    names = b""
    name_off = {}
    for n in ["res", *files]:
        name_off[n] = len(names)
        enc = n.encode("utf-16-be")
        names += struct.pack(">HI", len(n), 0) + enc
    data = b""
    data_off = {}
    for n, b in files.items():
        data_off[n] = len(data)
        data += struct.pack(">I", len(b)) + b
    tree = struct.pack(">IHII", 0, 2, 1, 1)  # root: 1 child at index 1
    tree += struct.pack(">IHII", name_off["res"], 2, len(files), 2)
    for n in files:
        tree += struct.pack(">IHHHI", name_off[n], 0, 0, 0, data_off[n])
    header_len = 20
    tree_off = header_len
    data_start = tree_off + len(tree)
    names_start = data_start + len(data)
    head = b"qres" + struct.pack(">IIII", 1, tree_off, data_start, names_start)
    return head + tree + data + names


def test_parse_rcc_and_carve_by_signature():
    png = io.BytesIO()
    Image.fromarray(photo_array(16, 16, 0)).save(png, format="PNG")
    webp = io.BytesIO()
    Image.fromarray(photo_array(16, 16, 1)).save(webp, format="WEBP")
    blob = _rcc({"a.png": png.getvalue(), "b.webp": webp.getvalue(), "README": b"hello"})
    files = dict(S.parse_rcc(blob))
    assert files == {
        "/res/a.png": png.getvalue(),
        "/res/b.webp": webp.getvalue(),
        "/res/README": b"hello",
    }
    carved = S.carve_images(blob)
    assert sorted(b for _, b in carved) == sorted([png.getvalue(), webp.getvalue()])


def test_gcompris_readme_and_licence_normalisation():
    text = (
        "Copyright: Timothée Giet, 2022\nLicense: CC-BY-SA 4.0\nFiles:\na.svg\nb.svg\n\n"
        "Copyright: © 2014 Jee & Rani Nature Photography\n"
        "Source: https://commons.wikimedia.org/wiki/File:X.jpg\n"
        "License: CC-BY-2.0\nFiles: butterfly.webp\n\n"
        "Files: giraffe.webp\nCopyright: Sergio Cambelo\nLicense: Public domain\n"
    )
    info = L.parse_gcompris_readme(text)
    assert L.normalize_licence(info["a.svg"]["license"]) == "CC-BY-SA-4.0"
    assert L.clean_author(info["butterfly.webp"]["copyright"]) == "Jee & Rani Nature Photography"
    assert info["butterfly.webp"]["source"].endswith("File:X.jpg")
    assert L.normalize_licence(info["giraffe.webp"]["license"]) == "public-domain"
    assert L.normalize_licence("GPLv2+") == "GPL-2+"
    assert L.normalize_licence("CC0") == "CC0-1.0"
    assert L.normalize_licence("CC-BY 3.0") == "CC-BY-3.0"


def test_dep5_lookup():
    text = (
        "Format: x\n\nFiles: *\nCopyright: 2010 Someone\nLicense: GPL-3+\n\n"
        "Files: nature/Aqua.jpg\n       nature/Garden.jpg\n"
        "Copyright: 2008, Charles Barbin <barbinch@free.fr>\nLicense: GPL-2+\n\n"
        "Files: 16.04/Bridge_by_X.jpg\nCopyright: 2018. Sander K\nLicense: CC-BY-SA-4.0\n"
    )
    paras = L.parse_dep5(text)
    p, specific = L.dep5_lookup(paras, "usr/share/backgrounds/mate/nature/Garden.jpg")
    assert specific and p.licence == "GPL-2+" and L.clean_author(p.copyright) == "Charles Barbin"
    p, specific = L.dep5_lookup(paras, "usr/share/backgrounds/Bridge_by_X.jpg")
    assert specific and p.licence == "CC-BY-SA-4.0" and L.clean_author(p.copyright) == "Sander K"
    p, specific = L.dep5_lookup(paras, "usr/share/other.png")
    assert not specific and p.licence == "GPL-3+"


def test_default_cache_honours_env(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("FAKEDETECT_CACHE", str(tmp_path))
    assert S.default_cache_dir() == tmp_path / "sources"
    monkeypatch.delenv("FAKEDETECT_CACHE")
    assert S.default_cache_dir() == Path.home() / ".cache" / "fakedetect" / "sources"


def test_apt_failure_is_a_clear_error(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no apt-get on PATH
    with pytest.raises(S.SourceFetchError, match="apt-get update"):
        S.fetch_deb("gcompris-qt-data", tmp_path)


# ---------------------------------------------------------------------------- integration


@pytest.mark.slow
@pytest.mark.network
def test_build_limit_kit_from_real_sources(tmp_path: Path):
    """Fetch the real packages (cached under $FAKEDETECT_CACHE or ~/.cache/fakedetect) and
    build a tiny kit with every real generator."""
    for tool in ("apt-get", "npm"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    from training.data.__main__ import main

    out = tmp_path / "kit"
    cache = S.default_cache_dir()
    args = ["build-starter-kit", "--out", str(out), "--limit", "6", "--seed", "0", "--no-wild"]
    assert main([*args, "--cache", str(cache)]) == 0
    rows = read_rows(out)
    assert list(rows[0])[:11] == KF.MANIFEST_COLUMNS[:11]
    reals = [r for r in rows if r["label"] == "real"]
    fakes = [r for r in rows if r["label"] == "fake"]
    assert len(reals) == len(fakes) >= 8
    for r in rows:
        data = (out / r["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == r["sha256"]
        im = Image.open(io.BytesIO(data))
        assert (im.format, im.mode, im.size) == ("PNG", "RGB", (256, 256))
        assert r["licence"] and r["source_package"].split()[0] in S.DEB_PACKAGES
    assert {f["generator"] for f in fakes} == set(T.GENERATOR_CYCLE)
    by_file = {r["file"]: r for r in rows}
    assert all(by_file[f["parent"]]["split"] == f["split"] for f in fakes)
    per_split = Counter((r["split"], r["label"]) for r in rows)
    assert {s for s, _ in per_split} == {"train", "val", "test", "test_ood"}
    for s in ("train", "val", "test", "test_ood"):
        assert per_split[(s, "real")] == per_split[(s, "fake")]
    splits_of_photo = defaultdict(set)
    for r in rows:
        splits_of_photo[r["original_file"]].add(r["split"])
    assert len(splits_of_photo) == 6
    assert all(len(v) == 1 for v in splits_of_photo.values())
    assert all(r["source_group"] == "mate" for r in rows if r["split"] == "test_ood")
    # fakes differ from their parents but stay close for the upscalers
    for f in fakes:
        a = np.asarray(Image.open(out / f["file"])).astype(int)
        b = np.asarray(Image.open(out / f["parent"])).astype(int)
        err = np.abs(a - b).mean()
        assert 0 < err < (80 if f["generator"].startswith("style") else 40)
    # a rerun reuses everything
    before = (out / "manifest.csv").read_bytes()
    assert main([*args, "--cache", str(cache)]) == 0
    assert (out / "manifest.csv").read_bytes() == before
    assert os.path.isdir(cache / "debs")
