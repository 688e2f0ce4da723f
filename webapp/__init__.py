"""The Gradio app's tabs, one module each, assembled by ``app.py``'s `build_demo`.

`common` holds what every tab shares (limits, the examples, file paths from Gradio payloads,
the concurrency group of heavy events), `detect` the Detect tab with its result tabs `compare`
and `evidence`, `batch` the Batch tab and `api` the JSON API endpoints and their tab. Each
module lays out its components and wires its handlers; the handlers read the input, call
`detector` and `detector.ui`, and map the answer to Gradio outputs. Like ``app.py``, these
modules import only `detector`, `detector.ui` and `detector.serving` from this project
(`tests/test_architecture.py` checks this).
"""
