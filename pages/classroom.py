"""Classroom page: a guided lesson on how detectors work, with live demos and a quiz.

The compression demo and the quiz (`pages.quiz`) are fragments: moving the slider or answering
the quiz reruns only that section, so a class on a slow machine does not wait for the whole page.

The chosen image is decoded only while a section computes something new from it, and released
after each section: a fragment keeps its arguments for its own reruns, so what it keeps must be
the upload's bytes, never its full-size decode.
"""

from __future__ import annotations

import streamlit as st

import detector
from detector.ui import classroom as cr
from detector.ui import presentation as pres
from pages import common
from pages.quiz import quiz

UPLOAD = "Upload my own image"


def pick_image(examples: list[cr.Example]) -> common.Upload | None:
    """The image for the live demos: an example, or the user's own upload."""
    st.header("Pick an image for the live demos")
    options = cr.example_options(examples, UPLOAD)
    left, right = st.columns([2, 1], gap="large")
    upload: common.Upload | None = None
    with left:
        choice = st.selectbox("Image", options, key="class_choice")
        if choice == UPLOAD:
            file = st.file_uploader(
                "Your image (it stays in memory, never on disk)",
                type=common.UPLOAD_FILTER,
                key="class_file",
            )
            if file is not None:
                upload = common.Upload(file.name, file.getvalue())
        else:
            index = options.index(choice)
            upload = common.example_upload(examples[index], index + 1)
            st.caption("The true answer for the examples is revealed in the quiz at the end.")
    if upload is None:
        st.info("Upload an image (or add examples) to run the live demos.", icon=":material/image:")
        return None
    checked = common.check_upload(upload.digest, upload)
    if checked.error is not None or checked.image is None:
        st.error(f"**{cr.md_escape(upload.name)}**: {checked.error}", icon=":material/block:")
        return None
    with right:
        st.image(checked.image, caption=cr.md_escape(upload.name), width="stretch")
    return upload


def model_sees(upload: common.Upload, featured: str) -> cr.ModelInput | None:
    """Section 1: the image as the model receives it, and the verdict."""
    st.header("1 · What the model sees")
    view = common.analyse(upload, featured, "gradcam")
    if view.prediction is None:
        st.error(f"Model `{featured}` failed: {view.error}", icon=":material/error:")
        return None
    seen, error = common.model_input_cached(
        common.models_root(), upload.digest, featured, "gradcam", upload
    )
    preprocessing, _ = cr.safe_call(lambda: cr.model_preprocessing(featured))
    if preprocessing is not None:
        st.markdown(cr.lesson_pipeline(preprocessing, view.prediction.threshold))
    checked = common.check_upload(upload.digest, upload)
    cols = st.columns(3, gap="medium")
    with cols[0]:
        st.image(checked.image, caption="Your image, as you see it", width="stretch")
    with cols[1]:
        if seen is not None:
            st.image(
                cr.enlarge(seen.seen),
                caption=f"What {featured} sees: {seen.size} x {seen.size} pixels",
                width="stretch",
            )
        else:
            st.error(f"Could not show the model's input: {error}")
    with cols[2]:
        common.show_verdict(view.prediction)
    return seen


def heatmaps(upload: common.Upload, info: detector.ModelInfo, seen: cr.ModelInput | None) -> None:
    """Section 2: every explanation method of one model, and where heatmaps mislead."""
    st.header("2 · Reading a heatmap, and where it misleads")
    st.markdown(cr.LESSON_HEATMAP)
    opacity = st.slider(
        "Heatmap opacity", 0.0, 1.0, common.DEFAULT_OPACITY, 0.05, key="class_opacity"
    )
    views = [common.analyse(upload, info.name, method) for method in info.methods]
    if all(view.view is None for view in views):
        st.error(f"Model `{info.name}` failed: {views[0].error}", icon=":material/error:")
        return
    for view, column in zip(views, st.columns(len(views), gap="medium"), strict=True):
        with column:
            if view.view is None:
                st.error(f"{view.method}: {view.error}")
                continue
            title = pres.METHOD_TITLES.get(view.view.method, view.view.method)
            st.image(view.view.overlay(opacity), caption=f"{title} · {info.name}", width="stretch")
    maps = [v.view for v in views if v.view is not None]
    if len(maps) > 1:
        st.markdown(cr.methods_agreement(maps))
    if seen is not None:
        rows, columns = seen.grid
        cols = st.columns([1, 1, 1.4], gap="medium")
        with cols[0]:
            st.image(
                cr.enlarge(seen.blocks),
                caption=f"What the model computed: {rows} x {columns} blocks",
                width="stretch",
            )
        with cols[1]:
            st.image(
                cr.enlarge(seen.smooth),
                caption="The same map, smoothed for display",
                width="stretch",
            )
        with cols[2]:
            st.markdown(cr.lesson_mislead(seen))
    with st.expander("What does the heatmap mean, and what not?"):
        st.markdown(pres.heatmap_note("gradcam"))


@st.fragment
def robustness(upload: common.Upload, names: list[str]) -> None:
    """Section 3: re-encode or shrink the image with a slider and re-score it live."""
    st.header("3 · Why compression and resizing fool detectors")
    st.markdown(cr.LESSON_COMPRESSION)
    kind = st.segmented_control(
        "Degradation",
        list(cr.DEGRADATIONS),
        default="jpeg",
        format_func=cr.DEGRADATIONS.get,
        key="class_kind",
        required=True,
    )
    kind = kind or "jpeg"
    if kind == "jpeg":
        level = st.slider(
            "JPEG quality (100 = best, 5 = crushed)", 5, 100, 100, 1, key="class_quality"
        )
    else:
        level = st.slider(
            "Size, % of the original width and height", 10, 100, 100, 5, key="class_size"
        )
    root = common.models_root()
    try:
        run = common.stress_cached(root, upload.digest, tuple(names), upload)
        degraded = common.degraded_upload(upload, kind, level)  # releases ``upload`` itself
    finally:
        upload.release()
    left, right = st.columns([1, 1.3], gap="large")
    with left:
        if degraded is None:
            st.warning(f"This image is too small to shrink to {level}%.")
        elif degraded.error or degraded.display is None:
            st.error(degraded.error)
        else:
            caption = cr.degraded_caption(degraded, kind, level)
            st.image(degraded.display, caption=caption, width="stretch")
    with right:
        if degraded is not None and degraded.error is None:
            try:
                for name in names:
                    view = common.analyse(degraded.upload, name, None)
                    if view.prediction is not None:
                        common.show_verdict(view.prediction, compact=True)
                    else:
                        st.error(f"Model `{name}` failed: {view.error}", icon=":material/error:")
            finally:
                degraded.upload.release()
        st.markdown(run.summary(kind))
    try:
        chart = common.curve_png(root, upload.digest, tuple(names), kind, level, upload)
    finally:
        upload.release()
    if chart is not None:
        st.image(
            chart,
            caption="Dotted line: the slider. Dashed lines: each model's threshold. Grey: mild "
            "changes (JPEG quality 75 or more, or at least half the size).",
            width="stretch",
        )
    st.caption(run.definition)


def model_cards(names: list[str]) -> None:
    """Section 4: measured results and known limits, from each model's card."""
    st.header("4 · How good are the models? Measured results and known limits")
    st.markdown(cr.LESSON_LIMITS)
    facts = cr.model_facts(names)
    if not facts:
        return
    for fact, tab in zip(facts, st.tabs([f.title or f.name for f in facts]), strict=True):
        with tab:
            if fact.summary:
                st.markdown(fact.summary)
            if not fact.measured:
                st.info("This model's card holds no measured results yet.")
            left, right = st.columns(2, gap="large")
            with left:
                if fact.test:
                    st.markdown(cr.test_set_title(fact))
                    st.table(dict(fact.test), hide_header=True)
                if fact.ood:
                    st.markdown(f"**{cr.HELD_OUT_TITLE}**")
                    st.table(dict(fact.ood), hide_header=True)
                if fact.per_generator:
                    st.markdown("**Fakes detected, per generator (test set)**")
                    st.dataframe(list(fact.per_generator), hide_index=True)
            with right:
                if fact.robustness:
                    st.markdown("**When test images are degraded** (compare with the clean set)")
                    st.dataframe(list(fact.robustness), hide_index=True)
                st.markdown("**Known limits**")
                st.markdown(cr.limits_markdown(fact))
            if fact.training or fact.dataset:
                with st.expander("Training data"):
                    if fact.dataset:
                        st.markdown(fact.dataset)
                    if fact.training:
                        st.dataframe(list(fact.training), hide_index=True)


# ---------------------------------------------------------------------------------- the page
st.title("Classroom: how do AI-image detectors work?")
st.markdown(cr.LESSON_INTRO)

infos = pres.trained_models()
if not infos:
    common.no_models()
    st.markdown(
        "The live demos below need a trained model. Until one is installed, here is the lesson "
        "without them."
    )
    for heading, text in (
        ("Reading a heatmap", cr.LESSON_HEATMAP),
        ("Why compression and resizing fool detectors", cr.LESSON_COMPRESSION),
        ("How good are the models?", cr.LESSON_LIMITS),
    ):
        st.subheader(heading)
        st.markdown(text)
    st.stop()

st.sidebar.header("Classroom settings")
names = common.model_picker(infos, key="class_models", default_count=min(2, len(infos)))
if not names:
    st.warning("Choose at least one model in the sidebar.", icon=":material/left_click:")
    st.stop()
featured = st.sidebar.selectbox(
    "Model for the heatmap lesson", names, key="class_featured", help="Sections 1 and 2 use it."
)
examples = common.examples()

upload = pick_image(examples)
if upload is not None:
    try:
        seen = model_sees(upload, featured)
        info = next(i for i in infos if i.name == featured)
        heatmaps(upload, info, seen)
    finally:  # the fragment below keeps ``upload`` for its reruns: bytes only
        upload.release()
    robustness(upload, names)
model_cards(names)
quiz(examples, names)
