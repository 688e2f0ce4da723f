"""Streamlit building blocks shared by the Detect and Classroom pages.

Only layout, formatting and Streamlit caching live here; every score, heatmap and sentence comes
from `detector` (`detector.ui.presentation`, `detector.ui.classroom`), and so do the uploads held
in memory (`detector.ui.held`, re-exported by `classroom`): a user's file name is only ever shown
(escaped), never used as a path. The evidence board of the Detect page is in `pages.evidence`.

Memory: an upload keeps its (compressed) bytes, and its decoded image only while a page works
on it (`Upload.release`). What the caches and the pages keep is display-size: thumbnails of at
most `detector.ui.presentation.DISPLAY_MAX_SIDE` pixels, scores, heatmaps drawn at display size.
Error texts shown to visitors never carry a server path (`visitor_text`).
"""

from __future__ import annotations

import dataclasses
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

#: What the pages hold in memory and show (`detector.ui.held`, `detector.ui.visitor`).
Upload = cr.Upload
Checked = cr.Checked
Degraded = cr.Degraded
release = cr.release
visitor_text = cr.visitor_text
#: A verdict as an HTML card (`detector.ui.verdict_cards`).
verdict_html = pres.verdict_html
bar_html = pres.bar_html
Stable = detector.Stability | None


# ------------------------------------------------------------------------------------ inputs
def models_root() -> str:
    """The models folder in use: part of every cache key (tests switch folders)."""
    return str(cr.models_dir().resolve())


def read_error(exc: detector.ImageLoadError) -> str:
    """The message for a file that is not a readable image (same wording as the Gradio app)."""
    return cr.visitor_read_error(exc)


def safe_call(func: Any) -> tuple[Any, str | None]:
    """`detector.ui.classroom.safe_call`, its error text made safe to show (`visitor_text`)."""
    result, error = cr.safe_call(func)
    return result, visitor_text(error)


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def check_upload(digest: str, _upload: cr.Upload) -> cr.Checked:
    """Decode an upload once and keep a display-size copy (or the reason it is unreadable).

    Only the copy of at most `detector.ui.presentation.DISPLAY_MAX_SIDE` pixels is cached; the
    decoded image stays on the upload until the page releases it.
    """
    try:
        array = _upload.array
    except detector.ImageLoadError as exc:
        return cr.Checked(None, error=read_error(exc))
    small, _ = pres.resize_for_display(array)
    return cr.Checked(small, array.shape[1], array.shape[0])


def uploads_from(files: list[Any]) -> list[cr.Upload | pres.UploadItem]:
    """Streamlit uploads as in-memory items: zip archives opened, limits applied."""
    return cr.held_uploads([(f.name, f.getvalue()) for f in files])


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
) -> cr.ModelOutcome:
    """One model's verdict (and heatmap) for one image, keyed by image hash, model and method.

    The verdict carries the file's domain warnings (a decoded array alone gets none). What is
    cached holds no full-size array: the heatmap is drawn at display size.
    """
    view = cr.analyse(_upload.array, name, method)
    if view.prediction is None:
        return dataclasses.replace(view, error=visitor_text(view.error))
    return dataclasses.replace(view, prediction=pres.with_warnings(view.prediction, _upload.loaded))


def analyse(upload: Upload, name: str, method: str | None) -> cr.ModelOutcome:
    """`analyse_cached` behind the shared model cache: a model that cannot load is a failure."""
    root = models_root()
    _, error = load_detector(root, name)
    if error is not None:
        return cr.ModelOutcome(name, error=error, method=method)
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
        help=pres.picker_help(infos),
        placeholder="Choose at least one model",
    )
    return [name for name in names if name in options]


def method_picker(infos: list[detector.ModelInfo], names: list[str], key: str) -> str:
    """A sidebar choice of explanation method among those the chosen models offer."""
    return st.sidebar.radio(
        "Explanation",
        pres.offered_methods(infos, names),
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
def show_verdict(
    prediction: detector.Prediction, compact: bool = False, stability: Stable = None
) -> None:
    """A verdict card (saying if `stability` flips it), then why the score may not be trusted."""
    st.html(verdict_html(prediction, compact, stability=stability))
    if prediction.warnings:
        st.caption(f":material/warning: **{pres.WARNINGS_TITLE}**")
        for warning in prediction.warnings:
            st.caption(f"- {warning}")


def show_agreement(views: list[cr.ModelOutcome]) -> None:
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


def show_model_card(view: cr.ModelOutcome, stability: Stable = None) -> None:
    """One model's verdict card (with its stability check, when it had one), or why it failed."""
    if not view.ok:
        st.error(f"Model `{view.model}` failed: {view.error}", icon=":material/error:")
        return
    assert view.prediction is not None
    show_verdict(view.prediction, stability=stability)


def show_model_heatmap(view: cr.ModelOutcome, opacity: float, raw: bool = False) -> None:
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
    degraded = Upload(cr.degraded_name(upload.name, kind, level), data)
    checked = check_upload(degraded.digest, degraded)
    return Degraded(
        degraded, checked.image, checked.width, checked.height, len(data), checked.error
    )


@st.cache_data(max_entries=64, ttl=3600, show_spinner="Re-scoring at every quality and size…")
def stress_cached(root: str, digest: str, names: tuple[str, ...], _upload: Upload) -> cr.StressRun:
    """The stress test of one image (every JPEG quality and size) by each model."""
    run = cr.stress_curves(_upload.array, names)
    return dataclasses.replace(run, errors=cr.visitor_errors(run.errors))


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
