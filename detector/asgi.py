"""ASGI middleware that keeps visitors' file names off the disk.

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

Pure ASGI and the standard library only: it wraps any ASGI app (``Middleware(NeutralUploadNames)``
in Starlette or FastAPI, which is how ``app.py`` passes it to Gradio).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

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

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 2046: 1 to 70 characters from this set, not ending with a space.
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
# A field name that can be put between double quotes as it is.
_FIELD_NAME = re.compile(r'[^"\\\x00-\x1f\x7f]*')
# A URL scheme (RFC 3986) of two characters or more: ``C:`` is a Windows drive, not a scheme.
_URL_SCHEME = re.compile(r"\s*[A-Za-z][A-Za-z0-9+.\-]+:")


class UploadRefused(ValueError):
    """A multipart body that is not passed on, with the reason shown to the client."""


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

    def __init__(self, boundary: bytes, max_header_bytes: int = MAX_HEADER_BYTES) -> None:
        self.boundary = boundary
        self.max_header_bytes = max_header_bytes
        self._delimiter = b"\r\n--" + boundary
        self._buffer = bytearray(b"\r\n")  # the first delimiter comes without its CRLF
        self._state = "start"
        self._first = True

    def _emit_delimiter(self) -> bytes:
        delimiter = self._delimiter[2:] if self._first else self._delimiter
        self._first = False
        return delimiter

    def feed(self, data: bytes) -> bytes:
        """The rewritten bytes that ``data`` completes (possibly none)."""
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


async def _answer_refusal(send: Send, reason: str) -> None:
    log.info("upload refused: %s", reason)
    body = f"Upload refused: {reason}.\n".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 400,
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
        self.body_done = False
        self.response_started = False
        self.answered = False

    def _poisoned(self, reason: str) -> Message:
        self.refusal = reason
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
                return self._poisoned(str(exc))
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
            await _answer_refusal(send, self.refusal)


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


async def _answer_json(send: Send, status: int, detail: str) -> None:
    log.info("request refused with %d: %s", status, detail)
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
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
    ``upload.<safe extension>``, and other HTTP requests whose body has a file whose path is a
    URL are refused (see the module docstring); the rest, websockets included, pass unchanged.

    Args:
        app: The ASGI app to wrap.
        max_header_bytes: Largest header block of one part; bigger ones are refused.
        max_json_bytes: Largest body of a request that is not multipart; bigger ones get 413.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_header_bytes: int = MAX_HEADER_BYTES,
        max_json_bytes: int = MAX_JSON_BYTES,
    ) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes
        self.max_json_bytes = max_json_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = list(scope.get("headers") or [])
        types = [value for key, value in headers if key.lower() == b"content-type"]
        if not any(b"multipart" in value.lower() for value in types):
            await _checked_body(self.app, scope, receive, send, self.max_json_bytes)
            return
        try:
            boundary = form_boundary(types)
        except UploadRefused as exc:
            await _answer_refusal(send, str(exc))
            return
        # The canonical Content-Type; no Content-Length, as the rewritten body has another one.
        kept = [(k, v) for k, v in headers if k.lower() not in (b"content-type", b"content-length")]
        kept.append((b"content-type", b'multipart/form-data; boundary="' + boundary + b'"'))
        rewriter = MultipartRewriter(boundary, self.max_header_bytes)
        await _Upload(self.app, rewriter).run({**scope, "headers": kept}, receive, send)
