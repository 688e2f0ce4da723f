"""Command line: ``python -m detector list|scan|explain|inspect``.

Exit codes: 0 success (bad image files are rows with an error, not failures), 2 bad arguments,
no usable model, or an output file that cannot be written (``error: cannot write ...``).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import logging
import sys
import textwrap
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import detector
from detector import quiet
from detector.core.errors import OutputError


def _cmd_list(args: argparse.Namespace) -> int:
    infos = detector.list_models(args.models_dir)
    json.dump([info.to_dict() for info in infos], sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


class _Output:
    """A scan's destination file: rows go out batch by batch, failures become `OutputError`.

    Attributes:
        rows: Rows written so far (some may still sit in the buffer).
    """

    def __init__(self, target: str, total: int) -> None:
        self.target = target
        self.total = total
        self.rows = 0
        self.failed = False
        try:
            self.stream = open(target, "w", newline="")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise self._error(exc) from None

    def _error(self, exc: OSError) -> OutputError:
        self.failed = True
        reason = exc.strerror or str(exc)
        if not self.rows:
            return OutputError(f"cannot write {self.target}: {reason}; nothing was saved")
        return OutputError(
            f"cannot write {self.target}: {reason}; the scan stopped after {self.rows} of "
            f"{self.total} rows and the file is incomplete"
        )

    def write(self, text: str) -> int:
        """Write text; raises `OutputError` naming the file when the system refuses."""
        try:
            return self.stream.write(text)
        except OSError as exc:
            raise self._error(exc) from None

    def flush(self) -> None:
        """Push buffered rows to the file (a full disk shows up here)."""
        try:
            self.stream.flush()
        except OSError as exc:
            raise self._error(exc) from None

    def close(self) -> None:
        """Flush and close; after a failure, close without raising again."""
        if self.failed:
            with contextlib.suppress(OSError):
                self.stream.close()
            return
        try:
            self.stream.close()
        except OSError as exc:
            raise self._error(exc) from None


class _HeadlineRows:
    """Scan rows with the headline columns (`detector.HEADLINE_FIELDS`) added.

    Each readable file's evidence is read once, for all its models' rows; each row's score is
    re-checked under JPEG q90 and a 0.75x resize (`detector.check_stability`). Error rows, and
    rows whose headline cannot be made, get empty columns.
    """

    def __init__(self, detectors: Sequence[Any]) -> None:
        self.by_name = {det.name: det for det in detectors}
        self.path: str | None = None
        self.evidence: detector.EvidenceReport | None = None

    def __call__(self, rows: Iterable[detector.ScanRow]) -> Iterator[_Row]:
        from detector.evidence.assessment import score_headline

        for row in rows:
            extra: dict[str, Any] = dict.fromkeys(detector.HEADLINE_FIELDS)
            if row.p_fake is not None:
                try:
                    if row.path != self.path:
                        self.path, self.evidence = row.path, None
                        self.evidence = detector.inspect_file(row.path)
                    det = self.by_name[row.model]
                    found = score_headline(row.path, det, row.p_fake, evidence=self.evidence)
                    extra = dict(found.to_row())
                except Exception as exc:  # e.g. the file changed since it was scored: no columns
                    logging.getLogger(__name__).warning("no headline for %s: %s", row.path, exc)
            yield _Row({**row.to_dict(), **extra})


class _Row:
    """A row as a dict, with the ``to_dict`` the writers call."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        return self.data


def _write_rows(
    rows: Iterable[Any], out: Any, fmt: str, fields: Sequence[str] = detector.SCAN_FIELDS
) -> None:
    """Write rows as they come, flushing the opening bytes at once (a probe of the output)."""
    counted = out if isinstance(out, _Output) else None
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=list(fields))
        writer.writeheader()
        out.flush()
        for row in rows:
            writer.writerow(row.to_dict())
            if counted:
                counted.rows += 1
    elif fmt == "jsonl":
        for row in rows:
            out.write(json.dumps(row.to_dict()) + "\n")
            if counted:
                counted.rows += 1
    else:  # the text json.dump(rows, indent=2) writes, one row at a time
        out.write("[")
        out.flush()
        separator = "\n"
        for row in rows:
            out.write(separator + textwrap.indent(json.dumps(row.to_dict(), indent=2), "  "))
            separator = ",\n"
            if counted:
                counted.rows += 1
        out.write("\n]\n" if separator != "\n" else "]\n")


def _cmd_scan(args: argparse.Namespace) -> int:
    names = detector.resolve_model_names(args.model, args.models_dir)
    files = detector.expand_paths(args.paths)
    if args.output and Path(args.output).is_dir():  # said before the models load
        raise OutputError(f"cannot write {args.output}: it is a folder")
    detectors = [detector.load_model(name, args.models_dir) for name in names]
    # opened before the scan: a folder, a missing permission or a read-only file system stop it
    # here; the opening bytes are flushed at once, so does a full device (csv and json)
    out = _Output(args.output, len(files) * len(detectors)) if args.output else sys.stdout
    bar = None
    try:
        if not args.quiet and len(files) > 1:
            from tqdm import tqdm

            bar = tqdm(total=len(files), unit="file", file=sys.stderr, desc="scanning")

        def batch_done(count: int) -> None:
            if bar is not None:
                bar.update(count)
            out.flush()  # rows reach the file batch by batch; a full disk stops the scan here

        rows: Iterable[Any] = detector.scan(
            files, detectors, batch_size=args.batch_size, progress=batch_done
        )
        fields = detector.SCAN_FIELDS
        if args.headline:
            rows = _HeadlineRows(detectors)(rows)
            fields = (*fields, *detector.HEADLINE_FIELDS)
        _write_rows(rows, out, args.format, fields)
        out.flush()
    finally:
        if bar is not None:
            bar.close()
        if out is not sys.stdout:
            out.close()
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    from PIL import Image

    det = detector.load_model(args.model, args.models_dir)
    result = det.explain(args.image, args.method, alpha=args.alpha)
    Image.fromarray(result.overlay).save(args.output)
    json.dump(
        {**result.prediction.to_dict(), "method": result.method, "overlay": str(args.output)},
        sys.stdout,
        indent=2,
    )
    sys.stdout.write("\n")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    model = detector.load_model(args.model, args.models_dir) if args.model else None
    found = detector.assess(args.file, model)
    report = found.evidence if found.evidence is not None else detector.inspect_file(args.file)
    if args.format == "json":
        data = {"verdict": found.headline.to_dict(), **report.to_dict()}
        if model is not None:
            data["prediction"] = found.prediction.to_dict() if found.prediction else None
            data["stability"] = found.stability.to_dict() if found.stability else None
        json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(found.headline.to_text() + "\n" + report.to_text())
    return 0


# --------------------------------------------------------------------------- scan-beam
class _PassThroughParser(argparse.ArgumentParser):
    """A sub-command parser that keeps unknown options (Beam's) instead of rejecting them."""

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        parsed, unknown = super().parse_known_args(args, namespace)
        parsed.beam_args = [*getattr(parsed, "beam_args", []), *unknown]
        return parsed, []


def _add_scan_beam_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``scan-beam`` sub-command (Apache Beam itself loads only when it runs)."""
    from detector.scale.beam import FORMATS
    from detector.scale.beam_steps import SHARE_MODEL_BYTES

    p = subparsers.add_parser(
        "scan-beam",
        help="scan files matching a pattern on Apache Beam (optional extra); sharded output",
        description=(
            "Score every file matching INPUT (a Beam file pattern; ** crosses folders; a local "
            "folder means everything under it) with RunInference, and write sharded CSV or JSON "
            "Lines with the schema of `scan`. Other options (--runner, --project, "
            "--direct_num_workers=2, ...) go to Beam; give them as --name=value."
        ),
        allow_abbrev=False,
    )
    p.__class__ = _PassThroughParser  # Beam's own options pass through to PipelineOptions
    p.add_argument("input", help="file pattern, e.g. 'photos/**' or 'gs://bucket/img/*.jpg'")
    p.add_argument("--output", "-o", required=True, help="shard prefix (local or gs://...)")
    p.add_argument(
        "--model", action="append", help="model name, repeatable, or 'all' (default: the best)"
    )
    p.add_argument("--format", choices=tuple(FORMATS), default="csv")
    p.add_argument("--runner", default=None, help="Beam runner (default: DirectRunner)")
    p.add_argument("--batch-size", type=int, default=32, help="largest RunInference batch")
    p.add_argument("--min-batch-size", type=int, default=1, help="smallest RunInference batch")
    p.add_argument("--num-shards", type=int, default=0, help="output shards (0: runner decides)")
    p.add_argument(
        "--share-models",
        choices=("auto", "always", "never"),
        default="auto",
        help="load a model once per machine for all its worker processes (auto: weights >= "
        f"{SHARE_MODEL_BYTES // 2**20} MB)",
    )
    p.add_argument(
        "--workers-models-dir",
        help="models folder as the workers see it, if its path differs there (default: "
        "--models-dir / FAKEDETECT_MODELS_DIR made absolute; neither: the workers' own)",
    )
    p.set_defaults(func=_cmd_scan_beam, beam_args=[])
    return p


def _cmd_scan_beam(args: argparse.Namespace) -> int:
    """Run ``scan-beam``; prints the written shards, one per line."""
    from detector.scale.beam import require_beam, run_scan_beam

    require_beam()
    if args.min_batch_size < 1 or args.min_batch_size > args.batch_size:
        raise detector.DetectorError(
            "--min-batch-size must be between 1 and --batch-size", code="usage"
        )
    names = detector.resolve_model_names(args.model, args.models_dir)
    shards = run_scan_beam(
        args.input,
        args.output,
        names,
        args.models_dir,
        fmt=args.format,
        pipeline_args=args.beam_args,
        runner=args.runner,
        num_shards=args.num_shards,
        min_batch_size=args.min_batch_size,
        max_batch_size=args.batch_size,
        share_models=args.share_models,
        workers_models_dir=args.workers_models_dir,
    )
    for shard in shards:
        sys.stdout.write(shard + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m detector", description="Detect AI-generated images with explainable models."
    )
    parser.add_argument("--models-dir", help="folder of trained models (default: assets/models)")
    verbose_help = (
        "log to stderr at INFO level, with TensorFlow's own start-up and runtime messages"
    )
    parser.add_argument("--verbose", "-v", action="store_true", help=verbose_help)
    sub = parser.add_subparsers(dest="command", required=True)

    p_list = sub.add_parser("list", help="list models as JSON (trained or recipe only)")
    p_list.set_defaults(func=_cmd_list)

    p_scan = sub.add_parser("scan", help="score files and folders; one row per (file, model)")
    p_scan.add_argument("paths", nargs="+", help="image files and/or folders (recursive)")
    p_scan.add_argument(
        "--model", action="append", help="model name, repeatable, or 'all' (default: the best)"
    )
    p_scan.add_argument("--format", choices=("csv", "json", "jsonl"), default="csv")
    p_scan.add_argument("--output", "-o", help="write here instead of stdout")
    p_scan.add_argument("--batch-size", type=int, default=32)
    p_scan.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p_scan.add_argument(
        "--headline",
        action="store_true",
        help="add the combined verdict (headline, headline_title, headline_basis): reads each "
        "file's provenance and re-scores it under JPEG q90 and a 0.75x resize (about 3x slower)",
    )
    p_scan.set_defaults(func=_cmd_scan)

    _add_scan_beam_parser(sub)  # scan-beam: the same rows on Apache Beam (optional extra)

    p_exp = sub.add_parser("explain", help="save a heatmap overlay for one image")
    p_exp.add_argument("image")
    p_exp.add_argument("--model", default=None)
    p_exp.add_argument("--method", default="gradcam", choices=detector.EXPLAIN_METHODS)
    p_exp.add_argument("--alpha", type=float, default=detector.DEFAULT_ALPHA)
    p_exp.add_argument("--output", "-o", required=True, help="PNG file to write")
    p_exp.set_defaults(func=_cmd_explain)

    p_ins = sub.add_parser(
        "inspect",
        help="the combined verdict and the provenance evidence in a file's metadata (no model "
        "is run unless --model is given)",
    )
    p_ins.add_argument("file", help="image file to inspect")
    p_ins.add_argument(
        "--model", default=None, help="also score the file with this model and check stability"
    )
    p_ins.add_argument("--format", choices=("json", "text"), default="text")
    p_ins.set_defaults(func=_cmd_inspect)
    for command in sub.choices.values():  # `--verbose` after the command works too
        command.add_argument(
            "--verbose", "-v", action="store_true", default=argparse.SUPPRESS, help=verbose_help
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet.configure(verbose=args.verbose)  # before TensorFlow loads: its start-up lines too
    level = logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger(__name__).info("models folder: %s", detector.models_dir(args.models_dir))
    if getattr(args, "batch_size", 1) < 1:
        parser.error("--batch-size must be at least 1")
    try:
        return args.func(args)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except detector.DetectorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. piped into `head`
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
