"""The ASGI vocabulary the serving middlewares share: message types, the refusal, the body limit.

Refusals are answered as Starlette and Gradio answer errors, a JSON ``{"detail": ...}`` body, and
logged (logger ``fakedetect.uploads``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("fakedetect.uploads")
#: Largest body of a request that is not ``multipart/form-data``, in bytes. Gradio's API and
#: queue bodies hold component values and paths of uploaded files: a few KiB.
MAX_JSON_BYTES = 1024 * 1024


async def _answer_json(
    send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    log.info("request refused with %d: %s", status, detail)
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
