"""What the Gradio and the Streamlit apps share, so that neither re-implements the other.

It owns the view models and texts both apps render (one model's answer on one image is the one
`outcome.ModelOutcome`): `presentation` runs models for the apps and re-exports what its sibling
modules build (texts, model list, verdicts and verdict cards, headline and heatmap views, uploads
and batch files, the evidence board), and `classroom` does the same for the classroom (model cards,
lessons, robustness curves, the quiz as a pure state machine in `quiz`) and for what the Streamlit
pages hold (uploads in memory in `held`, error texts without server paths in `visitor`). Both apps
draw the same verdict card, probability bar and notice (`verdict_cards`). What only the Gradio
app's tabs show is built here too: the Compare and Evidence views and the model lookup
(`app_views`), the JSON of its API (`api_payloads`), its long texts (`app_texts`) and its example
gallery (`example_gallery`). Batch tables come from the batch engine of `detector.scale.batch`, as
the CLI's scan does. It may import `detector.core`, `detector.evidence` and `detector.scale`. The
apps themselves (`app.py` and its tabs in `webapp/`, `streamlit_app.py`, `pages/`) import only
`detector`, `detector.ui` and, for the hosting of uploads, `detector.serving`
(`tests/test_architecture.py` checks this).
"""

__all__ = ["classroom", "outcome", "presentation"]
