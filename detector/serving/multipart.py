"""Multipart bodies rewritten as they stream, so that no visitor's file name reaches the disk.

`MultipartRewriter` re-emits each part of a ``multipart/form-data`` body with its headers in one
canonical form and every file part called ``upload`` plus a whitelisted extension
(`neutral_name`, `SAFE_EXTENSIONS`). Only one part's headers (at most `MAX_HEADER_BYTES`) and a
boundary's length of data are held back. Anything but a well-formed body raises `UploadRefused`
with the reason and the HTTP status to answer; `detector.serving.asgi` wires it into the app.
"""

from __future__ import annotations

import re

from detector.core.images import HEIF_EXTENSIONS, IMAGE_EXTENSIONS

#: The name every uploaded file gets (plus its extension when that is in `SAFE_EXTENSIONS`).
NEUTRAL_STEM = "upload"
#: Extensions an upload keeps (lower-cased): the image formats the detector reads, and zip.
SAFE_EXTENSIONS = frozenset({*IMAGE_EXTENSIONS, *HEIF_EXTENSIONS, "avif", "zip"})
#: Largest header block of one part, in bytes (Gradio's own parser allows 8 KiB as well).
MAX_HEADER_BYTES = 8 * 1024
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 2046: 1 to 70 characters from this set, not ending with a space.
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
# A field name that can be put between double quotes as it is.
_FIELD_NAME = re.compile(r'[^"\\\x00-\x1f\x7f]*')
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
