"""The Gradio app's longer texts: the page's introduction, the evidence board's and the batch
tab's, and the API and privacy notes (`API_DOCS`).

Markdown strings, so that the layout holds no prose; nothing here imports a UI library.
"""

from __future__ import annotations

from detector.ui.evidence_board import EVIDENCE_INTRO as BOARD_INTRO

#: The evidence board's introduction: what both apps say, and what the Gradio one does.
EVIDENCE_INTRO = (
    BOARD_INTRO
    + " Provenance is read from the uploaded file itself; an image pasted from the clipboard is a "
    "fresh copy and carries no metadata. The stress test re-scores the image about 12 times per "
    "model."
)

#: The page's title and introduction.
INTRO = """# Is this image AI-generated?
Drop an image to get a calibrated verdict from a trained detector and a heatmap of where it looked.
Scores are statistical evidence, not proof: read the note under the heatmap before you rely on one.
"""

#: The API & privacy tab: how to call every endpoint and what it returns.
API_DOCS = """### API
Every call below works with `gradio_client` (`pip install gradio_client`):

```python
from gradio_client import Client, handle_file
client = Client("http://127.0.0.1:7860/")          # or "user/space-name"
client.predict(handle_file("photo.jpg"), "", api_name="/predict")      # "" = best model
client.predict(handle_file("photo.jpg"), api_name="/compare")         # every model
client.predict(handle_file("photo.jpg"), "", "gradcam", api_name="/explain")
client.predict(handle_file("photo.jpg"), api_name="/inspect")         # provenance evidence
client.predict(api_name="/models")
```

`/predict` returns `{"model", "p_fake", "label", "label_title", "threshold", "seconds",
"uncertain_band", "warnings", "patches", "stability", "headline"}`; `label` is `fake`, `real` or
`uncertain`, `label_title` its words. `headline` is the combined headline, the one the Detect
tab shows first: `{"label", "title", "basis", "reasons", "order"}`, `label` one of
`ai_generated`, `camera_original`, `likely_ai`, `likely_real`, `uncertain`, `cannot_tell`;
`basis` what decided it (`signature`, `declaration`, `model`, `none`) by the rules of `order`,
first match wins; each reason `{"source", "text", "strength"}`. `stability` says whether the
verdict survives JPEG q90 and a 0.75x resize. `patches` lists
the views the score combines, each `{"x", "y", "size", "p_fake", "fake_logit"}` (`"whole_image":
true` for the whole picture resized, `"scene_view": true` for its central square shrunk to the
scale the model learnt scenes at, which counts for half): a native-resolution model scores a
large image on up to 16 patches and `p_fake` combines them (mean logit), a small image on its
central crop. `/explain`
adds `method` and `patch`, the index in `patches` its heatmap explains (the most suspicious).
`/compare` returns `{"agreement": {...}, "models": [...]}` where a model that failed has an
`error` and no score (there and in `/explain`, `headline` is the model's verdict in words).
`/inspect` returns the file's provenance evidence, read from the file's own bytes and kept apart
from any model score: `{"readable", "format", "width", "height", "headline", "note", "items",
"verdict"}`, each item with `kind`, `title`, `found`, `summary`, `indicates`, `details`, `proves`
and `does_not_prove`; `headline` is the evidence board's one line, `verdict` the combined
headline from the evidence alone (no model). An unreadable file is an error whose message names
the problem (e.g. `truncated_file`).

### Privacy
Images are scored in memory and never leave this server. Gradio keeps uploads in its temporary
cache under neutral names (`upload.png`; your file's name is never written to disk), and the app
clears that cache of files older than an hour, every hour; zip archives are opened in memory and
batch CSV files get generated names. No usage statistics are sent.
"""


def batch_intro(max_files: int, max_bytes: int) -> str:
    """What the Batch tab does, with the upload limits (files and bytes)."""
    return (
        "Score many images at once: upload image files and/or `.zip` archives. "
        "Each (file, model) pair becomes one row; files that are not readable images "
        "get a row with the error. Archives are opened in memory. One upload holds "
        f"at most {max_files} files and {max_bytes // (1024 * 1024)} MB."
    )
