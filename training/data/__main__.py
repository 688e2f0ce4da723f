"""Command line: ``python -m training.data build-starter-kit --out DIR [options]``.

Wild pool (see :mod:`training.data.wild`): ``fetch-wild --out DIR`` downloads and verifies it,
``wild-splits`` prints the split by source repository, ``wild-manifest`` regenerates the
repo's manifest copy from a local pool.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.data", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser(
        "build-starter-kit",
        help="fetch the open sources and build the real-vs-generated tile kit",
    )
    b.add_argument("--out", required=True, type=Path, help="kit directory (created)")
    b.add_argument("--limit", type=int, default=None, help="use only N photos (a tiny kit)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--tile", type=int, default=256, help="tile size in pixels (default 256)")
    b.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="source cache (default $FAKEDETECT_CACHE/sources or ~/.cache/fakedetect/sources)",
    )
    b.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    b.add_argument("--scales", type=int, default=3, help="random resizes per photo (default 3)")
    b.add_argument(
        "--max-tiles-per-photo",
        type=int,
        default=None,
        help="cap on tiles per photo (default 64; 4 with --limit)",
    )
    b.add_argument(
        "--overwrite", action="store_true", help="replace a kit built with other settings"
    )
    _add_wild_options(b)
    b.add_argument(
        "--no-wild", action="store_true", help="build the package part only (no wild pool)"
    )
    a = sub.add_parser(
        "add-wild", help="add the wild pool and the negative controls to a built kit"
    )
    a.add_argument("kit", type=Path)
    a.add_argument("--seed", type=int, default=0)
    _add_wild_options(a)
    c = sub.add_parser(
        "shortcut-check", help="can file type, size, metadata or JPEG grid tell a kit's classes?"
    )
    c.add_argument("kit", type=Path)
    c.add_argument("--split", action="append", help="splits to check (default: val)")
    d = sub.add_parser("describe", help="print the summary of a built kit")
    d.add_argument("kit", type=Path)
    _add_wild_commands(sub)
    args = ap.parse_args(argv)

    if args.cmd in ("fetch-wild", "wild-splits", "wild-manifest"):
        return _run_wild(args)
    if args.cmd == "shortcut-check":
        from .shortcuts import kit_shortcut_report

        report = kit_shortcut_report(args.kit, tuple(args.split or ["val"]))
        for name, auc in report.items():
            print(f"{name:6s} ROC-AUC from file traits alone: {auc:.3f} (0.5 = no shortcut)")
        return 0
    if args.cmd == "add-wild":
        return _add_wild(args, args.kit)
    if args.cmd == "describe":
        import json

        from .kit_files import format_summary

        print(format_summary(json.loads((args.kit / "summary.json").read_text())))
        return 0

    from .kit import KitConfig, build_starter_kit
    from .sources import SourceFetchError

    if args.limit is not None and args.limit < 1:
        ap.error("--limit must be at least 1")
    if args.tile < 32 or args.tile % 4:
        ap.error("--tile must be a multiple of 4, at least 32")
    max_tiles = args.max_tiles_per_photo
    if max_tiles is None:
        max_tiles = 4 if args.limit else 64
    cfg = KitConfig(
        tile=args.tile,
        seed=args.seed,
        limit=args.limit,
        scales=args.scales,
        max_tiles_per_photo=max_tiles,
    )
    try:
        build_starter_kit(
            args.out,
            cfg,
            cache=args.cache,
            workers=args.workers,
            overwrite=args.overwrite,
        )
    except SourceFetchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0 if args.no_wild else _add_wild(args, args.out)


def _add_wild_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--wild",
        type=Path,
        default=None,
        help="the wild pool (default $FAKEDETECT_WILD, else ../shared/data/wild if present)",
    )
    p.add_argument(
        "--wild-limit", type=int, default=None, help="use only N wild images per class (tests)"
    )
    _range_option(
        p,
        "--wild-shrink",
        "range of the neutral shrink factor of the wild images (default 0.5 0.8; below 1, which "
        "erases old compression grids)",
    )
    _range_option(
        p,
        "--wild-context",
        "range of how many windows fit across a large file's shorter side, which sets the scale "
        "a window is read at (default 1.0 1.5: a window shows most of the scene; larger values "
        "keep a gallery image near its own resolution)",
    )
    p.add_argument(
        "--wild-train-views",
        type=int,
        default=1,
        metavar="N",
        help="neutral views (random windows and shrinks) of each wild train image (default 1; "
        "validation and test keep one)",
    )


def _range_option(p: argparse.ArgumentParser, flag: str, help: str) -> None:
    """A LOW HIGH pair of floats (checked where it is used)."""
    p.add_argument(flag, type=float, nargs=2, default=None, metavar=("LOW", "HIGH"), help=help)


def _spread(rows: list, per_class: int) -> list:
    """At most ``per_class`` rows of each label, one repository after another (sorted)."""
    chosen = []
    for label in ("fake", "real"):
        by_repo: dict[str, list] = {}
        for r in sorted(rows, key=lambda r: r.file):
            if r.label == label:
                by_repo.setdefault(r.source_repo, []).append(r)
        queues = [by_repo[k] for k in sorted(by_repo)]
        taken = 0
        while taken < per_class and any(queues):
            for q in queues:
                if q and taken < per_class:
                    chosen.append(q.pop(0))
                    taken += 1
    return chosen


def _add_wild(args: argparse.Namespace, kit: Path) -> int:
    from .neutral import NeutralSettings
    from .wild import default_wild_dir, read_wild_manifest
    from .wild_kit import add_wild

    wild_dir = args.wild or default_wild_dir()
    if wild_dir is None or not Path(wild_dir).is_dir():
        print(
            "error: no wild pool found: pass --wild DIR, set FAKEDETECT_WILD, or download it "
            "with `python -m training.data fetch-wild --out DIR` (or build with --no-wild)",
            file=sys.stderr,
        )
        return 2
    rows = read_wild_manifest()
    if args.wild_limit:  # N per class, taken in turn from each source repository
        rows = _spread(rows, args.wild_limit)
    try:
        settings = None
        changes: dict = {}
        if args.wild_shrink:
            low, high = args.wild_shrink
            if not 0 < low <= high < 1:
                raise ValueError(f"--wild-shrink needs 0 < LOW <= HIGH < 1, got {low} {high}")
            changes["factor"] = (low, high)
        if args.wild_context:
            low, high = args.wild_context
            if not 1 <= low <= high:
                raise ValueError(f"--wild-context needs 1 <= LOW <= HIGH, got {low} {high}")
            changes["context"] = (low, high)
        if changes:
            settings = NeutralSettings(**changes)
        summary = add_wild(
            kit,
            wild_dir,
            seed=args.seed,
            rows=rows,
            settings=settings,
            train_views=args.wild_train_views,
        )
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for key, count in summary["wild"]["per_origin"].items():
        print(f"{key:32s} {count:6d}")
    return 0


def _add_wild_commands(sub: argparse._SubParsersAction) -> None:
    """The wild-pool subcommands: fetch-wild, wild-splits, wild-manifest."""
    from .wild import DEFAULT_MANIFEST

    f = sub.add_parser("fetch-wild", help="download and verify the wild pool (GitHub files)")
    f.add_argument("--out", required=True, type=Path, help="pool directory (created)")
    f.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST, help="wild manifest CSV")
    f.add_argument("--base-url", default="https://raw.githubusercontent.com")
    f.add_argument("--workers", type=int, default=4, help="parallel downloads (default 4)")
    s = sub.add_parser("wild-splits", help="print the wild pool's split by source repository")
    s.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    s.add_argument("--seed", type=int, default=0)
    m = sub.add_parser("wild-manifest", help="regenerate the wild manifest copy from a pool")
    m.add_argument("--wild", required=True, type=Path, help="local pool with its manifest.csv")
    m.add_argument("--out", type=Path, default=DEFAULT_MANIFEST)


def _run_wild(args: argparse.Namespace) -> int:
    """Run one wild-pool subcommand; 1 when a fetch left rows unverified."""
    from . import wild

    try:
        return _wild_command(args, wild)
    except (OSError, ValueError) as e:  # WildManifestError is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return 2


def _wild_command(args: argparse.Namespace, wild) -> int:
    if args.cmd == "wild-manifest":
        rows = wild.build_wild_manifest(args.wild, args.out)
        print(f"wrote {args.out} ({len(rows)} rows)")
        return 0
    rows = wild.read_wild_manifest(args.manifest)
    if args.cmd == "wild-splits":
        print(wild.describe_splits(rows, wild.assign_wild_splits(rows, seed=args.seed)))
        return 0
    report = wild.fetch_wild(args.out, rows, base_url=args.base_url, workers=args.workers)
    print(report.summary(), file=sys.stdout if report.ok else sys.stderr)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
