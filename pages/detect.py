"""Detect page: upload images, get the combined headline of each (`detector.headline`: the
file's evidence, then the first chosen model's score and its stability), verdicts and heatmaps
from every chosen model side by side, and, kept apart from the scores, each image's evidence
board (provenance, forensic views, stress test).

A batch is scored and shown one image at a time: each decoded image is dropped as soon as its
box is drawn, and its display copies and heatmaps once the page holds them, so a zip of many
big images costs about what one of them costs. The summary table and the CSV rows come from
the batch engine of the CLI's scan, run on each image's decode before it is dropped.
"""

from __future__ import annotations

import streamlit as st

import detector
from detector.ui import classroom as cr
from detector.ui import presentation as pres
from pages import common, evidence

#: Models shown next to each other in one row; more wrap onto the next row.
PER_ROW = 3

st.title("Is this image AI-generated?")
st.markdown(
    "Drop one or more images (or a `.zip` of them) to get a calibrated verdict from each chosen "
    "detector and a heatmap of where it looked. Scores are statistical evidence, not proof: "
    "read *What does the heatmap mean?* below before you rely on one."
)
st.page_link(
    "pages/classroom.py",
    label="New here? Classroom mode explains how detectors work, with live demos and a quiz.",
    icon=":material/school:",
)

infos = pres.trained_models()
all_infos = detector.list_models()
if not infos:
    common.no_models()
    common.untrained_note(all_infos)
    st.stop()

st.sidebar.header("Settings")
names = common.model_picker(infos, key="detect_models")
method = common.method_picker(infos, names, key="detect_method")
opacity = st.sidebar.slider(
    "Heatmap opacity", 0.0, 1.0, common.DEFAULT_OPACITY, 0.05, key="detect_opacity"
)
show_raw = st.sidebar.toggle("Also show the heatmap alone", key="detect_raw")
with st.sidebar.expander("About the chosen models"):
    for info in infos:
        if info.name in names:
            st.markdown(pres.model_summary(info))
common.untrained_note(all_infos)

files = st.file_uploader(
    "Images: drag and drop, or browse (PNG, JPEG, WebP, BMP, GIF, TIFF, or a .zip of them)",
    type=common.UPLOAD_FILTER,
    accept_multiple_files=True,
    key="detect_files",
    help="Files stay in memory and are never written to disk.",
)

# ---------------------------------------------------------------------------------- examples
examples = common.examples()
if examples:
    with st.expander("Examples: click one to analyse it", expanded=not files):
        columns = st.columns(min(len(examples), 6))
        for index, example in enumerate(examples):
            with columns[index % len(columns)]:
                thumb = common.thumbnail(str(example.path), example.path.stat().st_mtime)
                if thumb is not None:
                    st.image(thumb, caption=f"Example {index + 1}", width="stretch")
                if st.button("Analyse", key=f"detect_example_{index}", width="stretch"):
                    st.session_state["detect_example"] = index
        credits = [f"Example {i + 1}: {e.credit}" for i, e in enumerate(examples) if e.credit]
        if credits:
            st.caption("Credits. " + "; ".join(cr.md_escape(c) for c in credits) + ".")
        if st.session_state.get("detect_example") is not None and st.button(
            "Clear the example", key="detect_example_clear", type="tertiary"
        ):
            st.session_state["detect_example"] = None

inputs: list[common.Upload | pres.UploadItem] = []
chosen = st.session_state.get("detect_example")
if isinstance(chosen, int) and 0 <= chosen < len(examples):
    example = examples[chosen]
    upload = common.example_upload(example, chosen + 1)
    upload.note = cr.example_note(example, chosen + 1)
    inputs.append(upload)
if files:
    inputs.extend(common.uploads_from(files))

if not inputs:
    st.info("Upload, drop or pick an example image to start.", icon=":material/image:")
    st.stop()
if not names:
    st.warning("Choose at least one model in the sidebar.", icon=":material/left_click:")
    st.stop()


# ---------------------------------------------------------------------------------- results
def score(
    item: common.Upload | pres.UploadItem,
) -> tuple[common.Checked | None, list[cr.ModelOutcome], detector.Headline | None]:
    """One input's display-size copy, model views and combined headline (the upload still
    holds its decode)."""
    if isinstance(item, pres.UploadItem):  # refused while reading (too big, bad archive...)
        return None, [], None
    evidence.evidence_report(item.digest, item)  # read (and cached) before the page decodes
    checked = common.check_upload(item.digest, item)
    if checked.error is not None:
        return checked, [], None
    views = [common.analyse(item, name, method) for name in names]
    return checked, views, evidence.headline_of(item, views)


@st.cache_data(max_entries=256, ttl=3600, show_spinner=False)
def table_rows_cached(
    root: str, digest: str, names: tuple[str, ...], error: str | None, _upload: common.Upload
) -> list[pres.BatchRow]:
    """One upload's table rows (`held_rows`), keyed by image hash, models and read error."""
    return cr.held_rows(_upload, names, error)


def table_rows(item: common.Upload | pres.UploadItem, error: str | None) -> list[pres.BatchRow]:
    """An input's rows in the table and its CSV: the batch engine of the CLI's scan, run on
    the decode the page holds (so before `release`)."""
    if isinstance(item, pres.UploadItem):
        return cr.held_rows(item, names, error)
    return table_rows_cached(common.models_root(), item.digest, tuple(names), error, item)


def show_result(
    index: int,
    item: common.Upload | pres.UploadItem,
    checked: common.Checked | None,
    views: list[cr.ModelOutcome],
    headline: detector.Headline | None = None,
) -> None:
    """One input's box: the combined headline, the verdict cards and heatmaps, then its
    evidence board on demand."""
    title = cr.md_escape(item.name)
    if isinstance(item, pres.UploadItem) or checked is None:
        error = common.visitor_text(item.error)
        st.error(f"**{title}**: could not use this file ({error}).", icon=":material/block:")
        return
    if checked.error is not None or checked.image is None:
        st.error(f"**{title}**: {checked.error}", icon=":material/block:")
        evidence.show_unreadable_provenance(item)
        return
    if headline is not None:
        evidence.show_headline(headline)
    checked_view, stability = evidence.stability_of(item, views)
    for start in range(0, len(views), PER_ROW):
        chunk = views[start : start + PER_ROW]
        widths = [1.0] * (PER_ROW + 1 if len(views) > PER_ROW else len(chunk) + 1)
        # Row 1: what the file is, then one verdict card per model.
        top = st.columns(widths, gap="medium")
        with top[0]:
            if start == 0:
                st.markdown(f"**{title}**")
                st.caption(f"{checked.width} x {checked.height} px")
                if item.note:
                    st.caption(item.note)
                if len(views) > 1:
                    common.show_agreement(views)
        for view, column in zip(chunk, top[1:], strict=False):
            with column:
                common.show_model_card(view, stability if view is checked_view else None)
        # Row 2: the input next to each model's heatmap, aligned under the cards.
        bottom = st.columns(widths, gap="medium")
        with bottom[0]:
            if start == 0:
                st.image(checked.image, caption="Input", width="stretch")
        for view, column in zip(chunk, bottom[1:], strict=False):
            with column:
                common.show_model_heatmap(view, opacity, raw=show_raw)
    # The evidence board: on by default for a single image, one toggle per image otherwise.
    key = f"detect_evidence_{index}_{item.digest[:16]}"
    if st.toggle(
        "Evidence beyond the score: provenance, forensic views, stress test",
        value=len(inputs) == 1,
        key=key,
    ):
        evidence.show_evidence(item, names, key)


# Each input is scored and shown in turn, then dropped: only the table rows (and the failed
# models' messages) outlive its box. The failures and the batch summary go above the boxes,
# once every input is scored.
summary = st.container()
rows: list[pres.BatchRow] = []
failed_models: dict[str, str | None] = {}
progress = st.progress(0.0, text="Scoring…") if len(inputs) * len(names) > 2 else None
for index, item in enumerate(inputs):
    box = (
        st.container(border=True)
        if len(inputs) == 1
        else st.expander(cr.md_escape(item.name), expanded=index < 3, icon=":material/image:")
    )
    with box:
        try:
            checked, views, headline = score(item)
            # the table's rows: the batch engine of the CLI's scan, on the decode held here
            rows.extend(table_rows(item, checked.error if checked else None))
            show_result(index, item, checked, views, headline)
        finally:  # its box and evidence board are drawn: the decoded image goes
            common.release(item)
    failed_models.update((view.model, view.error) for view in views if not view.ok)
    del checked, views, headline  # display copies and heatmaps: the page has them now
    if progress is not None:
        done = index + 1
        progress.progress(done / len(inputs), text=f"Scored {done} of {len(inputs)} images…")
if progress is not None:
    progress.empty()

csv_button = {
    "label": "Download results (CSV)",
    "data": cr.results_csv(rows),
    "file_name": "fakedetect-results.csv",
    "mime": "text/csv",
    "icon": ":material/download:",
    "on_click": "ignore",
}
with summary:
    if failed_models:
        st.warning(
            "Some models failed; the others' results are shown.\n\n"
            + "\n".join(f"- `{name}`: {error}" for name, error in failed_models.items()),
            icon=":material/warning:",
        )
    if len(inputs) > 1:
        st.subheader("Summary")
        st.markdown(pres.batch_summary(rows))
        st.dataframe(
            [
                {
                    "file": row.file,
                    "model": row.model,
                    "verdict": pres.HEADLINES.get(row.verdict, row.verdict) if row.verdict else "",
                    "P(AI-generated)": row.p_fake,
                    "error": row.error or "",
                }
                for row in rows
            ],
            hide_index=True,
            column_config={
                "P(AI-generated)": st.column_config.ProgressColumn(
                    "P(AI-generated)", min_value=0.0, max_value=1.0, format="percent"
                )
            },
        )
        st.download_button(**csv_button, key="detect_csv_top")

if len(inputs) == 1:
    st.download_button(**csv_button, key="detect_csv")
with st.expander("What does the heatmap mean?"):
    st.markdown(pres.heatmap_note(method))
