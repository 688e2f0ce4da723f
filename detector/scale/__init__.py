"""Scanning many images: the batch scan engine and its Apache Beam pipeline.

It owns `batch` (path expansion, decoding once per file on disk or image held in memory, every
model's rows with the `SCAN_FIELDS` schema: the one engine behind `detector.scan`, the CLI and both
apps' batch tables) and `beam` (the same rows on any Beam runner, from the plain steps in
`beam_steps`; Apache Beam is imported only when a pipeline is built). It may import `detector.core`,
never the evidence, UI or serving layers, nor the CLI.
"""
