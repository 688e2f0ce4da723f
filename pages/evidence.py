"""The evidence board of the Detect page: what the file says, forensic views, the stress test.

Kept apart from the scores: provenance evidence read from the file's bytes, the residual spectrum
and ELA map, the stress test behind a toggle, and the combined headline above the verdicts. Every
text and view comes from `detector` (`detector.ui.presentation`); only layout and Streamlit
caching live here, on the building blocks of `pages.common`.
"""

from __future__ import annotations

import dataclasses

import streamlit as st

import detector
from detector.ui import classroom as cr
from detector.ui import presentation as pres
from pages import common


# ------------------------------------------------------------------------------------ evidence
@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def evidence_report(
    digest: str, _upload: common.Upload
) -> tuple[detector.EvidenceReport | None, str | None]:
    """The provenance evidence of an upload, read from its bytes (or why it cannot be read)."""
    return common.safe_call(lambda: detector.inspect_file(_upload.data))


@st.cache_data(max_entries=32, max_size="200MB", ttl=3600, show_spinner=False)
def forensic_views(
    digest: str, _upload: common.Upload
) -> tuple[list[pres.ForensicView] | None, str | None]:
    """The residual spectrum and ELA map of an upload (or why they could not be made)."""
    return common.safe_call(lambda: pres.forensic_views(_upload.array))


@st.cache_data(
    max_entries=64, ttl=3600, show_spinner="Re-scoring under JPEG re-encoding and downscaling…"
)
def evidence_stress(
    root: str, digest: str, names: tuple[str, ...], _upload: common.Upload
) -> pres.StressOutcome:
    """The stress test of an upload by each model (12 re-scored variants per model)."""
    outcome = pres.run_stress(_upload.array, names)
    return dataclasses.replace(outcome, errors=cr.visitor_errors(outcome.errors))


# ------------------------------------------------------------------------------------ headline
@st.cache_data(max_entries=256, ttl=3600, show_spinner=False)
def stability_cached(
    root: str, digest: str, name: str, _prediction: detector.Prediction, _upload: common.Upload
) -> tuple[detector.Stability | None, str | None]:
    """Whether a model's verdict on an upload survives JPEG q90 and a 0.75x resize (two more
    passes on the decoded image), keyed by image hash and model (or why it could not run)."""
    model, error = common.load_detector(root, name)
    if model is None:
        return None, error
    return common.safe_call(lambda: detector.check_stability(_upload.array, model, _prediction))


def stability_of(
    upload: common.Upload, views: list[cr.ModelOutcome]
) -> tuple[cr.ModelOutcome | None, detector.Stability | None]:
    """The first chosen model that answered, and its score's stability (None if the check could
    not run): the score the headline stands on, whose verdict card also says when it flips."""
    view = next((v for v in views if v.prediction is not None), None)
    if view is None or view.prediction is None:
        return None, None
    stability, _ = stability_cached(
        common.models_root(), upload.digest, view.model, view.prediction, upload
    )
    return view, stability


def headline_of(upload: common.Upload, views: list[cr.ModelOutcome]) -> detector.Headline:
    """The combined headline of an upload: its evidence (`evidence_report`, read before the page
    decodes the image), then the first chosen model that answered and that score's stability."""
    report, _ = evidence_report(upload.digest, upload)
    view, stability = stability_of(upload, views)
    if view is None:
        return detector.headline(report, None, None)
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


def show_forensics(upload: common.Upload) -> None:
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


def show_stress(upload: common.Upload, names: list[str], key: str) -> None:
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
    outcome = evidence_stress(common.models_root(), upload.digest, tuple(names), upload)
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


def show_evidence(upload: common.Upload, names: list[str], key: str) -> None:
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


def show_unreadable_provenance(upload: common.Upload) -> None:
    """For a file whose pixels cannot be decoded: its metadata, when any could still be read."""
    report, _ = evidence_report(upload.digest, upload)
    if report is None or not [it for it in report.found_items if it.kind != "file"]:
        return
    with st.popover("What the file itself still says", icon=":material/description:"):
        show_provenance(report)
