"""What the Gradio and the Streamlit apps share, so that neither re-implements the other.

It owns the view models and texts both apps render (`presentation`) and the classroom quiz
(`classroom`). It may import `detector.core` and `detector.evidence`. The apps themselves
(`app.py`, `streamlit_app.py`, `pages/`) import only `detector`, `detector.ui` and, for the
hosting of uploads, `detector.serving` (`tests/test_architecture.py` checks this).
"""

__all__ = ["classroom", "presentation"]
