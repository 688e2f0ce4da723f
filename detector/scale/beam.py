"""Scale-out scanning on Apache Beam: the rows of `detector.scan`, computed on any Beam runner.

The pipeline lists a local folder as `detector.expand_paths` does (other patterns are matched
with Beam's file IO), decodes each file as `detector.scan` does (a bad file becomes one error
row per model, never a failed pipeline), makes each model's inputs once (every patch of a large
image for a ``native_crop`` model: `detector.scale.batch.model_inputs`), scores batches with
``RunInference`` and a `DetectorModelHandler` (which loads models with `detector.load_model`:
card, checksum and Keras safe mode, once per worker) through the same
`detector.scale.batch.whole_image_p_fake` as ``scan``, and writes sharded CSV or JSON Lines with
exactly the `detector.SCAN_FIELDS` schema.

Apache Beam is an optional extra (``pip install .[beam]`` or ``-r requirements-beam.txt``): this
module imports it only when a pipeline is built, so ``import detector`` never needs it.

Example:
    >>> from detector.scale.beam import run_scan_beam                              # doctest: +SKIP
    >>> run_scan_beam("photos/**", "out/scan", ["tiny_cnn"], fmt="jsonl")    # doctest: +SKIP
    ['out/scan-00000-of-00001.jsonl']
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detector.core.errors import DetectorError, error_text
from detector.core.models import load_model, resolve_model_names, trained_cards
from detector.core.patches import MAX_PATCHES
from detector.scale.batch import (
    SCAN_FIELDS,
    model_inputs,
    uses_scene_view,
    whole_image_p_fake,
)
from detector.scale.beam_steps import (
    _decode,
    _error_rows,
    _result_row,
    csv_line,
    is_visible,
    jsonl_line,
    list_folder,
    local_folder,
    resolve_pattern,
    share_decision,
    worker_models_dir,
)

log = logging.getLogger(__name__)

#: What to tell a user whose environment lacks Apache Beam.
INSTALL_HINT = "install the beam extra: pip install .[beam] (or -r requirements-beam.txt)"
#: Output formats of `run_scan_beam` and their shard suffixes.
FORMATS: dict[str, str] = {"csv": ".csv", "jsonl": ".jsonl"}
#: Metrics namespace of the pipeline's counters.
METRICS_NAMESPACE = "fakedetect"


class BeamNotInstalledError(DetectorError):
    """Apache Beam is not installed (it is the optional ``beam`` extra)."""

    code = "beam_not_installed"


def require_beam() -> Any:
    """Import and return the ``apache_beam`` module.

    Raises:
        BeamNotInstalledError: naming how to install the extra.
    """
    try:
        import apache_beam
    except ImportError as exc:
        raise BeamNotInstalledError(f"{INSTALL_HINT} ({exc})") from None
    return apache_beam


# --------------------------------------------------------------------------- Beam types
# Classes that subclass Beam types are built on first use (module ``__getattr__`` below), so that
# this module imports without Beam, while pickles still name them ``detector.scale.beam.X`` and
# workers rebuild them by import.
_BEAM_TYPES = ("DetectorModelHandler", "DecodeImages", "ScanFiles")


def _define_beam_types() -> dict[str, type]:
    beam = require_beam()
    from apache_beam.ml.inference.base import (
        KeyedModelHandler,
        ModelHandler,
        PredictionResult,
        RunInference,
    )

    class DetectorModelHandler(ModelHandler):
        """A RunInference model handler for this package's models, loaded by name.

        Each example is one image's model inputs (`detector.scale.batch.model_inputs`: an
        (n, size, size, 3) array, n > 1 for the patches of a large image read by a
        ``native_crop`` model). A batch's inputs go through the model together and each image's
        P(fake) is `detector.scale.batch.whole_image_p_fake`'s, the one ``scan`` and
        `detector.Detector.predict` give. Each result is a ``PredictionResult`` whose
        ``inference`` is ``(p_fake, label, error)`` and whose ``model_id`` is the model name;
        the example is not carried along (it is only pixels).

        Args:
            model_name: Name of a trained model.
            models_dir: Models folder as the workers see it; None for their package's default.
            min_batch_size: Smallest batch ``BatchElements`` forms.
            max_batch_size: Largest batch (the images per model call; each adds its patches).
            share_across_processes: Load the model once per machine and share it between the
                worker processes (for models too large to hold one copy per process).
        """

        def __init__(
            self,
            model_name: str,
            models_dir: str | None = None,
            *,
            min_batch_size: int = 1,
            max_batch_size: int = 32,
            share_across_processes: bool = False,
        ) -> None:
            super().__init__(
                min_batch_size=min_batch_size,
                max_batch_size=max_batch_size,
                large_model=share_across_processes,
            )
            self.model_name = model_name
            self.models_dir = models_dir
            self._card: Any = None

        def load_model(self) -> Any:
            """Load the model with its card, checksum and safe mode (once per worker)."""
            return load_model(self.model_name, self.models_dir)

        def run_inference(
            self,
            batch: Sequence[np.ndarray],
            model: Any,
            inference_args: dict[str, Any] | None = None,
        ) -> Iterable[Any]:
            """Score one batch; a failing model gives error results, as `detector.scan` does."""
            if self._card is None:  # the card, not the model: a shared model is a proxy
                self._card = trained_cards(self.models_dir)[self.model_name]
            try:
                probs = whole_image_p_fake(
                    model,
                    batch,
                    self._card.temperature,
                    scene=uses_scene_view(self._card.spec.preprocessing),
                )
            except Exception as exc:  # one failing batch must not fail the pipeline
                log.exception("model %s failed on a batch", self.model_name)
                failed = (None, None, f"model_failed: {type(exc).__name__}: {exc}")
                return [PredictionResult(None, failed, self.model_name) for _ in batch]
            results = []
            for p in probs:
                p_fake = float(p)
                inference = (p_fake, self._card.label_for(p_fake), None)
                results.append(PredictionResult(None, inference, self.model_name))
            return results

        def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
            """Bytes of a batch, for Beam's metrics (without pickling it)."""
            return int(sum(np.asarray(x).nbytes for x in batch))

        def get_metrics_namespace(self) -> str:
            """Namespace of RunInference's metrics."""
            return METRICS_NAMESPACE

        def __repr__(self) -> str:
            return f"DetectorModelHandler({self.model_name!r}, models_dir={self.models_dir!r})"

    class DecodeImages(beam.DoFn):
        """Decode files and make their model inputs, once per distinct preprocessing.

        The main output holds error rows (one per model for a file that is not a readable
        image); output ``m{i}`` holds ``(path, inputs)`` for the i-th model, its
        `detector.scale.batch.model_inputs` (the patches `detector.Detector.predict` scores, at most
        `detector.core.patches.MAX_PATCHES`, as many as the workers' loaded models read). Full-size
        pixels never leave this step: only the model inputs, as uint8, do.

        Args:
            model_names: Model names, in output order.
            models_dir: Models folder as the workers see it (cards give the preprocessing).
        """

        def __init__(self, model_names: Sequence[str], models_dir: str | None) -> None:
            self.model_names = list(model_names)
            self.models_dir = models_dir
            self._preprocessing: list[Any] = []
            self._decoded = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "images_decoded")
            self._failed = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "images_failed")

        def setup(self) -> None:
            """Read the models' cards on the worker."""
            resolve_model_names(self.model_names, self.models_dir, check=True)
            cards = trained_cards(self.models_dir)
            self._preprocessing = [cards[name].spec.preprocessing for name in self.model_names]

        def process(self, element: Any) -> Iterator[Any]:
            """Yield error rows, or one tagged model input per model."""
            path, item = _decode(element)
            if isinstance(item, DetectorError):
                self._failed.inc()
                yield from _error_rows(path, self.model_names, error_text(item))
                return
            self._decoded.inc()
            done: dict[Any, np.ndarray] = {}
            for index, (name, prep) in enumerate(
                zip(self.model_names, self._preprocessing, strict=True)
            ):
                try:
                    if prep not in done:
                        done[prep] = model_inputs(item, prep, MAX_PATCHES)
                except Exception as exc:  # as `scan`: the model's rows for this image fail
                    log.exception("preprocessing for %s failed on %s", name, path)
                    error = f"model_failed: {type(exc).__name__}: {exc}"
                    yield from _error_rows(path, [name], error)
                    continue
                yield beam.pvalue.TaggedOutput(f"m{index}", (path, done[prep]))

    class ScanFiles(beam.PTransform):
        """Files (Beam ``ReadableFile`` objects or path strings) to `detector.scan` row dicts.

        Args:
            model_names: Trained model names.
            models_dir: Models folder as the workers see it; None for their package's default.
            min_batch_size: Smallest RunInference batch.
            max_batch_size: Largest RunInference batch.
            share: Model name to whether it is shared across a machine's processes.
        """

        def __init__(
            self,
            model_names: Sequence[str],
            models_dir: str | None = None,
            *,
            min_batch_size: int = 1,
            max_batch_size: int = 32,
            share: dict[str, bool] | None = None,
        ) -> None:
            super().__init__()
            self.model_names = list(model_names)
            self.models_dir = models_dir
            self.min_batch_size = min_batch_size
            self.max_batch_size = max_batch_size
            self.share = share or {}

        def expand(self, files: Any) -> Any:
            tags = [f"m{i}" for i in range(len(self.model_names))]
            decoded = files | "Decode" >> beam.ParDo(
                DecodeImages(self.model_names, self.models_dir)
            ).with_outputs(*tags, main="errors")
            parts = [decoded.errors]
            for tag, name in zip(tags, self.model_names, strict=True):
                handler = DetectorModelHandler(
                    name,
                    self.models_dir,
                    min_batch_size=self.min_batch_size,
                    max_batch_size=self.max_batch_size,
                    share_across_processes=self.share.get(name, False),
                )
                parts.append(
                    decoded[tag]
                    | f"RunInference {name}" >> RunInference(KeyedModelHandler(handler))
                    | f"Rows {name}" >> beam.MapTuple(_result_row)
                )
            return parts | "AllRows" >> beam.Flatten()

    built = {
        "DetectorModelHandler": DetectorModelHandler,
        "DecodeImages": DecodeImages,
        "ScanFiles": ScanFiles,
    }
    for name, cls in built.items():
        cls.__module__ = __name__
        cls.__qualname__ = name
    return built


def __getattr__(name: str) -> Any:
    if name in _BEAM_TYPES:
        globals().update(_define_beam_types())
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _beam_type(name: str) -> Any:
    return getattr(sys.modules[__name__], name)


def _visible_file(metadata: Any, pattern: str) -> bool:
    return is_visible(metadata.path, pattern)


# --------------------------------------------------------------------------- pipelines
def build_scan_pipeline(
    pipeline: Any,
    pattern: str,
    output: str,
    model_names: Sequence[str],
    models_dir: str | None = None,
    *,
    fmt: str = "csv",
    num_shards: int = 0,
    min_batch_size: int = 1,
    max_batch_size: int = 32,
    share: dict[str, bool] | None = None,
) -> Any:
    """Add the scan to a Beam pipeline: match, read, decode, RunInference, write shards.

    A local ``folder/**`` (what `resolve_pattern` makes of a folder) is listed by `list_folder`
    as ``scan`` lists it, so every entry under it gets its rows; other patterns are matched by
    Beam (whose local listing leaves out broken links, links to folders and unlistable
    sub-folders).

    Args:
        pipeline: A ``beam.Pipeline``.
        pattern: Beam file pattern (local, ``gs://``, ``s3://``...; ``**`` crosses folders).
        output: Shard prefix; shards are ``PREFIX-SSSSS-of-NNNNN.csv`` (or ``.jsonl``).
        model_names: Trained model names.
        models_dir: Models folder as the workers see it; None for their package's default.
        fmt: ``csv`` (each shard starts with the header) or ``jsonl``.
        num_shards: Number of shards; 0 lets the runner decide.
        min_batch_size: Smallest RunInference batch.
        max_batch_size: Largest RunInference batch.
        share: Model name to whether it is shared across a machine's processes.

    Returns:
        The PCollection of written shard names.
    """
    beam = require_beam()
    from apache_beam.io import fileio

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    folder = local_folder(pattern)
    if folder is not None:  # listed as `scan` lists it: no entry dropped silently
        files = (
            pipeline
            | "Folder" >> beam.Create([folder])
            | "List" >> beam.FlatMap(list_folder)
            | "Spread" >> beam.Reshuffle()
        )
    else:
        files = (
            pipeline
            | "Match" >> fileio.MatchFiles(pattern)
            | "SkipHidden" >> beam.Filter(_visible_file, pattern)
            | "Spread" >> beam.Reshuffle()
            | "Read" >> fileio.ReadMatches()
        )
    rows = files | "Scan" >> _beam_type("ScanFiles")(
        model_names,
        models_dir,
        min_batch_size=min_batch_size,
        max_batch_size=max_batch_size,
        share=share,
    )
    header = ",".join(SCAN_FIELDS) if fmt == "csv" else None
    return (
        rows
        | "Format" >> beam.Map(csv_line if fmt == "csv" else jsonl_line)
        | "Write"
        >> beam.io.WriteToText(
            output, file_name_suffix=FORMATS[fmt], num_shards=num_shards, header=header
        )
    )


def pipeline_options(pipeline_args: Sequence[str] = (), runner: str | None = None) -> Any:
    """Beam ``PipelineOptions`` from command-line style arguments (DirectRunner by default)."""
    require_beam()
    from apache_beam.options.pipeline_options import PipelineOptions

    args = list(pipeline_args)
    if runner:
        args.append(f"--runner={runner}")
    elif not any(a == "--runner" or a.startswith("--runner=") for a in args):
        args.append("--runner=DirectRunner")
    return PipelineOptions(args)


def run_scan_beam(
    pattern: str,
    output: str,
    model_names: Sequence[str],
    models_dir: str | Path | None = None,
    *,
    fmt: str = "csv",
    pipeline_args: Sequence[str] = (),
    runner: str | None = None,
    num_shards: int = 0,
    min_batch_size: int = 1,
    max_batch_size: int = 32,
    share_models: str = "auto",
    workers_models_dir: str | None = None,
) -> list[str]:
    """Scan files matching a pattern on a Beam runner and wait for the shards.

    Args:
        pattern: Beam file pattern; a local folder means everything under it.
        output: Shard prefix (local path or ``gs://...``).
        model_names: Trained model names.
        models_dir: Models folder on this machine (default ``$FAKEDETECT_MODELS_DIR`` or the
            package's); also handed to the workers, unless ``workers_models_dir`` is given.
        fmt: ``csv`` or ``jsonl``.
        pipeline_args: Any other Beam options, e.g. ``["--direct_num_workers=2"]``.
        runner: Beam runner; default DirectRunner unless ``pipeline_args`` name one.
        num_shards: Number of output shards; 0 lets the runner decide.
        min_batch_size: Smallest RunInference batch.
        max_batch_size: Largest RunInference batch.
        share_models: ``auto``, ``always`` or ``never`` (see `share_decision`).
        workers_models_dir: The models folder as the workers see it, when its path there differs
            (e.g. inside a custom container); default: see `worker_models_dir`.

    Returns:
        The written shard names, sorted.

    Raises:
        BeamNotInstalledError: Beam is missing.
        FileNotFoundError: a local path without wildcards that does not exist.
        ModelNotFoundError, ModelNotTrainedError: a name is not a trained model.
        DetectorError: a models folder given as a URL.
    """
    beam = require_beam()
    from apache_beam.io.filesystems import FileSystems

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    workers_dir = worker_models_dir(workers_models_dir or models_dir)
    pattern = resolve_pattern(pattern)
    resolve_model_names(model_names, models_dir, check=True)
    share = share_decision(model_names, models_dir, share_models)
    options = pipeline_options(pipeline_args, runner)
    with beam.Pipeline(options=options) as pipeline:
        build_scan_pipeline(
            pipeline,
            pattern,
            output,
            model_names,
            workers_dir,
            fmt=fmt,
            num_shards=num_shards,
            min_batch_size=min_batch_size,
            max_batch_size=max_batch_size,
            share=share,
        )
    matched = FileSystems.match([f"{output}-*-of-*{FORMATS[fmt]}"])[0].metadata_list
    return sorted(meta.path for meta in matched)


def beam_throughput(
    files: Sequence[str | Path],
    model_names: Sequence[str],
    models_dir: str | Path | None = None,
    *,
    pipeline_args: Sequence[str] = (),
    min_batch_size: int = 1,
    max_batch_size: int = 32,
) -> dict[str, Any]:
    """Time the scan pipeline (decode, preprocess, RunInference, rows) over a list of files.

    Runs on the DirectRunner (in-process unless ``pipeline_args`` say otherwise); pipeline
    start-up and model loading are included, as in a real run. Rows are counted, not written.

    Args:
        files: Files to scan.
        model_names: Trained model names.
        models_dir: Models folder (default ``$FAKEDETECT_MODELS_DIR`` or the package's).
        pipeline_args: Extra Beam options, e.g. ``["--direct_running_mode=multi_processing"]``.
        min_batch_size: Smallest RunInference batch.
        max_batch_size: Largest RunInference batch.

    Returns:
        ``{"images", "models", "images_per_s", "seconds", "rows"}``.
    """
    beam = require_beam()
    from apache_beam.metrics.metric import MetricsFilter

    resolve_model_names(model_names, models_dir, check=True)
    paths = [str(f) for f in files]
    options = pipeline_options(pipeline_args)
    start = time.perf_counter()
    pipeline = beam.Pipeline(options=options)
    counter = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "rows")
    _ = (
        pipeline
        | "Files" >> beam.Create(paths)
        | "Spread" >> beam.Reshuffle()
        | "Scan"
        >> _beam_type("ScanFiles")(
            model_names,
            worker_models_dir(models_dir),
            min_batch_size=min_batch_size,
            max_batch_size=max_batch_size,
        )
        | "Count" >> beam.Map(lambda _row: counter.inc())
    )
    result = pipeline.run()
    result.wait_until_finish()
    seconds = time.perf_counter() - start
    query = result.metrics().query(
        MetricsFilter().with_namespace(METRICS_NAMESPACE).with_name("rows")
    )
    rows = sum(c.committed or 0 for c in query["counters"])
    return {
        "images": len(paths),
        "models": len(model_names),
        "images_per_s": len(paths) / seconds if seconds > 0 else float("inf"),
        "seconds": seconds,
        "rows": rows,
    }
