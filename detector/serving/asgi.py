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

For the handlers behind these routes, `confine` accepts a file path only when it resolves
(symbolic links and ``..`` followed) inside given folders, such as Gradio's upload cache and the
bundled examples, and `scrub_paths` turns the absolute paths in an error text into their last
component before a visitor sees it.

`FairQueue` caps the events each client has waiting or running, so that one client cannot fill
the queue and lock everyone else out (``NeutralUploadNames(app, fair_queue={...})`` puts one
behind the upload middleware).

Pure ASGI and the standard library only: it wraps any ASGI app (``Middleware(NeutralUploadNames)``
in Starlette or FastAPI, which is how ``app.py`` passes them to Gradio).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("fakedetect.uploads")

#: The name every uploaded file gets (plus its extension when that is in `SAFE_EXTENSIONS`).
NEUTRAL_STEM = "upload"
#: Extensions an upload keeps (lower-cased): the image formats the detector reads, and zip.
SAFE_EXTENSIONS = frozenset(
    {"png", "jpg", "jpeg", "webp", "gif", "bmp", "tif", "tiff", "heic", "heif", "avif", "zip"}
)
#: Largest header block of one part, in bytes (Gradio's own parser allows 8 KiB as well).
MAX_HEADER_BYTES = 8 * 1024
#: Largest body of a request that is not ``multipart/form-data``, in bytes. Gradio's API and
#: queue bodies hold component values and paths of uploaded files: a few KiB.
MAX_JSON_BYTES = 1024 * 1024
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

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 2046: 1 to 70 characters from this set, not ending with a space.
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
# A field name that can be put between double quotes as it is.
_FIELD_NAME = re.compile(r'[^"\\\x00-\x1f\x7f]*')
# A URL scheme (RFC 3986) of two characters or more: ``C:`` is a Windows drive, not a scheme.
_URL_SCHEME = re.compile(r"\s*[A-Za-z][A-Za-z0-9+.\-]+:")
# Gradio's file routes: ``/gradio_api/file=<path or URL>`` and ``/gradio_api/file/<...>``.
_FILE_ROUTE = re.compile(r"/file[=/]")
# The Content-Disposition line `rewrite_headers` writes in a part's headers.
_CANONICAL_PART = re.compile(
    rb'^Content-Disposition: form-data; name="(?P<name>[^"]*)"'
    rb'(?:; filename="(?P<filename>[^"]*)")?\r$',
    re.MULTILINE,
)


class UploadRefused(ValueError):
    """A multipart body that is not passed on, with the reason shown to the client and the
    HTTP status it is answered with (400, or 413 for a body over its size limit)."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.status = status


def neutral_name(filename: str) -> str:
    """The name an upload called ``filename`` is stored under: ``upload`` + a safe extension."""
    base = re.split(r"[\\/]", filename)[-1]
    _, dot, extension = base.rpartition(".")
    extension = extension.strip().lower()
    return f"{NEUTRAL_STEM}.{extension}" if dot and extension in SAFE_EXTENSIONS else NEUTRAL_STEM


def _split_params(value: str) -> list[str]:
    """A header value split at the semicolons outside double-quoted strings, each stripped."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in value:
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    parts.append("".join(current).strip())
    return parts


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1], flags=re.DOTALL)
    return value


def form_boundary(content_types: list[bytes]) -> bytes:
    """The boundary of a request with these Content-Type values, which must be one valid
    ``multipart/form-data`` type.

    Raises:
        UploadRefused: Several Content-Types, another multipart type, or a missing or
            malformed boundary.
    """
    if len(content_types) != 1:
        raise UploadRefused("the request has more than one Content-Type")
    kind, *params = _split_params(content_types[0].decode("latin-1"))
    if kind.lower() != "multipart/form-data":
        raise UploadRefused(f"{kind[:60]!r} is not multipart/form-data")
    boundaries = [
        _unquote(value)
        for key, _, value in (param.partition("=") for param in params)
        if key.strip().lower() == "boundary"
    ]
    if len(boundaries) != 1 or not _BOUNDARY.fullmatch(boundaries[0]):
        raise UploadRefused("the multipart boundary is missing or malformed")
    return boundaries[0].encode("latin-1")


def rewrite_disposition(value: bytes) -> bytes:
    """A part's Content-Disposition value in canonical form, its file name made neutral.

    ``form-data; name="<name>"`` plus ``; filename="upload.<ext>"`` when the part had a
    ``filename``; every other parameter (``filename*`` included) is dropped.

    Raises:
        UploadRefused: Not ``form-data``, no ``name``, or a name that cannot be quoted as it is.
    """
    kind, *params = _split_params(value.decode("latin-1"))
    if kind.lower() != "form-data":
        raise UploadRefused(f"a part is {kind[:40]!r}, not form-data")
    name = filename = None
    for param in params:
        key, _, raw = param.partition("=")
        key = key.strip().lower()
        if key == "name":
            name = _unquote(raw)
        elif key == "filename":
            filename = _unquote(raw)
    if name is None:
        raise UploadRefused("a part has no field name")
    if not _FIELD_NAME.fullmatch(name):
        raise UploadRefused("a field name holds quotes, backslashes or control characters")
    canonical = f'form-data; name="{name}"'
    if filename is not None:
        canonical += f'; filename="{neutral_name(filename)}"'
    return canonical.encode("latin-1")


def rewrite_headers(block: bytes) -> bytes:
    """A part's header block (lines without the final blank line) in canonical form.

    Keeps the Content-Disposition (rewritten by `rewrite_disposition`) and Content-Type
    headers, each line ending in CRLF; drops the others.

    Raises:
        UploadRefused: A malformed or folded line, a bare CR or LF, or not exactly one
            Content-Disposition.
    """
    lines: list[bytes] = []
    dispositions = 0
    for line in block.split(b"\r\n") if block else []:
        field, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(field):
            raise UploadRefused("a part has a malformed header line")
        if b"\r" in value or b"\n" in value:
            raise UploadRefused("a part header holds a bare CR or LF")
        value = value.strip(b" \t")
        if field.lower() == b"content-disposition":
            dispositions += 1
            lines.append(b"Content-Disposition: " + rewrite_disposition(value))
        elif field.lower() == b"content-type":
            lines.append(b"Content-Type: " + value)
    if dispositions != 1:
        raise UploadRefused("a part does not have exactly one Content-Disposition header")
    return b"".join(line + b"\r\n" for line in lines)


class MultipartRewriter:
    """Rewrites one ``multipart/form-data`` body, chunk by chunk, into canonical form.

    `feed` returns the bytes that are safe to pass on so far; `close` checks that the body ended
    with its closing boundary. Both raise `UploadRefused` on a body they do not accept. The output
    always stops between parts or inside a part's data, never inside headers, so `poison` can
    always follow it.
    """

    def __init__(
        self,
        boundary: bytes,
        max_header_bytes: int = MAX_HEADER_BYTES,
        *,
        max_body_bytes: int | None = None,
        max_files: int | None = None,
        file_fields: frozenset[str] = frozenset(),
    ) -> None:
        """
        Args:
            boundary: The body's boundary (`form_boundary`).
            max_header_bytes: Largest header block of one part.
            max_body_bytes: Largest body (as sent), refused with 413 past it; None: no limit.
            max_files: Most parts with a file name; None: no limit.
            file_fields: Field names whose parts must carry a ``filename`` (Gradio's upload
                route fails with a 500 on a plain field called ``files``).
        """
        self.boundary = boundary
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self.max_files = max_files
        self.file_fields = frozenset(file_fields)
        self._delimiter = b"\r\n--" + boundary
        self._buffer = bytearray(b"\r\n")  # the first delimiter comes without its CRLF
        self._state = "start"
        self._first = True
        self._received = 0
        self._files = 0

    def _check_part(self, headers: bytes) -> None:
        """Count a part with a file name; refuse a file field without one, or one file too many."""
        match = _CANONICAL_PART.search(headers)
        if match is None:  # `rewrite_headers` always writes this form
            raise UploadRefused("a part has no Content-Disposition")
        if match["filename"] is None:
            if match["name"].decode("latin-1") in self.file_fields:
                raise UploadRefused(
                    f"the part {match['name'].decode('latin-1')!r} is not a file "
                    '(it needs a plain filename="..." parameter)'
                )
            return
        self._files += 1
        if self.max_files is not None and self._files > self.max_files:
            raise UploadRefused(f"more than {self.max_files} files in one request")

    def _emit_delimiter(self) -> bytes:
        delimiter = self._delimiter[2:] if self._first else self._delimiter
        self._first = False
        return delimiter

    def feed(self, data: bytes) -> bytes:
        """The rewritten bytes that ``data`` completes (possibly none)."""
        self._received += len(data)
        if self.max_body_bytes is not None and self._received > self.max_body_bytes:
            raise UploadRefused(
                f"the request exceeds {self.max_body_bytes // (1024 * 1024)} MB; "
                "send fewer or smaller files at a time",
                status=413,
            )
        buf, delimiter = self._buffer, self._delimiter
        size = len(delimiter)
        buf += data
        out = bytearray()
        while True:
            if self._state == "start":
                if len(buf) < size:
                    break
                if not buf.startswith(delimiter):
                    raise UploadRefused("the body does not start with its boundary")
                self._state = "boundary"
            elif self._state == "data":
                at = buf.find(delimiter)
                if at < 0:  # pass the data on, but keep what may be the start of a delimiter
                    if len(buf) >= size:
                        out += buf[: len(buf) - size + 1]
                        del buf[: len(buf) - size + 1]
                    break
                out += buf[:at]
                del buf[:at]
                self._state = "boundary"
            elif self._state == "boundary":  # buf starts with a delimiter
                if len(buf) < size + 2:
                    break
                after = bytes(buf[size : size + 2])
                if after == b"--":
                    out += self._emit_delimiter() + b"--\r\n"
                    buf.clear()
                    self._state = "end"
                elif after == b"\r\n":
                    self._state = "headers"
                else:
                    raise UploadRefused("a boundary is followed by neither CRLF nor --")
            elif self._state == "headers":  # buf starts with a delimiter and CRLF
                end = buf.find(b"\r\n\r\n", size)
                if (end if end >= 0 else len(buf)) - size > self.max_header_bytes:
                    raise UploadRefused(f"a part's headers exceed {self.max_header_bytes} bytes")
                if end < 0:
                    break
                headers = rewrite_headers(bytes(buf[size + 2 : end]))
                self._check_part(headers)
                out += self._emit_delimiter() + b"\r\n" + headers + b"\r\n"
                del buf[: end + 4]
                self._state = "data"
            else:  # "end": the epilogue is dropped
                buf.clear()
                break
        return bytes(out)

    def close(self) -> bytes:
        """Check that the body ended with its closing boundary (the rest was passed on)."""
        if self._state != "end":
            raise UploadRefused("the body ends before its closing boundary")
        return b""

    def poison(self) -> bytes:
        """A part with a NUL byte in its header, which makes any multipart parser fail."""
        return self._delimiter + b"\r\n\x00\r\n\r\n"


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


# ------------------------------------------------------------------------------------ file paths
#: What a visitor is told when a request names a file outside the allowed folders.
PATH_REFUSED = "refused_path: only files uploaded to this app (or its examples) can be read"

# An absolute path of two components or more (``/a/b``, ``C:\\a\\b``) not inside a URL or a
# longer word; group ``name`` is its last component.
_ABSOLUTE_PATH = re.compile(
    r"(?<![\w.:/\\~%-])(?:[A-Za-z]:)?[/\\](?:[^\s/\\'\"`<>|]+[/\\])+(?P<name>[^\s/\\'\"`<>|]*)"
)


class PathRefused(ValueError):
    """A request named a file outside the folders it may read (the message names no path)."""

    def __init__(self, message: str = PATH_REFUSED) -> None:
        super().__init__(message)
        self.message = message


def confine(path: object, roots: Iterable[str | os.PathLike[str]]) -> str:
    """``path`` resolved, if it lies inside (or is) one of ``roots``, also resolved.

    Anything else is refused: a value that is not a non-empty path string, a NUL byte, a path
    that cannot be resolved, or one that resolves elsewhere (relative paths are resolved against
    the working directory, so they are refused unless it is one of ``roots``).

    Raises:
        PathRefused: The path may not be read.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise PathRefused()
    text = os.fspath(path)
    if not isinstance(text, str) or not text or "\x00" in text:
        raise PathRefused()
    try:
        resolved = Path(text).resolve()
        allowed = [Path(root).resolve() for root in roots]
    except (OSError, RuntimeError, ValueError):
        raise PathRefused() from None
    if any(resolved.is_relative_to(root) for root in allowed):
        return str(resolved)
    raise PathRefused()


def scrub_paths(text: str) -> str:
    """``text`` with every absolute file path replaced by its last component.

    ``"weights missing: /srv/models/a/../../x.keras"`` becomes ``"weights missing: x.keras"``.
    URLs (``https://host/a/b``) and relative paths are left alone.
    """
    return _ABSOLUTE_PATH.sub(lambda match: match.group("name"), text)


# ------------------------------------------------------------------------------------ fair queue
#: Events one client may have waiting or running at once, and how many of those may be heavy.
MAX_PENDING_PER_CLIENT = 16
MAX_HEAVY_PER_CLIENT = 6
#: Seconds after which an event stops counting against its client, whatever the app says.
PENDING_MAX_AGE_S = 1800.0
#: What a client over its share is told (with 429 and ``Retry-After``).
TOO_MANY_PENDING = (
    "Too many of your requests are waiting ({count}); try again when some have finished."
)
# Routes that start an event: Gradio's queue and its REST routes (``/call/<api>``,
# ``/call/v2/<api>``, ``/run/<api>``, ``/api/<api>``); ``GET /call/<api>/<event id>`` streams
# a result and starts nothing.
_EVENT_ROUTE = re.compile(r"/(?:queue/join|(?:call|run|api)/(?:v2/)?(?P<api>[^/]+))/?\Z")


def client_key(scope: Scope) -> str:
    """Who sent a request: the first hop of ``X-Forwarded-For`` when present (the address the
    front proxy saw), else the peer address.

    The first hop is what the client or the first proxy wrote: behind a proxy that does not
    overwrite the header, a client can pick its own key.
    """
    for key, value in scope.get("headers") or []:
        if key.lower() == b"x-forwarded-for":
            first = value.decode("latin-1").split(",")[0].strip()
            if first:
                return first[:100]
    client = scope.get("client")
    return str(client[0]) if client else "-"


@dataclass(eq=False)
class _Ticket:
    """One event a client started: counted while its request runs, then while the app still
    holds its event id (at most `FairQueue.max_age` seconds)."""

    heavy: bool
    created: float
    in_flight: bool = True
    event_id: str | None = None


class FairQueue:
    """ASGI middleware: each client may have at most ``max_pending`` events waiting or running
    (``max_heavy`` of them heavy); past that, a new one is answered 429 before the app sees it.

    An event is a ``POST`` to a route that starts one (``/queue/join``, ``/call/<api>``,
    ``/run/<api>``, ``/api/<api>``). It counts from its request until the answer, and then, when
    the answer holds an ``event_id`` (the queue accepted it), for as long as ``pending(event_id)``
    says the app still holds it. It stops counting after ``max_age`` seconds in any case, so a
    count cannot leak, whatever the app or the client do. Without ``pending``, an event counts
    only while its request runs.

    An event is heavy when its api name is in ``heavy_apis`` or its ``fn_index`` (read from the
    JSON body of ``/queue/join``, at most ``max_body_bytes``) is in ``heavy_events``; a body
    without a readable ``fn_index`` counts as heavy.

    Args:
        app: The ASGI app to wrap.
        pending: Whether the app still holds (queues or runs) an event id.
        heavy_events: ``fn_index`` values of heavy events.
        heavy_apis: Api names of heavy events.
        max_pending: Events per client.
        max_heavy: Heavy events per client.
        max_age: Seconds after which an event no longer counts.
        max_body_bytes: Largest ``/queue/join`` body read for its ``fn_index``.
        clock: Monotonic seconds (for tests).
    """

    def __init__(
        self,
        app: ASGIApp,
        pending: Callable[[str], bool] | None = None,
        heavy_events: Collection[int] = (),
        heavy_apis: Collection[str] = (),
        max_pending: int = MAX_PENDING_PER_CLIENT,
        max_heavy: int = MAX_HEAVY_PER_CLIENT,
        max_age: float = PENDING_MAX_AGE_S,
        max_body_bytes: int = MAX_JSON_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.pending = pending
        self.heavy_events = frozenset(heavy_events)
        self.heavy_apis = frozenset(heavy_apis)
        self.max_pending = max_pending
        self.max_heavy = max_heavy
        self.max_age = max_age
        self.max_body_bytes = max_body_bytes
        self.clock = clock
        self._tickets: dict[str, list[_Ticket]] = {}
        self._calls = 0

    def counted(self, key: str) -> tuple[int, int]:
        """(events, heavy events) that count against client ``key`` now."""
        tickets = self._live(key, self.clock())
        return len(tickets), sum(t.heavy for t in tickets)

    def _counts(self, ticket: _Ticket, now: float) -> bool:
        if now - ticket.created > self.max_age:
            return False
        if ticket.in_flight:
            return True
        if ticket.event_id is None or self.pending is None:
            return False
        try:
            return bool(self.pending(ticket.event_id))
        except Exception:  # a broken predicate must not lock clients out
            log.exception("pending(%r) failed", ticket.event_id)
            return False

    def _live(self, key: str, now: float) -> list[_Ticket]:
        tickets = [t for t in self._tickets.get(key, ()) if self._counts(t, now)]
        if tickets:
            self._tickets[key] = tickets
        else:
            self._tickets.pop(key, None)
        return tickets

    def _sweep(self, now: float) -> None:
        self._calls += 1
        if self._calls % 256 == 0:
            for key in list(self._tickets):
                self._live(key, now)

    async def _fn_index(self, receive: Receive) -> tuple[int | None, Receive]:
        """The ``fn_index`` of a JSON body (None if unreadable), and a receive that replays it."""
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_body_bytes or not message.get("more_body", False):
                break
        fn_index = None
        if size <= self.max_body_bytes and messages[-1]["type"] == "http.request":
            try:
                data = json.loads(b"".join(m.get("body", b"") for m in messages))
            except (ValueError, RecursionError):
                data = None
            value = data.get("fn_index") if isinstance(data, dict) else None
            fn_index = value if isinstance(value, int) and not isinstance(value, bool) else None

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        return fn_index, replay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = (
            _EVENT_ROUTE.search(str(scope.get("path") or ""))
            if scope["type"] == "http" and str(scope.get("method", "")).upper() == "POST"
            else None
        )
        if match is None:
            await self.app(scope, receive, send)
            return
        if match["api"] is not None:
            heavy = match["api"] in self.heavy_apis
        else:
            fn_index, receive = await self._fn_index(receive)
            heavy = fn_index is None or fn_index in self.heavy_events
        key = client_key(scope)
        now = self.clock()
        self._sweep(now)
        tickets = self._live(key, now)
        heavy_count = sum(t.heavy for t in tickets)
        if len(tickets) >= self.max_pending or (heavy and heavy_count >= self.max_heavy):
            count = heavy_count if heavy and heavy_count >= self.max_heavy else len(tickets)
            await _answer_json(
                send, 429, TOO_MANY_PENDING.format(count=count), [(b"retry-after", b"10")]
            )
            return
        ticket = _Ticket(heavy, now)
        self._tickets.setdefault(key, []).append(ticket)
        status = 0
        answer = bytearray()

        async def watched_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and len(answer) <= 4096:
                answer.extend(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        finally:
            ticket.in_flight = False
            ticket.event_id = _event_id(answer) if status == 200 else None
            if ticket.event_id is None or self.pending is None:
                self._live(key, self.clock())  # drops this ticket now


def _event_id(answer: bytes | bytearray) -> str | None:
    """The ``event_id`` of a small JSON answer, or None."""
    if len(answer) > 4096:
        return None
    try:
        data = json.loads(bytes(answer))
    except ValueError:
        return None
    value = data.get("event_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) and value else None
