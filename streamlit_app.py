"""Streamlit app: is this image AI-generated? Detect, explain and compare, plus a classroom mode.

Runs offline on the models in ``assets/models`` (or ``$FAKEDETECT_MODELS_DIR``) and deploys
unchanged on Streamlit Community Cloud: ``streamlit run streamlit_app.py``. Two pages:
``pages/detect.py`` (upload, verdicts, heatmaps, every chosen model side by side) and
``pages/classroom.py`` (a guided lesson on how detectors work, with live demos and a quiz).
Every score, heatmap and sentence comes from the `detector` package.
"""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import streamlit as st

st.set_page_config(
    page_title="fakedetect: is this image AI-generated?",
    page_icon="🔎",  # an emoji favicon is drawn locally; a Material one would be fetched online
    layout="wide",
    menu_items={
        "About": "fakedetect: open, offline detectors of AI-generated images, with heatmaps "
        "of where each model looked. Scores are statistical evidence, not proof."
    },
)

page = st.navigation(
    [
        st.Page("pages/detect.py", title="Detect", icon=":material/image_search:", default=True),
        st.Page(
            "pages/classroom.py", title="Classroom", icon=":material/school:", url_path="classroom"
        ),
    ],
    position="top",
)
page.run()
