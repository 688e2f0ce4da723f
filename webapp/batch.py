"""The Batch tab: many files (images or zip archives) scored by the chosen models, as a table
and a CSV file."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import gradio as gr

import detector
from detector import serving
from detector.ui import app_texts
from detector.ui import presentation as pres
from webapp.common import RAW, find_model, name_of, path_of

BATCH_HEADERS = list(pres.BATCH_FIELDS)
_CSV_DIR: list[Path] = []


def _csv_dir() -> Path:
    """A private folder for batch CSV files (generated names, pruned after an hour)."""
    if not _CSV_DIR or not _CSV_DIR[0].is_dir():
        _CSV_DIR[:] = [Path(tempfile.mkdtemp(prefix="fakedetect-app-"))]
    return _CSV_DIR[0]


class Uploads(Sequence[str | tuple[str, bytes]]):
    """Uploaded files for `pres.read_uploads`: ``(the visitor's name, bytes)``, each file read only
    when its turn comes (its path when it is too large or unreadable, for read_uploads to say so).
    """

    def __init__(self, files: list[tuple[str, str]]) -> None:
        self._files = files  # (path, name shown)

    def __len__(self) -> int:
        return len(self._files)

    def __getitem__(self, index: int) -> str | tuple[str, bytes]:  # type: ignore[override]
        path, name = self._files[index]
        limits = pres.UploadLimits()
        limit = max(limits.max_file_bytes, limits.max_total_bytes)
        try:  # at most limit + 1 bytes, whatever the size the file system reports
            with open(path, "rb") as file:
                data = file.read(limit + 1)
        except OSError:
            return path
        return (name, data) if len(data) <= limit else path


def batch(
    files: Any,
    model_names: list[str] | None,
    request: gr.Request | None = None,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio fills it in per event)
) -> tuple[list[list[Any]], str | None, str]:
    """Score many files (images or zip archives) with the chosen models.

    ``files`` are paths or Gradio file payloads; rows show a payload's ``orig_name``, the name
    the visitor's file had, which never reaches the disk.

    Returns:
        (table rows in `presentation.BATCH_FIELDS` order, CSV file path, summary Markdown).
    """
    if isinstance(files, (str, Path, dict)):
        files = [files]
    uploads = [(p, name_of(f)) for f in (files or []) if (p := path_of(f, request))]
    if not uploads:
        return [], None, "Upload images or a .zip archive first."
    # Only trained models' names (this event skips Gradio's check of the choices).
    names = []
    for requested in [name for name in (model_names or []) if name] or [None]:
        info, problem = find_model(str(requested)[:80] if requested is not None else None)
        if info is None:
            return [], None, problem or pres.no_models_message()
        names.append(info.name)
    items = pres.read_uploads(Uploads(uploads))

    done = [0]

    def advance(files_done: int) -> None:  # the engine reports each chunk's number of files
        done[0] += files_done
        progress((done[0], len(items)), desc="Scoring", unit="files")

    advance(0)
    # One image decoded at a time: a batch of large images never sits in memory at once.
    rows = [
        replace(row, error=serving.scrub_paths(row.error)) if row.error else row
        for row in pres.batch_rows(items, names, chunk=1, progress=advance)
    ]
    folder = _csv_dir()
    pres.prune_files(folder)
    csv_path = pres.write_csv(rows, folder)
    return [row.to_list() for row in rows], str(csv_path), pres.batch_summary(rows)


@dataclass
class BatchTab:
    """The Batch tab's components: the files and models in, the table, CSV and summary out."""

    files: Any
    models: Any
    button: Any
    outputs: list[Any]


def layout(trained: list[detector.ModelInfo], default: detector.ModelInfo | None) -> BatchTab:
    """Lay out the Batch tab (inside its `gr.Tab`)."""
    gr.Markdown(app_texts.batch_intro(serving.MAX_UPLOAD_FILES, serving.MAX_UPLOAD_BYTES))
    with gr.Row():
        files = gr.File(
            label="Images or .zip archives",
            file_count="multiple",
            type="filepath",
            elem_id="fd-batch-files",
        )
        with gr.Column():
            models = gr.CheckboxGroup(
                choices=pres.model_choices(trained),
                value=[default.name] if default else [],
                label="Models",
            )
            button = gr.Button("Score all files", variant="primary")
    status = gr.Markdown(label="summary")
    table = gr.Dataframe(headers=BATCH_HEADERS, interactive=False, wrap=True, label="Results")
    csv_file = gr.File(label="Results as CSV", interactive=False)
    return BatchTab(files, models, button, [table, csv_file, status])


def wire(tab: BatchTab) -> None:
    """Wire the Batch tab's button, which is also the ``/batch`` endpoint."""
    tab.button.click(batch, [tab.files, tab.models], tab.outputs, api_name="batch", **RAW)
