"""ASGI middleware that keeps visitors' file names off the disk, refuses server-side fetches of
URLs, bounds uploads, and gives each client a fair share of the queue.

Gradio stores every upload as ``<cache>/<content hash>/<file name sent by the browser>``.
`NeutralUploadNames` rewrites the ``multipart/form-data`` requests an app receives so that every
file part is called ``upload`` plus a whitelisted extension (``upload.png``, ``upload.zip``; just
``upload`` when the extension is not in `SAFE_EXTENSIONS`) before the app parses them. The
``filename*`` forms (RFC 5987/2231) are dropped, as multipart parsers ignore them anyway.

The body is streamed, not buffered: only one part's headers (at most `MAX_HEADER_BYTES`) and a
boundary's length of data are held back, so the app's own upload size limit still applies.
The rewriter accepts only well-formed bodies (what browsers, ``httpx`` and ``gradio_client`` send)
and re-emits the parts' headers in one canonical form, so that the app's parser cannot read them
differently. Anything else (a preamble, transport padding, folded or oversized headers, a body
that ends early, a client that disconnects mid-upload) is refused with 400: the app is fed a
malformed part, which makes its parser fail and delete the files it had started, and the visitor
gets the reason instead of the app's answer.

Gradio also downloads a file input whose ``path`` is a URL (``{"path": "https://host/x.png",
"meta": {"_type": "gradio.FileData"}}``, what ``gradio_client.handle_file(url)`` sends) into
``<cache>/<hash of the URL>/<the URL's file name>``: the server fetches a URL of the caller's
choosing and stores it under a name of the caller's choosing. Gradio has no setting to turn this
off, so every other request with a body is read whole (at most `MAX_JSON_BYTES`, else 413) and
parsed with ``json.loads``, the parser Starlette and Gradio use. A body in which an object has a
``path`` string starting with a URL scheme (`remote_file_path`) is refused with 400 before the app
sees it; any other body, JSON or not, reaches the app unchanged, and the app answers a body it
cannot parse as it always did. Only ``path`` counts: Gradio's own frontend sends ``url`` fields
that are full ``http://`` URLs of files already in the cache, and Gradio never fetches the
``url`` of an input (only apps built with ``gr.load`` do, which this one is not).

The same middleware refuses (403) a ``GET`` or ``HEAD`` of Gradio's file route whose target is a
URL (``/gradio_api/file=https://host/x``), which Gradio would fetch and relay (`route_refusal`),
and Gradio's screen-recording route, which this app does not use. A multipart body may hold at
most `MAX_UPLOAD_FILES` files and `MAX_UPLOAD_BYTES` bytes (413 past it, counted as it streams),
and a ``files`` part without a plain ``filename`` is refused with 400 (Gradio would answer 500).

The multipart rewriting itself is `detector.serving.multipart`. For the handlers behind these
routes, `detector.serving.paths` confines the file paths a request may name and scrubs server
paths from error texts. `detector.serving.fair_queue.FairQueue` caps the events each client has
waiting or running, so that one client cannot fill the queue and lock everyone else out
(``NeutralUploadNames(app, fair_queue={...})`` puts one behind the upload middleware).

Pure ASGI and the standard library only: it wraps any ASGI app (``Middleware(NeutralUploadNames)``
in Starlette or FastAPI, which is how ``app.py`` passes them to Gradio).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from detector.serving.fair_queue import FairQueue
from detector.serving.multipart import (
    MAX_HEADER_BYTES,
    MultipartRewriter,
    UploadRefused,
    form_boundary,
)
from detector.serving.protocol import (
    MAX_JSON_BYTES,
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    _answer_json,
    log,
)

#: What a caller that passes a URL as a file is told.
REMOTE_FILE_REFUSED = "Remote URLs are not accepted as files; upload the file instead."
#: Largest ``multipart/form-data`` body, in bytes: what one upload request may add to the disk.
MAX_UPLOAD_BYTES = 60 * 1024 * 1024
#: Most files in one ``multipart/form-data`` body.
MAX_UPLOAD_FILES = 200
#: Fields that must hold files: Gradio's upload route reads every ``files`` part as a file.
FILE_FIELDS = frozenset({"files"})
#: What a caller that asks the server to fetch a URL through its file route is told.
REMOTE_FETCH_REFUSED = "This server does not fetch remote URLs; only its own files are served."
#: What a caller of a route the app does not serve is told.
ROUTE_REFUSED = "This route is not served by this app."
#: Routes refused whatever the method: Gradio's screen-recording helper (ffmpeg re-encodes,
#: outside the queue), which this app does not use.
REFUSED_ROUTES = ("/process_recording",)

# A URL scheme (RFC 3986) of two characters or more: ``C:`` is a Windows drive, not a scheme.
_URL_SCHEME = re.compile(r"\s*[A-Za-z][A-Za-z0-9+.\-]+:")
# Gradio's file routes: ``/gradio_api/file=<path or URL>`` and ``/gradio_api/file/<...>``.
_FILE_ROUTE = re.compile(r"/file[=/]")


async def _answer_refusal(send: Send, reason: str, status: int = 400) -> None:
    log.info("upload refused: %s", reason)
    body = f"Upload refused: {reason}.\n".encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


class _Upload:
    """One multipart request passed through a `MultipartRewriter`."""

    def __init__(self, app: ASGIApp, rewriter: MultipartRewriter) -> None:
        self.app = app
        self.rewriter = rewriter
        self.refusal: str | None = None
        self.status = 400
        self.body_done = False
        self.response_started = False
        self.answered = False

    def _poisoned(self, reason: str, status: int = 400) -> Message:
        self.refusal = reason
        self.status = status
        self.body_done = True
        return {"type": "http.request", "body": self.rewriter.poison(), "more_body": False}

    async def run(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def rewritten_receive() -> Message:
            if self.body_done:  # the body was passed on: only a disconnect is news now
                message = await receive()
                while message["type"] == "http.request":
                    message = await receive()
                return message
            message = await receive()
            if message["type"] == "http.disconnect":
                # Let the app's parser fail (and delete its partial files) rather than
                # abort with the files it had started.
                return self._poisoned("the client disconnected during the upload")
            if message["type"] != "http.request":
                return message
            more = bool(message.get("more_body", False))
            try:
                body = self.rewriter.feed(message.get("body", b""))
                if not more:
                    body += self.rewriter.close()
            except UploadRefused as exc:
                return self._poisoned(str(exc), exc.status)
            self.body_done = not more
            return {"type": "http.request", "body": body, "more_body": more}

        async def checked_send(message: Message) -> None:
            if self.refusal is not None and not self.response_started:
                # The app answers the malformed part; the client gets the real reason.
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    await self._answer(send)
                return
            if message["type"] == "http.response.start":
                self.response_started = True
            await send(message)

        try:
            await self.app(scope, rewritten_receive, checked_send)
        except Exception:
            if self.refusal is None or self.response_started:
                raise
        if self.refusal is not None and not self.response_started:
            await self._answer(send)

    async def _answer(self, send: Send) -> None:
        if not self.answered and self.refusal is not None:
            self.answered = True
            await _answer_refusal(send, self.refusal, self.status)


def remote_file_path(data: Any) -> str | None:
    """A ``path`` in decoded JSON ``data`` that is a URL (Gradio would download it), or None.

    Every object, at any depth, with a string ``path`` counts as a file, with or without Gradio's
    ``"meta": {"_type": "gradio.FileData"}``; the path is a URL when it starts with a scheme of two
    characters or more (``http:``, ``https:``, ``ftp:``, ``data:``, ``file:``...), whatever its
    case and leading white space. Other fields, ``url`` included, are not looked at.
    """
    stack = [data]
    while stack:  # a loop, not recursion: no RecursionError whatever the nesting
        value = stack.pop()
        if isinstance(value, dict):
            path = value.get("path")
            if isinstance(path, str) and _URL_SCHEME.match(path):
                return path
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return None


def json_refusal(body: bytes) -> str | None:
    """Why a request body that is not multipart is refused, or None to pass it on unchanged.

    A body that does not parse passes too: the app parses bodies with the same ``json.loads``, so
    it cannot read a file value from it either, and it answers as it always did. Only a body
    nested too deeply for ``json.loads`` is refused without being parsed.
    """
    if not body:
        return None
    try:
        data = json.loads(body)
    except RecursionError:
        return "The JSON body is nested too deeply."
    except ValueError:
        return None
    return REMOTE_FILE_REFUSED if remote_file_path(data) is not None else None


def route_refusal(scope: Scope) -> tuple[int, str] | None:
    """(status, reason) for a request this app does not serve, or None.

    Refused with 403: `REFUSED_ROUTES` whatever the method, and a ``GET`` or ``HEAD`` of Gradio's
    file route (``/file=<target>`` or ``/file/<target>``) whose target, percent-decoded up to
    three times, starts with a URL scheme: Gradio would fetch and relay that URL.
    """
    path = str(scope.get("path") or "")
    if path.rstrip("/").endswith(REFUSED_ROUTES):
        return 403, ROUTE_REFUSED
    if str(scope.get("method", "")).upper() not in ("GET", "HEAD"):
        return None
    for match in _FILE_ROUTE.finditer(path):
        target = path[match.end() :]
        for _ in range(4):
            if _URL_SCHEME.match(target) or target.lstrip().startswith(("//", "\\\\")):
                return 403, REMOTE_FETCH_REFUSED
            decoded = unquote(target)
            if decoded == target:
                break
            target = decoded
    return None


async def _checked_body(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, max_bytes: int
) -> None:
    """Read the whole body, refuse it (413, or 400 with `json_refusal`'s reason) or replay it."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away: nothing to answer
            return
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            await _answer_json(
                send,
                413,
                f"The request body exceeds {max_bytes} bytes; "
                "send files as uploads (multipart/form-data).",
            )
            return
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    reason = json_refusal(body)
    if reason is not None:
        await _answer_json(send, 400, reason)
        return
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:  # the body was passed on: only a disconnect is news now
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    await app(scope, replay, send)


class NeutralUploadNames:
    """ASGI middleware: file parts of ``multipart/form-data`` requests reach the app as
    ``upload.<safe extension>``, other HTTP requests whose body has a file whose path is a URL are
    refused, and so are the routes `route_refusal` names (see the module docstring); the rest,
    websockets included, pass unchanged.

    Args:
        app: The ASGI app to wrap.
        max_header_bytes: Largest header block of one part; bigger ones are refused.
        max_json_bytes: Largest body of a request that is not multipart; bigger ones get 413.
        max_upload_bytes: Largest multipart body; bigger ones get 413 (None: no limit).
        max_upload_files: Most file parts in one multipart body (None: no limit).
        file_fields: Field names whose parts must be files (carry a ``filename``).
        fair_queue: When given, `FairQueue` arguments: the app is wrapped in a `FairQueue`
            behind this middleware (which then sees bodies already checked), so that one
            ``Middleware(NeutralUploadNames, fair_queue=...)`` installs both.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_header_bytes: int = MAX_HEADER_BYTES,
        max_json_bytes: int = MAX_JSON_BYTES,
        max_upload_bytes: int | None = MAX_UPLOAD_BYTES,
        max_upload_files: int | None = MAX_UPLOAD_FILES,
        file_fields: frozenset[str] = FILE_FIELDS,
        fair_queue: Mapping[str, Any] | None = None,
    ) -> None:
        self.app = app if fair_queue is None else FairQueue(app, **fair_queue)
        self.max_header_bytes = max_header_bytes
        self.max_json_bytes = max_json_bytes
        self.max_upload_bytes = max_upload_bytes
        self.max_upload_files = max_upload_files
        self.file_fields = frozenset(file_fields)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = route_refusal(scope)
        if refused is not None:
            await _answer_json(send, *refused)
            return
        headers = list(scope.get("headers") or [])
        types = [value for key, value in headers if key.lower() == b"content-type"]
        if not any(b"multipart" in value.lower() for value in types):
            await _checked_body(self.app, scope, receive, send, self.max_json_bytes)
            return
        try:
            boundary = form_boundary(types)
        except UploadRefused as exc:
            await _answer_refusal(send, str(exc), exc.status)
            return
        # The canonical Content-Type; no Content-Length, as the rewritten body has another one.
        kept = [(k, v) for k, v in headers if k.lower() not in (b"content-type", b"content-length")]
        kept.append((b"content-type", b'multipart/form-data; boundary="' + boundary + b'"'))
        rewriter = MultipartRewriter(
            boundary,
            self.max_header_bytes,
            max_body_bytes=self.max_upload_bytes,
            max_files=self.max_upload_files,
            file_fields=self.file_fields,
        )
        await _Upload(self.app, rewriter).run({**scope, "headers": kept}, receive, send)
