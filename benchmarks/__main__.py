"""``python -m benchmarks --quick|--full``: measure everything side by side in one run.

Writes ``benchmarks/results.md`` (table + machine info), ``benchmarks/results.json`` and
``benchmarks/results.png``. Quick mode uses fewer repeats and files and is what CI runs (no
thresholds are enforced anywhere: the targets are printed next to the figures).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from benchmarks.core import (
    app_round_trips,
    explanation_cost,
    machine_info,
    make_scan_folder,
    scan_throughput,
    single_image,
    stability_cost,
    stages,
    untrained_detector,
    whole_image_verdict,
)

#: The Gradio app's cold start to its first answer is the median of this many launches.
COLD_START_LAUNCHES = 3

#: Recipes timed from a freshly built model when no trained model of theirs ships (speed only).
SPEED_ONLY_RECIPES = ("simple_cnn",)

HERE = Path(__file__).resolve().parent


def run(quick: bool, models_dir: str | None, skip_app: bool) -> dict:
    """Run every measurement and return the results."""
    import detector

    repeats = 15 if quick else 100
    n_files = 64 if quick else 512
    infos = [m for m in detector.list_models(models_dir) if m.trained]
    if not infos:
        raise SystemExit("no trained models to benchmark (see README, 'Training')")
    results: dict = {
        "mode": "quick" if quick else "full",
        "machine": machine_info(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "models": {},
    }
    detectors = []
    for info in infos:
        start = time.perf_counter()
        det = detector.load_model(info.name, models_dir)
        load_s = time.perf_counter() - start
        detectors.append(det)
        logging.info("benchmarking %s", info.name)
        results["models"][info.name] = {
            "load_s": load_s,
            "input_size": det.spec.input_size,
            "params": int(det.keras_model.count_params()),
            "folded_batch_norms": len(det.folded_layers),
            "single": single_image(det, repeats),
            "explain": explanation_cost(det, repeats),
        }
    results["stages"] = stages(detectors[0], repeats)
    logging.info("whole-image verdict on a 12 MP JPEG (%s)", detectors[0].name)
    results["whole_image"] = whole_image_verdict(detectors[0], repeats, 3 if quick else 10)
    logging.info("headline costs: stability check, evidence (%s)", detectors[0].name)
    results["stability"] = stability_cost(detectors[0], repeats, 2 if quick else 5)
    with tempfile.TemporaryDirectory() as tmp:
        files = make_scan_folder(Path(tmp) / "scan", n_files)
        fastest = min(detectors, key=lambda d: results["models"][d.name]["single"]["ours_p50_ms"])
        # the fastest model, and the small CNN the scan target names if another is faster
        alone = [fastest, *(d for d in detectors if d.spec.recipe == "simple_cnn")]
        alone = list(dict.fromkeys(alone))
        results["scan"] = {
            "one_model": [{"model": d.name, **scan_throughput([d], files)} for d in alone],
            "all_models": scan_throughput(detectors, files),
        }
        try:  # the optional Beam extra: same rows, measured on the same files
            import apache_beam  # noqa: F401

            from detector.scale.beam import beam_throughput

            results["beam"] = {
                "model": fastest.name,
                **beam_throughput([str(f) for f in files], [fastest.name], models_dir),
            }
        except ImportError:
            logging.info("apache_beam not installed: Beam throughput not measured")
        shipped = {m.recipe for m in infos}
        results["speed_only"] = {}
        for recipe in SPEED_ONLY_RECIPES:
            if recipe in shipped:
                continue
            logging.info("timing the untrained %s architecture", recipe)
            det = untrained_detector(recipe)
            results["speed_only"][recipe] = {
                "input_size": det.spec.input_size,
                "params": int(det.keras_model.count_params()),
                "single": single_image(det, repeats),
                "scan": scan_throughput([det], files),
            }
    if not skip_app:
        results["app"] = app_results(quick)
    return results


def app_results(quick: bool) -> dict:
    """The Gradio app's figures: cold start to first answer, the median of
    `COLD_START_LAUNCHES` launches in either mode, then warm round trips and memory."""
    try:
        return app_round_trips(10 if quick else 50, launches=COLD_START_LAUNCHES)
    except Exception as exc:  # the report says what failed instead of losing the rest
        return {"error": f"{type(exc).__name__}: {exc}"}


def _single_row(name: str, r: dict) -> str:
    """A single-image table row: input, parameters, our and the naive latency, the ratio."""
    s = r["single"]
    return (
        f"| {name} | {r['input_size']} px | {r['params'] / 1e6:.1f} M | "
        f"{s['ours_p50_ms']:.1f} / {s['ours_p95_ms']:.1f} | "
        f"{s['naive_p50_ms']:.1f} / {s['naive_p95_ms']:.1f} | **{s['speedup']:.1f}x** |"
    )


def _cold_cell(app: dict) -> str:
    starts = app.get("cold_starts_s") or [app["cold_start_s"]]
    if len(starts) == 1:
        return f"{app['cold_start_s']:.1f} s"
    each = ", ".join(f"{s:.1f}" for s in starts)
    return f"{app['cold_start_s']:.1f} s (median of {each})"


def to_markdown(results: dict) -> str:
    """The results as a Markdown report."""
    m = results["machine"]
    lines = [
        "# Benchmark results",
        "",
        f"Mode: **{results['mode']}**, run {results['started']} with "
        "`python -m benchmarks --full` (CI runs `--quick`).",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, Python {m['python']}, "
        f"TensorFlow {m['tensorflow']}. All figures come from this one run.",
        "",
        "## Single image (256 px RGB array in, verdict out; preprocessing included)",
        "",
        "| model | input | params | ours p50 / p95 ms | `model.predict` p50 / p95 ms | speed-up |",
        "|---|---|---|---|---|---|",
    ]
    lines += [_single_row(name, r) for name, r in results["models"].items()]
    lines += [
        "",
        "## Explanations",
        "",
        "| model | predict ms | Grad-CAM ms | Grad-CAM / predict | tf-keras-vis Gradcam ms | "
        "speed-up | attention ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results["models"].items():
        e = r["explain"]
        attention = f"{e['attention_p50_ms']:.1f}" if "attention_p50_ms" in e else "-"
        lines.append(
            f"| {name} | {e['predict_p50_ms']:.1f} | {e['gradcam_p50_ms']:.1f} | "
            f"{e['gradcam_over_predict']:.2f}x | {e['tf_keras_vis_p50_ms']:.1f} | "
            f"**{e['speedup_vs_tf_keras_vis']:.1f}x** | {attention} |"
        )
    if "stages" in results:
        st = dict(results["stages"])
        lines += [
            "",
            f"## Where the time goes ({st.pop('model')}, one 256 px PNG explained, p50 ms)",
            "",
            "| stage | ms |",
            "|---|---|",
            *(f"| {stage} | {ms:.2f} |" for stage, ms in st.items()),
        ]
    if "whole_image" in results:
        w = results["whole_image"]
        lines += [
            "",
            f"## Whole-image verdict ({w['model']}, JPEG bytes in, decode and checks included)",
            "",
            "| image | patches | p50 / p95 ms | target |",
            "|---|---|---|---|",
            f"| {w['photo_pixels']} px photo, quality 90, {w['photo_mb']:.1f} MB (decode alone "
            f"{w['photo_decode_p50_ms']:.0f} ms) | {w['photo_patches']} | "
            f"**{w['photo_p50_ms']:.0f}** / {w['photo_p95_ms']:.0f} | "
            f"<= {w['photo_target_ms']:.0f} ms |",
            f"| 256 px tile, quality 90 | 1 | **{w['tile_p50_ms']:.1f}** / "
            f"{w['tile_p95_ms']:.1f} | <= {w['tile_target_ms']:.0f} ms |",
            "",
            "A large image is scored on up to 16 native-resolution patches spread over it, in one "
            "batch, and its verdict is the mean patch logit through the model's temperature "
            "(`detector.core.patches`); a tile is one patch, as before.",
        ]
    if "stability" in results:
        sb = results["stability"]
        lines += [
            "",
            f"## What the headline adds ({sb['model']}, p50 ms, prediction already made)",
            "",
            "| image | predict | stability check (JPEG q90 + 0.75x, scored) | evidence pass |",
            "|---|---|---|---|",
            *(
                f"| {name} | {sb[f'{name}_predict_p50_ms']:.0f} | "
                f"{sb[f'{name}_stability_p50_ms']:.0f} | {sb[f'{name}_evidence_p50_ms']:.0f} |"
                for name in ("tile", "photo")
            ),
        ]
    sc = results["scan"]
    lines += [
        "",
        "## Batch scan (CLI path: decode 256 px PNG + JPEG files, preprocess, score)",
        "",
        "| models | images | images/s |",
        "|---|---|---|",
        *(
            f"| {one['model']} | {one['images']} | **{one['images_per_s']:.0f}** |"
            for one in sc["one_model"]
        ),
        f"| all {sc['all_models']['models']} | {sc['all_models']['images']} | "
        f"**{sc['all_models']['images_per_s']:.0f}** |",
    ]
    if "beam" in results:
        b = results["beam"]
        lines.append(
            f"| {b['model']} on Beam (DirectRunner, in-process, start-up included) | "
            f"{b['images']} | {b['images_per_s']:.0f} |"
        )
    if results.get("speed_only"):
        lines += [
            "",
            "## Recipes that ship no weights (freshly built, untrained: speed only)",
            "",
            "| recipe | input | params | ours p50 / p95 ms | `model.predict` p50 / p95 ms | "
            "speed-up | scan images/s |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"{_single_row(name, r)} **{r['scan']['images_per_s']:.0f}** |"
            for name, r in results["speed_only"].items()
        ]
    app = results.get("app")
    if app:
        lines += ["", "## App (Gradio, through `gradio_client`, with a heatmap)", ""]
        if "error" in app:
            lines.append(f"Not measured: {app['error']}")
        else:
            lines += [
                "| cold start to first answer | warm p50 / p95, `gradio_client` | "
                "warm p50 / p95, `gradio_client(ssl_verify=False)` | "
                "warm p50 / p95, REST API over HTTP | peak RSS, all models |",
                "|---|---|---|---|---|",
                f"| {_cold_cell(app)} | {app['warm_p50_ms']:.0f} / "
                f"{app['warm_p95_ms']:.0f} ms | {app['warm_plain_p50_ms']:.0f} / "
                f"{app['warm_plain_p95_ms']:.0f} ms | {app['warm_http_p50_ms']:.0f} / "
                f"{app['warm_http_p95_ms']:.0f} ms | {app['peak_rss_mb']:.0f} MB |",
                "",
                "Every round trip uploads a 256 px PNG to `/explain`, waits for the verdict and "
                "downloads the overlay and heatmap. `gradio_client` makes about five HTTP requests "
                "per call, each through a new connection whose TLS setup loads the CA bundle "
                "(tens of ms) even for a plain `http://` URL, unless built with "
                "`ssl_verify=False`; it also polls for messages with 50 ms sleeps. The REST path "
                "(`/gradio_api/call/explain`, as curl or a browser uses it) reuses one connection "
                "and reads the event stream directly.",
            ]
    lines += [
        "",
        "Targets (2 cores): single image >= 5x faster than `model.predict`, simple_cnn p50 < 10 ms;"
        " Grad-CAM <= 2x a prediction and >= 10x faster than tf-keras-vis; scan >= 150 images/s "
        "with simple_cnn; app warm p50 <= 200 ms, cold start <= 10 s; whole-image verdict on a "
        "12 MP JPEG <= 1.0 s and on a 256 px tile <= 30 ms (p50, default model).",
        "",
        "![benchmark chart](results.png)",
        "",
    ]
    return "\n".join(lines)


def chart(results: dict, path: Path) -> None:
    """Bar charts: latency ours vs naive, Grad-CAM ours vs tf-keras-vis (log scale)."""
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(results["models"])
    x = np.arange(len(names))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=100)
    ours = [results["models"][n]["single"]["ours_p50_ms"] for n in names]
    naive = [results["models"][n]["single"]["naive_p50_ms"] for n in names]
    axes[0].bar(x - 0.2, naive, 0.4, label="model.predict (published path)", color="#bbbbbb")
    axes[0].bar(x + 0.2, ours, 0.4, label="ours (compiled)", color="#1f77b4")
    axes[0].set(title="Single image p50 (ms, log)", xticks=x, yscale="log")
    axes[0].set_xticklabels(names, rotation=15, fontsize=8)
    axes[0].legend(fontsize=8)
    cam = [results["models"][n]["explain"]["gradcam_p50_ms"] for n in names]
    ref = [results["models"][n]["explain"]["tf_keras_vis_p50_ms"] for n in names]
    axes[1].bar(x - 0.2, ref, 0.4, label="tf-keras-vis Gradcam", color="#bbbbbb")
    axes[1].bar(x + 0.2, cam, 0.4, label="ours (compiled)", color="#d62728")
    axes[1].set(title="Grad-CAM p50 (ms, log)", xticks=x, yscale="log")
    axes[1].set_xticklabels(names, rotation=15, fontsize=8)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and write the report."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for noisy in ("httpx", "apache_beam", "gradio_client"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="few repeats (CI)")
    mode.add_argument("--full", action="store_true", help="the published figures")
    parser.add_argument("--models-dir")
    parser.add_argument("--skip-app", action="store_true")
    parser.add_argument("--out", default=str(HERE), help="folder for results.md/.json/.png")
    args = parser.parse_args(argv)
    results = run(quick=not args.full, models_dir=args.models_dir, skip_app=args.skip_app)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    chart(results, out / "results.png")
    (out / "results.md").write_text(to_markdown(results))
    print(to_markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
