"""Serving the apps safely: ASGI middleware and the upload policy.

It owns what sits between a browser and the handlers: neutral upload names and upload limits
(`asgi`, rewriting bodies with `multipart`), the refusal of server-side URL fetches, path
confinement and the scrubbing of server paths from messages (`paths`), and the per-client fair
queue (`fair_queue`). It may import `detector.core`; it imports no UI code, so either app can
mount it. The names below are what the apps use.
"""

from detector.serving.asgi import MAX_UPLOAD_BYTES, MAX_UPLOAD_FILES, NeutralUploadNames
from detector.serving.fair_queue import FairQueue
from detector.serving.paths import PathRefused, confine, scrub_paths

__all__ = [
    "MAX_UPLOAD_BYTES",
    "MAX_UPLOAD_FILES",
    "FairQueue",
    "NeutralUploadNames",
    "PathRefused",
    "confine",
    "scrub_paths",
]
