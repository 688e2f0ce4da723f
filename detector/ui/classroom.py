"""UI-agnostic helpers for the classroom mode and for the Streamlit app.

Plain data in, plain data out: the example images and their known answers, a compact per-model
analysis that is cheap to cache (a `ModelOutcome` without its full-size explanation), what a
model actually sees (its input and its coarse heatmap grid), live JPEG / downsizing curves of
P(fake), the measured results and known limits from the model cards, the quiz
(`detector.ui.quiz`, re-exported) and the lesson texts. Nothing here imports a UI library, and
nothing writes a user's file (or its name) to disk.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from detector.core.errors import DetectorError
from detector.core.heatmaps import colorize, normalize_maps
from detector.core.models import load_model, models_dir
from detector.core.spec import Preprocessing
from detector.ui.held import Checked as Checked
from detector.ui.held import Degraded as Degraded
from detector.ui.held import Upload as Upload
from detector.ui.held import degraded_caption as degraded_caption
from detector.ui.held import degraded_name as degraded_name
from detector.ui.held import held_rows as held_rows
from detector.ui.held import held_uploads as held_uploads
from detector.ui.held import release as release
from detector.ui.lessons import (
    LESSON_COMPRESSION,
    LESSON_HEATMAP,
    LESSON_INTRO,
    LESSON_LIMITS,
    NO_EXAMPLES,
    PIPELINE_READS,
    QUIZ_INTRO,
    lesson_mislead,
    lesson_pipeline,
)
from detector.ui.model_cards import (
    HELD_OUT_TITLE,
    ModelFacts,
    condition_name,
    facts_from_card,
    model_facts,
)
from detector.ui.model_cards import limits_markdown as limits_markdown
from detector.ui.model_cards import test_set_title as test_set_title
from detector.ui.presentation import (
    BATCH_FIELDS,
    DISPLAY_MAX_SIDE,
    METHOD_TITLES,
    BatchRow,
    HeatmapView,
    ModelOutcome,
    error_text,
    heatmap_view,
    run_model,
)
from detector.ui.quiz import GUESSES as GUESSES
from detector.ui.quiz import QuizState as QuizState
from detector.ui.quiz import is_done as is_done
from detector.ui.quiz import is_last as is_last
from detector.ui.quiz import new_game as new_game
from detector.ui.quiz import new_score as new_score
from detector.ui.quiz import next_question as next_question
from detector.ui.quiz import play_again as play_again
from detector.ui.quiz import progress as progress
from detector.ui.quiz import quiz_order as quiz_order
from detector.ui.quiz import reveal as reveal
from detector.ui.quiz import reveal_notes as reveal_notes
from detector.ui.quiz import round_feedback as round_feedback
from detector.ui.quiz import score_round as score_round
from detector.ui.quiz import score_text as score_text
from detector.ui.robustness import (
    DEGRADATIONS,
    JPEG_QUALITIES,
    SIZES,
    StressRun,
    degrade,
    degraded_file,
    downsize,
    figure_png,
    jpeg_bytes,
    jpeg_recompress,
    plot_curves,
    stress_curves,
)
from detector.ui.uploads import _csv_cell
from detector.ui.visitor import visitor_errors as visitor_errors
from detector.ui.visitor import visitor_read_error as visitor_read_error
from detector.ui.visitor import visitor_text as visitor_text

log = logging.getLogger(__name__)

#: Environment variable that points the apps at another folder of example images.
EXAMPLES_DIR_ENV = "FAKEDETECT_EXAMPLES_DIR"
DEFAULT_EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "assets" / "examples"


# ---------------------------------------------------------------------------------- examples
@dataclass(frozen=True)
class Example:
    """One example image from ``examples.json``, with its known answer and its credit.

    Attributes:
        file: File name inside the examples folder.
        path: Absolute path of the image (checked to be inside the examples folder).
        label: ``fake`` or ``real`` (anything else means the answer is unknown).
        source, generator, licence, author: Attribution, as given in ``examples.json``.
    """

    file: str
    path: Path
    label: str = ""
    source: str = ""
    generator: str = ""
    licence: str = ""
    author: str = ""

    @property
    def known(self) -> bool:
        """True when the example's answer (fake or real) is known."""
        return self.label in ("fake", "real")

    @property
    def answer(self) -> str:
        """The known answer in words, e.g. ``"AI-generated (Stable Diffusion 1.5)"``."""
        if self.label == "fake":
            return "AI-generated" + (f" ({self.generator})" if self.generator else "")
        if self.label == "real":
            return "a real photo"
        return "not known"

    @property
    def credit(self) -> str:
        """Source, author and licence in one line (empty when none is given)."""
        parts = (("source", self.source), ("author", self.author), ("licence", self.licence))
        return ", ".join(f"{key}: {value}" for key, value in parts if value)

    @property
    def title(self) -> str:
        """A short display name: the file name without its extension."""
        return Path(self.file).stem.replace("_", " ").replace("-", " ")


def examples_dir(override: str | Path | None = None) -> Path:
    """The examples folder: ``override``, ``$FAKEDETECT_EXAMPLES_DIR`` or ``assets/examples``."""
    if override is not None:
        return Path(override)
    env = os.environ.get(EXAMPLES_DIR_ENV)
    return Path(env) if env else DEFAULT_EXAMPLES_DIR


def load_examples(folder: str | Path | None = None) -> list[Example]:
    """The examples listed in ``examples.json`` whose image exists (none if it is missing).

    Entries that are malformed, or whose file is missing or lies outside the folder, are
    skipped. ``examples.json`` is a list of objects (or ``{"examples": [...]}``) with the keys
    ``file, label, source, generator, licence, author``.
    """
    root = examples_dir(folder)
    try:
        entries: Any = json.loads((root / "examples.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if isinstance(entries, dict):
        entries = entries.get("examples", [])
    found: list[Example] = []
    resolved_root = root.resolve()
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            continue
        path = (root / entry["file"]).resolve()
        if not path.is_file() or path.parent != resolved_root:
            continue
        text = {key: str(entry.get(key) or "") for key in Example.__dataclass_fields__}
        found.append(
            Example(
                file=entry["file"],
                path=path,
                label=text["label"].strip().lower(),
                source=text["source"],
                generator=text["generator"],
                licence=text["licence"],
                author=text["author"],
            )
        )
    return found


def example_note(example: Example, number: int | None = None) -> str:
    """The known answer and the credit of an example, as Markdown."""
    name = f"Example {number}" if number is not None else f"`{example.file}`"
    note = f"**{name}** is {example.answer}."
    return f"{note} {example.credit}." if example.credit else note


# ---------------------------------------------------------------------------------- analysis
def analyse(
    image: np.ndarray, name: str, method: str | None = "gradcam", max_side: int = DISPLAY_MAX_SIDE
) -> ModelOutcome:
    """Score (and explain, unless ``method`` is None) a decoded image with one model.

    The `ModelOutcome` is small enough to cache: its full-size ``explanation`` is dropped (None)
    and its heatmap kept at display size in ``view``. Never raises: a model that fails gives an
    outcome with an ``error``. Models without the requested method fall back to Grad-CAM (see
    `ModelOutcome.method_note`).
    """
    outcome = run_model(image, name, method)
    if outcome.prediction is None:
        return ModelOutcome(name, error=outcome.error or "unknown error", method=method)
    view = None
    if outcome.explanation is not None:
        view = heatmap_view(image, outcome.explanation, max_side)
    return ModelOutcome(name, outcome.prediction, view=view, method=method)


def results_csv(rows: Sequence[BatchRow]) -> bytes:
    """Rows as CSV bytes (`presentation.BATCH_FIELDS` columns), made safe for spreadsheets."""
    import csv

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(BATCH_FIELDS)
    for row in rows:
        writer.writerow([_csv_cell(value) for value in row.to_list()])
    return buffer.getvalue().encode("utf-8")


# ---------------------------------------------------------------------------------- model input
@dataclass(frozen=True, eq=False)
class ModelInput:
    """What a model actually sees of an image, and how coarse its heatmap really is.

    Attributes:
        model: The model's name.
        size: Side of the square model input, in pixels.
        seen: The model input as an RGB uint8 image (size x size).
        grid: (rows, columns) of the model's heatmap before smoothing.
        blocks: The coarse heatmap drawn as blocks over ``seen`` (no smoothing).
        smooth: The smoothed heatmap the apps show, over ``seen``.
        method: The explanation method used.
        p_fake: P(fake) from the same pass.
    """

    model: str
    size: int
    seen: np.ndarray = field(repr=False)
    grid: tuple[int, int]
    blocks: np.ndarray = field(repr=False)
    smooth: np.ndarray = field(repr=False)
    method: str
    p_fake: float


def model_input(image: np.ndarray, name: str, method: str = "gradcam") -> ModelInput:
    """The model's-eye view of an image: its input and its raw heatmap grid.

    Raises:
        DetectorError: if the model cannot be loaded.
    """
    det = load_model(name)
    method = method if method in det.methods else "gradcam"
    seen = det.spec.preprocessing.apply(image)
    batch = seen[None]
    probs, coarse = det.coarse_maps(batch, method)
    _, smooth = det.input_maps(batch, method)
    size = det.spec.input_size
    grid = normalize_maps(coarse)[0]
    rows, cols = grid.shape
    blocks = np.asarray(
        Image.fromarray(grid.astype(np.float32)).resize((size, size), Image.Resampling.NEAREST),
        dtype=np.float32,
    )
    seen_rgb = np.clip(np.rint(seen), 0, 255).astype(np.uint8)
    return ModelInput(
        model=name,
        size=size,
        seen=seen_rgb,
        grid=(int(rows), int(cols)),
        blocks=_blend(seen_rgb, blocks),
        smooth=_blend(seen_rgb, smooth[0]),
        method=method,
        p_fake=float(probs[0]),
    )


def model_preprocessing(name: str) -> Preprocessing:
    """How a model brings an image to its input, as its card says (`Preprocessing`).

    Raises:
        DetectorError: if the model cannot be loaded.
    """
    return load_model(name).spec.preprocessing


def _blend(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    colored = colorize(np.clip(heatmap, 0.0, 1.0)).astype(np.float32)
    return np.clip(np.rint(image * (1 - alpha) + colored * alpha), 0, 255).astype(np.uint8)


def enlarge(image: np.ndarray, side: int = 384) -> np.ndarray:
    """Blow a small image up with visible pixels (nearest neighbour) for display."""
    height, width = image.shape[:2]
    scale = max(1, round(side / max(height, width)))
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def hot_overlap(first: np.ndarray, second: np.ndarray, top: float = 0.2) -> float:
    """How much the hottest ``top`` fraction of two heatmaps overlap (intersection over union).

    1.0 means both maps point at the same place; near 0 means they highlight different areas.
    """
    if first.shape != second.shape:
        second = np.asarray(
            Image.fromarray(second.astype(np.float32)).resize(first.shape[::-1]), np.float32
        )
    a = first >= np.quantile(first, 1.0 - top)
    b = second >= np.quantile(second, 1.0 - top)
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def methods_agreement(maps: Sequence[HeatmapView]) -> str:
    """Whether several explanation methods point at the same place (Markdown), pair by pair.

    Empty for fewer than two heatmaps.
    """
    if len(maps) < 2:
        return ""
    pairs = "; ".join(
        f"{METHOD_TITLES[a.method]} vs {METHOD_TITLES[b.method]}: "
        f"**{hot_overlap(a.heatmap, b.heatmap):.0%}**"
        for i, a in enumerate(maps)
        for b in maps[i + 1 :]
    )
    return (
        f"**Do the methods agree?** Overlap of their hottest 20% of pixels: {pairs} "
        "(100% = the same place, 0% = completely different places)."
    )


def example_options(examples: Sequence[Example], own: str) -> list[str]:
    """The choices of the classroom's image picker: every example, then ``own`` (an upload)."""
    return [f"Example {i + 1}: {e.title}" for i, e in enumerate(examples)] + [own]


# ---------------------------------------------------------------------------------- helpers


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=^&])")


def md_escape(text: str) -> str:
    """Text (e.g. a user's file name) made inert in Markdown: every markup character escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


def safe_call(func: Callable[[], Any]) -> tuple[Any, str | None]:
    """Run ``func``; return (result, None), or (None, error text) if it raised."""
    try:
        return func(), None
    except DetectorError as exc:
        return None, error_text(exc)
    except Exception as exc:  # a UI section must not take the page down
        log.exception("classroom helper failed")
        return None, error_text(exc)


__all__ = [
    "DEFAULT_EXAMPLES_DIR",
    "DEGRADATIONS",
    "EXAMPLES_DIR_ENV",
    "GUESSES",
    "HELD_OUT_TITLE",
    "JPEG_QUALITIES",
    "LESSON_COMPRESSION",
    "LESSON_HEATMAP",
    "LESSON_INTRO",
    "LESSON_LIMITS",
    "NO_EXAMPLES",
    "PIPELINE_READS",
    "QUIZ_INTRO",
    "SIZES",
    "Example",
    "ModelFacts",
    "ModelInput",
    "ModelOutcome",
    "StressRun",
    "analyse",
    "condition_name",
    "degrade",
    "degraded_file",
    "downsize",
    "enlarge",
    "example_note",
    "examples_dir",
    "facts_from_card",
    "figure_png",
    "hot_overlap",
    "jpeg_bytes",
    "jpeg_recompress",
    "lesson_mislead",
    "lesson_pipeline",
    "load_examples",
    "md_escape",
    "model_facts",
    "model_input",
    "model_preprocessing",
    "models_dir",
    "new_score",
    "plot_curves",
    "quiz_order",
    "results_csv",
    "round_feedback",
    "safe_call",
    "score_round",
    "score_text",
    "stress_curves",
]
