"""Streamlit building blocks shared by the Detect and Classroom pages.

Only layout, formatting and Streamlit caching live here; every score, heatmap and sentence comes
from `detector` (`detector.ui.presentation`, `detector.ui.classroom`). Uploads stay in memory: a
user's file name is only ever shown (escaped), never used as a path.

Memory: an upload keeps its (compressed) bytes, and its decoded image only while a page works
on it (`Upload.release`). What the caches and the pages keep is display-size: thumbnails of at
most `detector.ui.presentation.DISPLAY_MAX_SIDE` pixels, scores, heatmaps drawn at display size.
Error texts shown to visitors never carry a server path (`visitor_text`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

import detector
from detector.ui import classroom as cr
from detector.ui import presentation as pres

#: Initial heatmap opacity (the same as the Gradio app's).
DEFAULT_OPACITY = detector.DEFAULT_ALPHA
#: File types the Detect page reads (the bytes decide the real format).
UPLOAD_TYPES = [*detector.IMAGE_EXTENSIONS, *detector.HEIF_EXTENSIONS, "zip"]
#: The uploaders' ``type`` filter: none. Streamlit checks the extension on the server and raises
#: an uncaught exception for any other one (sent by a client that skips the browser's dialog
#: filter); without a filter the bytes decide, and a file that is not an image gets a clear error.
UPLOAD_FILTER: list[str] | None = None
#: Side of example thumbnails, in pixels.
THUMB_SIDE = 320


# ------------------------------------------------------------------------------------ inputs
@dataclass(eq=False)
class Upload:
    """One image held in memory: a display name, its bytes and their SHA-256.

    ``array`` decodes the bytes on first use (cached functions receive the whole object unhashed
    and only decode it on a cache miss) and keeps the full-size image until `release`. Pages
    release an upload as soon as its results are computed, so that a run never holds more than
    one decoded image at a time, however many files a batch has.
    """

    name: str
    data: bytes
    note: str = ""

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the bytes: the cache key of everything computed from this image."""
        return hashlib.sha256(self.data).hexdigest()

    @cached_property
    def loaded(self) -> pres.LoadedImage:
        """The decoded image with its `ImageInfo` and bytes (raises `detector.ImageLoadError`)."""
        return pres.load_file(self.data)

    @cached_property
    def array(self) -> np.ndarray:
        """The decoded RGB image (raises `detector.ImageLoadError`)."""
        return self.loaded.array

    def release(self) -> None:
        """Drop the decoded image (the bytes stay): the next use decodes the bytes again."""
        self.__dict__.pop("array", None)
        self.__dict__.pop("loaded", None)


def release(*items: object) -> None:
    """`Upload.release` for every upload among ``items`` (anything else is ignored)."""
    for item in items:
        if isinstance(item, Upload):
            item.release()


@dataclass(frozen=True, eq=False)
class Checked:
    """The result of reading an upload: a display-size image, or an error for the user."""

    image: np.ndarray | None
    width: int = 0
    height: int = 0
    error: str | None = None


#: An absolute path in a message: POSIX (``/a/b``, at the start, after a space, a quote, a
#: bracket or ``=``; never inside a URL or a word like ``JPEG/PNG``) or Windows (``C:\a\b``).
_ABSOLUTE_PATH = re.compile(
    r"""(?<![\w.~/:-])(?:/[^\s/'"`<>()\[\]{},;|]+)+/?"""
    r"""|\b[A-Za-z]:\\[^\s'"`<>|]*"""
)


def _last_part(match: re.Match[str]) -> str:
    parts = [p for p in re.split(r"[/\\]", match.group(0)) if p]
    return parts[-1] if parts else "…"


def visitor_text(text: str | None) -> str | None:
    """An error text safe to show a visitor: every absolute server path cut to its last part.

    ``weights file missing for model 'x': /srv/app/models/x/model.keras`` becomes
    ``… 'x': model.keras``; the server log keeps the full message. None stays None.
    """
    if text is None:
        return None
    return _ABSOLUTE_PATH.sub(_last_part, str(text))


def models_root() -> str:
    """The models folder in use: part of every cache key (tests switch folders)."""
    return str(cr.models_dir().resolve())


def read_error(exc: detector.ImageLoadError) -> str:
    """The message for a file that is not a readable image (same wording as the Gradio app)."""
    return visitor_text(pres.read_error(exc.code, exc.message)) or ""


def safe_call(func: Any) -> tuple[Any, str | None]:
    """`detector.ui.classroom.safe_call`, its error text made safe to show (`visitor_text`)."""
    result, error = cr.safe_call(func)
    return result, visitor_text(error)


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def check_upload(digest: str, _upload: Upload) -> Checked:
    """Decode an upload once and keep a display-size copy (or the reason it is unreadable).

    Only the copy of at most `detector.ui.presentation.DISPLAY_MAX_SIDE` pixels is cached; the
    decoded image stays on the upload until the page releases it.
    """
    try:
        array = _upload.array
    except detector.ImageLoadError as exc:
        return Checked(None, error=read_error(exc))
    small, _ = pres.resize_for_display(array)
    return Checked(small, array.shape[1], array.shape[0])


def uploads_from(files: list[Any]) -> list[Upload | pres.UploadItem]:
    """Streamlit uploads as in-memory items: zip archives opened, limits applied."""
    items = pres.read_uploads([(f.name, f.getvalue()) for f in files])
    return [Upload(item.name, item.data) if item.data is not None else item for item in items]


# ------------------------------------------------------------------------------------ models
@st.cache_resource(show_spinner="Loading the model…")
def load_detector(root: str, name: str) -> tuple[Any, str | None]:
    """A loaded model, shared by every session (never mutated), or why it cannot load."""
    try:
        return detector.load_model(name), None
    except Exception as exc:  # a broken model is reported, never raised into the page
        return None, visitor_text(pres.error_text(exc))


@st.cache_data(max_entries=256, max_size="400MB", ttl=3600, show_spinner=False)
def analyse_cached(
    root: str, digest: str, name: str, method: str | None, _upload: Upload
) -> cr.ModelView:
    """One model's verdict (and heatmap) for one image, keyed by image hash, model and method.

    The verdict carries the file's domain warnings (a decoded array alone gets none). What is
    cached holds no full-size array: the heatmap is drawn at display size.
    """
    view = cr.analyse(_upload.array, name, method)
    if view.prediction is None:
        return dataclasses.replace(view, error=visitor_text(view.error))
    return dataclasses.replace(view, prediction=pres.with_warnings(view.prediction, _upload.loaded))


def analyse(upload: Upload, name: str, method: str | None) -> cr.ModelView:
    """`analyse_cached` behind the shared model cache: a model that cannot load is a failure."""
    root = models_root()
    _, error = load_detector(root, name)
    if error is not None:
        return cr.ModelView(name, method=method, error=error)
    return analyse_cached(root, upload.digest, name, method, upload)


def model_picker(
    infos: list[detector.ModelInfo], key: str, default_count: int = 1, label: str = "Models"
) -> list[str]:
    """A sidebar multiselect of the trained models (best first); returns the chosen names."""
    options = [info.name for info in infos]
    names = st.sidebar.multiselect(
        label,
        options=options,
        default=options[:default_count],
        key=key,
        help="Trained models, best on images from unseen sources first:\n\n"
        + "\n".join(f"- {pres.model_label(info)}" for info in infos)
        + "\n\nPick several to compare them side by side.",
        placeholder="Choose at least one model",
    )
    return [name for name in names if name in options]


def method_picker(infos: list[detector.ModelInfo], names: list[str], key: str) -> str:
    """A sidebar choice of explanation method among those the chosen models offer."""
    chosen = [info for info in infos if info.name in names]
    offered = [m for m in pres.METHOD_TITLES if any(m in info.methods for info in chosen)]
    offered = offered or ["gradcam"]
    return st.sidebar.radio(
        "Explanation",
        offered,
        format_func=lambda m: pres.METHOD_TITLES.get(m, m),
        key=key,
        help="Models without the chosen method show Grad-CAM instead (and say so).",
    )


def untrained_note(infos: list[detector.ModelInfo]) -> None:
    """List the recipes that ship no weights, in a collapsed sidebar expander."""
    untrained = [info for info in infos if not info.trained]
    if untrained:
        with st.sidebar.expander("Recipes without trained weights"):
            for info in untrained:
                st.markdown(f"- {pres.untrained_message(info)}")


def no_models() -> None:
    """Say plainly that no trained model is installed, and how to train one."""
    st.warning(pres.no_models_message(), icon=":material/warning:")


# ------------------------------------------------------------------------------------ verdicts
def bar_html(prediction: detector.Prediction) -> str:
    """A P(fake) bar: fill to the probability, a tick at the threshold, the uncertain band."""
    bar = pres.probability_bar(prediction)
    low, high = bar.band
    band = (
        f'<div title="uncertain band" style="position:absolute;left:{low}%;width:{high - low}%;'
        "top:0;bottom:0;background:repeating-linear-gradient(45deg,rgba(239,108,0,.28) 0 4px,"
        'transparent 4px 8px)"></div>'
        if high > low
        else ""
    )
    return (
        '<div style="position:relative;height:12px;border-radius:6px;margin:.35rem 0;'
        'background:rgba(127,127,127,.2);overflow:hidden">'
        f'{band}<div style="height:100%;width:{bar.width}%;background:{bar.colour}"></div>'
        f'<div title="threshold" style="position:absolute;left:{bar.threshold}%;top:0;bottom:0;'
        'width:2px;background:#212121;opacity:.75"></div></div>'
    )


def verdict_html(prediction: detector.Prediction, compact: bool = False) -> str:
    """A verdict card: headline, P(AI-generated), the bar and one sentence on the threshold."""
    v = pres.verdict(prediction)
    detail = "" if compact else f'<div class="fd-detail">{html.escape(v.detail)}</div>'
    reason = f'<div class="fd-reason">{html.escape(v.reason)}</div>' if v.reason else ""
    return (
        f'<div class="fd-verdict" data-label="{v.label}" data-model="{html.escape(v.model)}" '
        f'style="border-left:6px solid {v.colour};border-radius:8px;padding:.55rem .85rem;'
        f'background:{v.colour}14;font-family:inherit">'
        f'<div style="font-size:.8rem;opacity:.75"><code>{html.escape(v.model)}</code> · '
        f"{v.milliseconds:.0f} ms</div>"
        f'<div class="fd-headline" style="font-size:1.3rem;font-weight:700;color:{v.colour}">'
        f"{html.escape(v.headline)}</div>"
        f"<div>P(AI-generated) = <b>{v.probability}</b></div>"
        f"{bar_html(prediction)}{reason}"
        f'<div style="font-size:.82rem;opacity:.8">{detail}</div></div>'
    )


def show_verdict(prediction: detector.Prediction, compact: bool = False) -> None:
    """Render a verdict card and, under it, why the score may not be trustworthy."""
    st.html(verdict_html(prediction, compact))
    if prediction.warnings:
        st.caption(f":material/warning: **{pres.WARNINGS_TITLE}**")
        for warning in prediction.warnings:
            st.caption(f"- {warning}")


def show_agreement(views: list[cr.ModelView]) -> None:
    """Say whether the models that answered agree (and how many failed)."""
    predictions = [v.prediction for v in views if v.prediction is not None]
    default = next((info.name for info in pres.trained_models()), None)  # best first
    summary = pres.agreement(predictions, failed=len(views) - len(predictions), default=default)
    if not predictions:
        st.error(summary.text)
    elif summary.unanimous:
        st.success(summary.text, icon=":material/handshake:")
    else:
        st.warning(summary.text, icon=":material/balance:")


def show_model_card(view: cr.ModelView) -> None:
    """One model's verdict card, or why it failed."""
    if not view.ok:
        st.error(f"Model `{view.model}` failed: {view.error}", icon=":material/error:")
        return
    assert view.prediction is not None
    show_verdict(view.prediction)


def show_model_heatmap(view: cr.ModelView, opacity: float, raw: bool = False) -> None:
    """One model's heatmap overlay at ``opacity``, the patch map beside it when the image was
    scored on several patches, how it was scored (and the heatmap alone if ``raw``)."""
    if view.view is None:
        return
    title = pres.METHOD_TITLES.get(view.view.method, view.view.method)
    patches = view.view.patches
    caption = f"{title} overlay · {view.model}"
    if patches is None or patches.image is None:
        st.image(view.view.overlay(opacity), caption=caption, width="stretch")
    else:
        left, right = st.columns(2, gap="small")
        with left:
            overlay = view.view.overlay(opacity)
            st.image(overlay, caption=f"{caption} · {patches.explained}", width="stretch")
        with right:
            st.image(patches.image, caption=f"Patch scores · {view.model}", width="stretch")
    if patches is not None and patches.caption:
        st.caption(patches.caption)
    if raw:
        st.image(view.view.raw(), caption=f"{title} alone · {view.model}", width="stretch")
    if view.method_note:
        st.caption(view.method_note)


# ------------------------------------------------------------------------------------ examples
@st.cache_data(max_entries=64, show_spinner=False)
def example_bytes(path: str, mtime: float) -> bytes:
    """The bytes of an example image (keyed by path and modification time)."""
    return Path(path).read_bytes()


@st.cache_data(max_entries=64, show_spinner=False)
def thumbnail(path: str, mtime: float) -> np.ndarray | None:
    """A small copy of an example image for galleries (None if it is unreadable)."""
    try:
        array = detector.load_image(example_bytes(path, mtime))
    except detector.ImageLoadError:
        return None
    return pres.resize_for_display(array, max_side=THUMB_SIDE)[0]


def example_upload(example: cr.Example, number: int) -> Upload:
    """An example as an in-memory upload."""
    data = example_bytes(str(example.path), example.path.stat().st_mtime)
    return Upload(f"Example {number}: {example.file}", data)


def examples() -> list[cr.Example]:
    """The example images (none if ``examples.json`` is missing)."""
    return cr.load_examples()


# ------------------------------------------------------------------------------------ robustness
@dataclass(frozen=True, eq=False)
class Degraded:
    """An image after JPEG re-encoding or downsizing, as a new in-memory upload."""

    upload: Upload
    display: np.ndarray | None
    width: int
    height: int
    nbytes: int
    error: str | None = None


@st.cache_data(max_entries=256, max_size="200MB", ttl=3600, show_spinner=False)
def degraded_bytes(digest: str, kind: str, level: int, _upload: Upload) -> bytes | None:
    """The image re-encoded as JPEG at quality ``level``, or downsized to ``level`` % (as PNG).

    None when the image is too small to be downsized that far.
    """
    return cr.degraded_file(_upload.array, kind, level)


def degraded_upload(upload: Upload, kind: str, level: int) -> Degraded | None:
    """The degraded image (cached by image hash, kind and level), ready to score and show.

    None when the image is too small to be downsized to ``level`` %. ``upload`` is released
    once the degraded bytes are made, before they are decoded: one full-size decode at a time.
    """
    data = degraded_bytes(upload.digest, kind, int(level), upload)
    upload.release()
    if data is None:
        return None
    label = f"{upload.name} · JPEG q{level}" if kind == "jpeg" else f"{upload.name} · {level}%"
    degraded = Upload(label, data)
    checked = check_upload(degraded.digest, degraded)
    return Degraded(
        degraded, checked.image, checked.width, checked.height, len(data), checked.error
    )


@st.cache_data(max_entries=64, ttl=3600, show_spinner="Re-scoring at every quality and size…")
def stress_cached(root: str, digest: str, names: tuple[str, ...], _upload: Upload) -> cr.StressRun:
    """The stress test of one image (every JPEG quality and size) by each model."""
    run = cr.stress_curves(_upload.array, names)
    return dataclasses.replace(run, errors=_visitor_errors(run.errors))


@st.cache_data(max_entries=128, max_size="100MB", ttl=3600, show_spinner=False)
def curve_png(
    root: str, digest: str, names: tuple[str, ...], kind: str, level: int, _upload: Upload
) -> bytes | None:
    """The stress curves as a PNG, the slider's level marked (None if no model answered)."""
    run = stress_cached(root, digest, names, _upload)
    if run.result is None:
        return None
    return cr.figure_png(cr.plot_curves(run.result, kind, level))


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def model_input_cached(
    root: str, digest: str, name: str, method: str, _upload: Upload
) -> tuple[cr.ModelInput | None, str | None]:
    """What a model sees of an image, and its raw heatmap grid (or why it failed)."""
    return safe_call(lambda: cr.model_input(_upload.array, name, method))


# ------------------------------------------------------------------------------------ evidence
@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def evidence_report(
    digest: str, _upload: Upload
) -> tuple[detector.EvidenceReport | None, str | None]:
    """The provenance evidence of an upload, read from its bytes (or why it cannot be read)."""
    return safe_call(lambda: detector.inspect_file(_upload.data))


@st.cache_data(max_entries=32, max_size="200MB", ttl=3600, show_spinner=False)
def forensic_views(
    digest: str, _upload: Upload
) -> tuple[list[pres.ForensicView] | None, str | None]:
    """The residual spectrum and ELA map of an upload (or why they could not be made)."""
    return safe_call(lambda: pres.forensic_views(_upload.array))


@st.cache_data(
    max_entries=64, ttl=3600, show_spinner="Re-scoring under JPEG re-encoding and downscaling…"
)
def evidence_stress(
    root: str, digest: str, names: tuple[str, ...], _upload: Upload
) -> pres.StressOutcome:
    """The stress test of an upload by each model (12 re-scored variants per model)."""
    outcome = pres.run_stress(_upload.array, names)
    return dataclasses.replace(outcome, errors=_visitor_errors(outcome.errors))


def _visitor_errors(errors: dict[str, str]) -> dict[str, str]:
    return {name: visitor_text(error) or "" for name, error in errors.items()}


# ------------------------------------------------------------------------------------ headline
@st.cache_data(max_entries=256, ttl=3600, show_spinner=False)
def stability_cached(
    root: str, digest: str, name: str, _prediction: detector.Prediction, _upload: Upload
) -> tuple[detector.Stability | None, str | None]:
    """Whether a model's verdict on an upload survives JPEG q90 and a 0.75x resize (two more
    passes on the decoded image), keyed by image hash and model (or why it could not run)."""
    model, error = load_detector(root, name)
    if model is None:
        return None, error
    return safe_call(lambda: detector.check_stability(_upload.array, model, _prediction))


def headline_of(upload: Upload, views: list[cr.ModelView]) -> detector.Headline:
    """The combined headline of an upload: its evidence (`evidence_report`, read before the page
    decodes the image), then the first chosen model that answered and that score's stability."""
    report, _ = evidence_report(upload.digest, upload)
    view = next((v for v in views if v.prediction is not None), None)
    if view is None or view.prediction is None:
        return detector.headline(report, None, None)
    stability, _ = stability_cached(
        models_root(), upload.digest, view.model, view.prediction, upload
    )
    return detector.headline(report, view.prediction, stability)


def show_headline(found: detector.Headline) -> None:
    """The combined headline (`detector.ui.presentation.headline_markdown`), above the verdicts."""
    st.markdown(pres.headline_markdown(found))


def show_provenance(report: detector.EvidenceReport) -> None:
    """The report's headline, what provenance evidence is, and every item."""
    headline, tone = pres.evidence_headline(report)
    if tone == "unreadable":
        st.error(headline, icon=":material/block:")
    elif tone == "ai":
        st.warning(headline, icon=":material/smart_toy:")
    else:
        st.info(headline, icon=":material/photo_camera:" if tone == "camera" else None)
    st.caption(report.note)
    st.markdown(pres.evidence_markdown(report))


def show_forensics(upload: Upload) -> None:
    """The two forensic views side by side, each with its one-line explanation."""
    views, error = forensic_views(upload.digest, upload)
    if views is None:
        st.error(f"The forensic views failed: {error}", icon=":material/error:")
        return
    for view, column in zip(views, st.columns(len(views), gap="medium"), strict=True):
        with column:
            # Lossless: JPEG would add its own 8x8 blocks to the pictures of compression traces.
            st.image(view.image, caption=view.title, width="stretch", output_format="PNG")
            st.caption(view.explanation)


def show_stress(upload: Upload, names: list[str], key: str) -> None:
    """The stress test behind a toggle: the curves, a fragile flag per model, the definition."""
    run = st.toggle(
        "Run the stress test",
        key=key,
        help="Re-scores the image about 12 times per model: JPEG re-encoded at 7 qualities and "
        "downscaled to 4 sizes.",
    )
    st.caption(f"*Fragile:* {detector.FRAGILE_DEFINITION}")
    if not run:
        return
    if not names:
        st.warning("Choose at least one model in the sidebar.", icon=":material/left_click:")
        return
    outcome = evidence_stress(models_root(), upload.digest, tuple(names), upload)
    for name, error in outcome.errors.items():
        st.error(f"Model `{name}` failed the stress test: {error}", icon=":material/error:")
    if outcome.result is None:
        return
    st.pyplot(detector.plot_stress(outcome.result), width="stretch", alt=pres.STRESS_PLOT_ALT)
    st.dataframe(
        pres.stress_rows(outcome),
        hide_index=True,
        column_config={
            "fragile": st.column_config.CheckboxColumn(
                "fragile", help="The verdict flips under a mild change (see below the toggle)."
            )
        },
    )
    fragile = [f"`{name}`" for name, flag in outcome.fragile.items() if flag]
    if fragile:
        st.warning(f"Fragile on this image: {', '.join(fragile)}.", icon=":material/warning:")
    else:
        st.success(
            "No model is fragile on this image: no verdict flips under a mild change.",
            icon=":material/check:",
        )


def show_evidence(upload: Upload, names: list[str], key: str) -> None:
    """The evidence board of one image, kept apart from the scores: provenance, forensic
    views and the stress test, in three tabs."""
    st.markdown("##### Evidence beyond the score")
    st.caption(pres.EVIDENCE_INTRO)
    provenance, forensics, stress = st.tabs(
        ["Provenance evidence", "Forensic views", "Stress test"]
    )
    with provenance:
        report, error = evidence_report(upload.digest, upload)
        if report is None:
            st.error(f"The file's metadata could not be read: {error}", icon=":material/error:")
        else:
            show_provenance(report)
    with forensics:
        show_forensics(upload)
    with stress:
        show_stress(upload, names, key=f"{key}_stress")


def show_unreadable_provenance(upload: Upload) -> None:
    """For a file whose pixels cannot be decoded: its metadata, when any could still be read."""
    report, _ = evidence_report(upload.digest, upload)
    if report is None or not [it for it in report.found_items if it.kind != "file"]:
        return
    with st.popover("What the file itself still says", icon=":material/description:"):
        show_provenance(report)
