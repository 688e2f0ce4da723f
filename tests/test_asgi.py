"""`detector.serving.asgi`: uploads reach the app as ``upload.<ext>``, whatever the request called
them, and request bodies that pass a file as a URL (which Gradio would download) are refused.

The rewritten bodies are parsed with Gradio's own multipart parser (what its upload route stores),
and the middleware is tested around a fake ASGI app and around a real Gradio app in-process.
"""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import pytest

from detector.serving import asgi, fair_queue, multipart
from detector.serving.asgi import NeutralUploadNames
from detector.serving.multipart import MultipartRewriter, UploadRefused, neutral_name

BOUNDARY = b"----fdBoundary7MA4YWxkTrZu0gW"
CONTENT_TYPE = b"multipart/form-data; boundary=" + BOUNDARY
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def part(disposition: bytes, data: bytes, content_type: bytes | None = b"image/png") -> bytes:
    headers = b"Content-Disposition: " + disposition + b"\r\n"
    if content_type is not None:
        headers += b"Content-Type: " + content_type + b"\r\n"
    return b"--" + BOUNDARY + b"\r\n" + headers + b"\r\n" + data + b"\r\n"


def body(*parts: bytes) -> bytes:
    return b"".join(parts) + b"--" + BOUNDARY + b"--\r\n"


def file_part(filename: bytes, data: bytes = PNG, name: bytes = b"files") -> bytes:
    return part(b'form-data; name="' + name + b'"; filename=' + filename, data)


def rewrite(data: bytes, sizes: list[int] | None = None) -> bytes:
    """The rewritten body, fed in chunks of ``sizes`` (one chunk when None)."""
    rewriter = MultipartRewriter(BOUNDARY)
    chunks, at = [], 0
    for size in sizes or []:
        chunks.append(data[at : at + size])
        at += size
    chunks.append(data[at:])
    out = b"".join(rewriter.feed(chunk) for chunk in chunks)
    return out + rewriter.close()


def gradio_parse(data: bytes, folder: Path) -> list[tuple[str, str | None, bytes]]:
    """(field, file name, content) of each part, as Gradio's upload route parses them."""
    from gradio.route_utils import GradioMultiPartParser
    from starlette.datastructures import Headers

    async def stream():
        yield data

    async def parse():
        headers = Headers({"content-type": CONTENT_TYPE.decode()})
        parser = GradioMultiPartParser(
            headers,
            stream(),
            max_files=100,
            max_fields=100,
            max_file_size=10**9,
            upload_dir=str(folder),
        )
        return await parser.parse()

    form = asyncio.run(parse())
    parts = []
    for key, value in form.multi_items():
        if isinstance(value, str):
            parts.append((key, None, value.encode()))
        else:
            parts.append((key, value.filename, Path(value.file.name).read_bytes()))
            value.file.close()
    return parts


# ------------------------------------------------------------------------------------ names
@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("photo.png", "upload.png"),
        ("PHOTO.JPG", "upload.jpg"),
        ("x.jpeg", "upload.jpeg"),
        ("archive.zip", "upload.zip"),
        ("../../etc/passwd", "upload"),
        ("../../evil.png", "upload.png"),
        ("C:\\Users\\me\\evil.webp", "upload.webp"),
        ("shell.php", "upload"),
        ("image.png.exe", "upload"),
        ("image.exe.png", "upload.png"),
        ("фото 😀.png", "upload.png"),
        ("x.пнг", "upload"),
        ("no extension", "upload"),
        ("trailing.png.", "upload"),
        (".png", "upload.png"),
        ("", "upload"),
    ],
)
def test_neutral_name_keeps_only_a_safe_extension(filename, expected):
    assert neutral_name(filename) == expected
    assert neutral_name(filename) in {"upload", *(f"upload.{e}" for e in multipart.SAFE_EXTENSIONS)}


# ------------------------------------------------------------------------------------ bodies
ODD_NAMES = {
    "traversal": (b'"../../etc/passwd"', "upload"),
    "traversal with image extension": (b'"../evil name;rm -rf.png"', "upload.png"),
    "windows path": (b'"C:\\\\evil\\\\dir\\\\x.JPG"', "upload.jpg"),
    "escaped quote": (b'"evil\\"; filename=\\"x.sh\\".png"', "upload.png"),
    "percent-encoded quote": (b'"evil%22.png"', "upload.png"),
    "semicolon inside quotes": (b'"a;filename=evil.php;b.gif"', "upload.gif"),
    "unquoted": (b"evil.bmp", "upload.bmp"),
    "unicode (raw UTF-8)": ('"фото \u202egnp.exe 😀.png"'.encode(), "upload.png"),
    "control characters": (b'"a\x01\x7fb.tiff"', "upload.tiff"),
    "very long": (b'"' + b"A" * 5000 + b'.webp"', "upload.webp"),
    "empty": (b'""', "upload"),
}


@pytest.mark.parametrize("case", sorted(ODD_NAMES))
def test_odd_file_names_become_neutral_names(case, tmp_path):
    raw, expected = ODD_NAMES[case]
    rewritten = rewrite(body(file_part(raw)))
    assert gradio_parse(rewritten, tmp_path) == [("files", expected, PNG)]
    # the rewritten headers hold no trace of the name that was sent
    headers = rewritten.split(b"\r\n\r\n", 1)[0]
    assert headers == (
        b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="files"; '
        b'filename="' + expected.encode() + b'"\r\nContent-Type: image/png'
    )


def test_rfc5987_filename_star_is_dropped(tmp_path):
    both = file_part(b"\"x.png\"; filename*=UTF-8''..%2F..%2Fevil%20%E2%82%AC.php")
    star_only = part(b"form-data; name=\"files\"; filename*=UTF-8''..%2Fevil.png", b"text")
    continued = part(b'form-data; name="files"; filename*0="../ev"; filename*1="il.png"', b"text")
    assert gradio_parse(rewrite(body(both)), tmp_path) == [("files", "upload.png", PNG)]
    # Gradio's parser ignores the starred forms: without a plain filename the part is a field
    for alone in (star_only, continued):
        rewritten = rewrite(body(alone))
        assert b"filename" not in rewritten and b"evil" not in rewritten
        assert gradio_parse(rewritten, tmp_path) == [("files", None, b"text")]


def test_fields_content_and_other_headers(tmp_path):
    data = body(
        part(b'form-data; name="session_hash"', b"abc123", content_type=None),
        file_part(b'"a.png"', PNG),
        part(
            b'form-data; name="files"; filename="b.zip"', b"PK\x03\x04 zip-ish", b"application/zip"
        ),
        # part data that looks like a part and a boundary without being one
        file_part(b'"c.gif"', b"\r\n--" + BOUNDARY[:-1] + b"x\r\nContent-Disposition: x\r\n\r\n"),
    )
    data = data.replace(
        b"Content-Type: image/png\r\n\r\n" + PNG,
        b"content-disposition-extra: y\r\nX-Evil: ../../name.png\r\nContent-Type: image/png"
        b"\r\n\r\n" + PNG,
        1,
    )
    rewritten = rewrite(data)
    assert b"X-Evil" not in rewritten and b"name.png" not in rewritten
    assert gradio_parse(rewritten, tmp_path) == [
        ("session_hash", None, b"abc123"),
        ("files", "upload.png", PNG),
        ("files", "upload.zip", b"PK\x03\x04 zip-ish"),
        ("files", "upload.gif", b"\r\n--" + BOUNDARY[:-1] + b"x\r\nContent-Disposition: x\r\n\r\n"),
    ]
    # the rewriter keeps no file data: Gradio's parser wrote every file (and only renamed them)
    assert len(list(tmp_path.iterdir())) == 3


def test_no_parts_and_epilogue():
    assert rewrite(b"--" + BOUNDARY + b"--") == b"--" + BOUNDARY + b"--\r\n"
    assert rewrite(body(file_part(b'"a.png"')) + b"epilogue ../evil.png") == rewrite(
        body(file_part(b'"a.png"'))
    )


# ------------------------------------------------------------------------------------ chunks
def _chunked_body() -> bytes:
    return body(
        part(b'form-data; name="session_hash"', b"abc", content_type=None),
        file_part(b'"../evil name;rm -rf.png"', PNG[:300]),
        file_part('"фото.jpg"'.encode(), b"\r\n--" + BOUNDARY[:10] + b"\r\n\r\n"),
    )


def test_every_split_into_two_chunks_gives_the_same_body():
    data = _chunked_body()
    whole = rewrite(data)
    assert b"evil" not in whole and "фото".encode() not in whole
    for at in range(len(data) + 1):
        assert rewrite(data, [at]) == whole, at


def test_byte_by_byte_and_random_chunks_give_the_same_body():
    data = _chunked_body()
    whole = rewrite(data)
    assert rewrite(data, [1] * len(data)) == whole
    rng = random.Random(5)
    for _ in range(200):
        sizes, left = [], len(data)
        while left > 0:
            sizes.append(min(left, rng.randint(0, 60)))
            left -= sizes[-1]
        assert rewrite(data, sizes) == whole


def test_output_never_stops_inside_headers():
    """Each chunk of output ends between parts or inside data, so `poison` can follow it."""
    data = _chunked_body()
    rewriter = MultipartRewriter(BOUNDARY)
    out = b""
    for byte in data:
        out += rewriter.feed(bytes([byte]))
        tail = out.rsplit(b"--" + BOUNDARY, 1)[-1]
        assert out == b"" or b"\r\n\r\n" in tail or tail.startswith(b"--")


# ------------------------------------------------------------------------------------ refusals
REFUSALS = {
    "preamble": (b"preamble\r\n" + body(file_part(b'"a.png"')), "does not start"),
    "leading CRLF": (b"\r\n" + body(file_part(b'"a.png"')), "does not start"),
    "padding after boundary": (
        body(file_part(b'"a.png"')).replace(BOUNDARY + b"\r\n", BOUNDARY + b" \r\n", 1),
        "neither CRLF nor --",
    ),
    "folded header": (
        body(part(b'form-data; name="files";\r\n filename="evil.png"', PNG)),
        "malformed header line",
    ),
    "bare LF in header": (
        body(part(b'form-data; name="files"; filename="a.png"\nX: y', PNG)),
        "bare CR or LF",
    ),
    "two dispositions": (
        body(part(b'form-data; name="files"\r\nContent-Disposition: form-data; name="x"', PNG)),
        "exactly one Content-Disposition",
    ),
    "no disposition": (
        b"--" + BOUNDARY + b"\r\nContent-Type: image/png\r\n\r\nx\r\n--" + BOUNDARY + b"--",
        "exactly one Content-Disposition",
    ),
    "no field name": (body(part(b'form-data; filename="a.png"', PNG)), "no field name"),
    "quote in field name": (
        body(part(b'form-data; name="a\\"b"; filename="a.png"', PNG)),
        "field name holds",
    ),
    "not form-data": (body(part(b'attachment; name="files"; filename="a.png"', PNG)), "not form"),
    "huge headers": (body(file_part(b'"' + b"A" * 20_000 + b'.png"')), "exceed 8192 bytes"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_malformed_bodies_are_refused(case):
    data, reason = REFUSALS[case]
    with pytest.raises(UploadRefused, match=reason):
        rewrite(data)


def test_a_body_that_ends_early_is_refused():
    data = body(file_part(b'"a.png"'))
    for cut in (len(data) - 3, len(data) // 2, 10):
        with pytest.raises(UploadRefused, match="ends before its closing boundary"):
            rewrite(data[:cut])


@pytest.mark.parametrize(
    ("content_type", "reason"),
    [
        (b"multipart/form-data", "boundary is missing"),
        (b"multipart/form-data; boundary=", "boundary is missing"),
        (b'multipart/form-data; boundary="a\\"b"', "malformed"),
        (b"multipart/form-data; boundary=" + b"a" * 71, "malformed"),
        (b"multipart/form-data; boundary=a; boundary=b", "missing or malformed"),
        (b"multipart/mixed; boundary=abc", "not multipart/form-data"),
    ],
)
def test_bad_content_types_are_refused(content_type, reason):
    with pytest.raises(UploadRefused, match=reason):
        multipart.form_boundary([content_type])


def test_content_type_boundary():
    assert multipart.form_boundary([CONTENT_TYPE]) == BOUNDARY
    assert (
        multipart.form_boundary([b'Multipart/Form-Data; charset=utf-8; boundary="a b:c"'])
        == b"a b:c"
    )
    with pytest.raises(UploadRefused, match="more than one"):
        multipart.form_boundary([CONTENT_TYPE, CONTENT_TYPE])


def test_poison_makes_gradio_refuse_and_delete_its_partial_files(tmp_path):
    from gradio.route_utils import MultiPartException

    good = file_part(b'"a.png"')
    bad = part(b'form-data; name="files"; filename="b.png"\r\n folded', PNG)
    rewriter = MultipartRewriter(BOUNDARY)
    sent = rewriter.feed(good + bad[:50])  # the first file and part of the second
    with pytest.raises(UploadRefused):
        rewriter.feed(bad[50:])
    assert sent.startswith(b"--" + BOUNDARY) and PNG[:100] in sent
    for prefix in (b"", sent, sent[:-3]):
        with pytest.raises(MultiPartException):
            gradio_parse(prefix + rewriter.poison(), tmp_path)
        assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------ middleware
class Recorder:
    """A fake ASGI app that reads the whole body, then answers 200 (or raises)."""

    def __init__(self, raises: bool = False) -> None:
        self.scope: dict[str, Any] | None = None
        self.body = b""
        self.messages: list[dict[str, Any]] = []
        self.raises = raises

    async def __call__(self, scope, receive, send):
        self.scope = scope
        if scope["type"] == "http":
            while True:
                message = await receive()
                self.messages.append(message)
                if message["type"] != "http.request":
                    break
                self.body += message.get("body", b"")
                if not message.get("more_body"):
                    break
        if self.raises:
            raise RuntimeError("parse error")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def call(
    app: Any, data: bytes, content_type: bytes = CONTENT_TYPE, chunk: int = 7, tail=()
) -> list[dict[str, Any]]:
    """Send ``data`` through ``app`` in ``chunk``-byte messages, then the ``tail`` messages and
    disconnects; the messages the app sent back."""
    messages = [
        {"type": "http.request", "body": data[i : i + chunk], "more_body": i + chunk < len(data)}
        for i in range(0, len(data), chunk)
    ]
    messages += list(tail)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/gradio_api/upload",
        "headers": [(b"content-type", content_type), (b"content-length", b"%d" % len(data))],
    }
    sent: list[dict[str, Any]] = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def test_middleware_rewrites_multipart_requests():
    inner = Recorder()
    data = _chunked_body()
    sent = call(NeutralUploadNames(inner), data)
    assert sent[0]["status"] == 200
    assert inner.body == rewrite(data)
    assert inner.scope is not None
    assert inner.scope["headers"] == [
        (b"content-type", b'multipart/form-data; boundary="' + BOUNDARY + b'"')
    ]
    assert inner.messages[-1]["more_body"] is False


def test_middleware_passes_other_requests_unchanged():
    inner = Recorder()
    data = b'{"data": [{"path": "x", "orig_name": "../evil.png"}]}'
    call(NeutralUploadNames(inner), data, content_type=b"application/json")
    assert inner.body == data
    assert (
        inner.scope is not None and (b"content-length", b"%d" % len(data)) in inner.scope["headers"]
    )
    ws = Recorder()
    asyncio.run(NeutralUploadNames(ws)({"type": "websocket"}, None, _ignore))
    assert ws.scope == {"type": "websocket"}


async def _ignore(message):
    return None


def test_middleware_refuses_bad_content_type_before_the_app():
    inner = Recorder()
    sent = call(NeutralUploadNames(inner), b"x", content_type=b"multipart/form-data")
    assert inner.scope is None
    assert sent[0]["status"] == 400
    assert sent[1]["body"] == b"Upload refused: the multipart boundary is missing or malformed.\n"


@pytest.mark.parametrize("raises", [False, True])
def test_middleware_refusal_mid_body_poisons_the_app_and_answers_the_reason(raises):
    inner = Recorder(raises=raises)
    data = body(file_part(b'"a.png"'), part(b'form-data; name="files"; filename=x', PNG))
    data = data.replace(b"filename=x", b"filename=x\r\n folded", 1)
    sent = call(NeutralUploadNames(inner), data)
    assert inner.body.endswith(MultipartRewriter(BOUNDARY).poison())
    assert inner.messages[-1]["more_body"] is False
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 400
    assert b"a part has a malformed header line" in sent[1]["body"]


def test_middleware_turns_a_disconnect_into_a_refusal():
    inner = Recorder()
    data = body(file_part(b'"a.png"'))
    messages = [{"type": "http.request", "body": data[:100], "more_body": True}]
    sent = call(NeutralUploadNames(inner), b"", tail=messages)  # then the client goes away
    assert inner.body.endswith(MultipartRewriter(BOUNDARY).poison())
    assert sent[0]["status"] == 400 and b"disconnected" in sent[1]["body"]


# ------------------------------------------------------------------------------------ Gradio
@pytest.fixture
def gradio_app(tmp_path, monkeypatch):
    """A Gradio app with the middleware as ``app.py`` installs it, its upload folder in tmp_path."""
    import gradio as gr
    from gradio.routes import App
    from starlette.middleware import Middleware

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "cache"))
    with gr.Blocks() as demo:
        gr.File(type="filepath")
    demo.max_file_size = 4096
    app = App.create_app(demo, app_kwargs={"middleware": [Middleware(NeutralUploadNames)]})
    return app, tmp_path / "cache"


def _files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_gradio_upload_route_stores_neutral_names(gradio_app):
    from starlette.testclient import TestClient

    app, cache = gradio_app
    client = TestClient(app)
    names = ["../evil name;rm -rf.png", 'q"uote\\d.JPG', "фото.webp", "x" * 400 + ".gif", "noext"]
    response = client.post(
        "/gradio_api/upload",
        files=[("files", (name, PNG + name.encode(), "image/png")) for name in names],
    )
    assert response.status_code == 200, response.text
    paths = [Path(p) for p in response.json()]
    assert [p.name for p in paths] == [
        "upload.png",
        "upload.jpg",
        "upload.webp",
        "upload.gif",
        "upload",
    ]
    assert [p.read_bytes() for p in paths] == [PNG + name.encode() for name in names]
    stored = _files_under(cache)
    assert len(stored) == 5
    for fragment in ("evil", "rm -rf", "..", "uote", "фото", "xxx", "noext"):
        assert not any(fragment in path for path in stored), (fragment, stored)


def test_gradio_refusals_leave_no_files(gradio_app):
    from starlette.testclient import TestClient

    app, cache = gradio_app
    client = TestClient(app)
    # over Gradio's size limit (4096 bytes here): Gradio's own 413 still comes through
    response = client.post("/gradio_api/upload", files={"files": ("big.png", PNG * 5)})
    assert response.status_code == 413
    assert "4096" in response.text
    # a malformed second part, after a good first file Gradio had started writing
    data = body(file_part(b'"a.png"'), part(b'form-data; name="files"; filename=b.png', PNG))
    data = data.replace(b"filename=b.png", b"filename=b.png\r\n folded", 1)
    response = client.post(
        "/gradio_api/upload", content=data, headers={"content-type": CONTENT_TYPE.decode()}
    )
    assert response.status_code == 400
    assert response.text == "Upload refused: a part has a malformed header line.\n"
    assert _files_under(cache) == []


# ------------------------------------------------------------------------------------ remote files
CACHED = "/tmp/gradio/0a1b2c/upload.png"
#: A file as Gradio's frontend sends it once uploaded: ``url`` is a full URL of the server itself.
FRONTEND_FILE = {
    "path": CACHED,
    "url": "http://127.0.0.1:7860/gradio_api/file=" + CACHED,
    "orig_name": "../photo.png",
    "size": 53419,
    "mime_type": "image/png",
    "meta": {"_type": "gradio.FileData"},
}
#: A file as ``gradio_client`` sends it once uploaded.
CLIENT_FILE = {"path": CACHED, "orig_name": "photo.png", "meta": {"_type": "gradio.FileData"}}


def queue_body(*values: Any, **extra: Any) -> bytes:
    """A ``/gradio_api/queue/join`` body with these component values."""
    return json.dumps({"data": list(values), "fn_index": 5, "session_hash": "s1", **extra}).encode()


GOOD_BODIES = {
    "frontend upload": queue_body(FRONTEND_FILE, "tiny_cnn", "gradcam", 0.45),
    "gradio_client upload": queue_body(CLIENT_FILE, ""),
    "batch of uploads": queue_body([CLIENT_FILE, CLIENT_FILE], ["tiny_cnn"]),
    "gallery select": queue_body(
        event_data={"index": 0, "value": {"image": FRONTEND_FILE, "caption": "#1"}}
    ),
    "URLs in other fields": queue_body(
        "https://example.com/x.png", {"url": "https://example.com/x.png", "src": "data:x"}
    ),
    "windows drive": queue_body({"path": "C:\\x.png", "meta": {"_type": "gradio.FileData"}}),
    "path not a string": queue_body({"path": ["http://example.com/x.png"]}),
    "no data": queue_body(),
    "cancel": b'{"session_hash": "s1", "fn_index": 5}',
}
REMOTE_PATHS = {
    "http": "http://127.0.0.1:9/zq.png",
    "https": "https://example.com/any/name.png",
    "upper case": "HTTPS://example.com/x.png",
    "leading white space": " \thttp://example.com/x.png",
    "ftp": "ftp://example.com/x.png",
    "data": "data:image/png;base64,iVBORw0KGgo=",
    "file": "file:///etc/passwd",
    "other scheme": "s3://bucket/x.png",
}


def _remote_bodies(url: str) -> list[bytes]:
    """Bodies that pass ``url`` as a file, in the places a file value can be."""
    file = {"path": url, "meta": {"_type": "gradio.FileData"}}
    return [
        queue_body(file, "tiny_cnn"),  # gradio_client's handle_file(url)
        queue_body({**FRONTEND_FILE, "path": url}),
        queue_body([CLIENT_FILE, file], ["tiny_cnn"]),
        queue_body({"path": url}),  # without Gradio's marker
        queue_body(event_data={"value": {"image": file}}),
        json.dumps({"data": [file]}).encode(),  # /gradio_api/call/<api_name>
        json.dumps({"image": file}).encode(),  # /gradio_api/call/v2/<api_name>
    ]


@pytest.mark.parametrize("case", sorted(GOOD_BODIES))
def test_bodies_without_remote_files_pass(case):
    assert asgi.json_refusal(GOOD_BODIES[case]) is None
    assert asgi.remote_file_path(json.loads(GOOD_BODIES[case])) is None


@pytest.mark.parametrize("case", sorted(REMOTE_PATHS))
def test_remote_file_paths_are_found(case):
    url = REMOTE_PATHS[case]
    for data in _remote_bodies(url):
        assert asgi.remote_file_path(json.loads(data)) == url
        assert asgi.json_refusal(data) == asgi.REMOTE_FILE_REFUSED


def test_bodies_that_are_not_json_pass():
    """The app parses bodies with the same json.loads: what fails here fails there too."""
    for data in (
        b"",
        b"username=a&password=b",
        queue_body({"path": "http://example.com/x.png"})[:-5],  # cut short
        b'{"data": [{"path": "http://example.com/x.png"}]}\xff',
        b"\xff\xfe{",
    ):
        assert asgi.json_refusal(data) is None
        if data:
            with pytest.raises(ValueError):
                json.loads(data)


def test_deeply_nested_json_is_refused():
    data = b"[" * 100_000 + b"]" * 100_000
    assert asgi.json_refusal(data) == "The JSON body is nested too deeply."
    nested = b"[" * 900 + b'{"path": "http://example.com/x.png"}' + b"]" * 900
    assert asgi.json_refusal(nested) == asgi.REMOTE_FILE_REFUSED


def _detail(sent: list[dict[str, Any]]) -> tuple[int, str]:
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert (b"content-type", b"application/json") in sent[0]["headers"]
    return sent[0]["status"], json.loads(sent[1]["body"])["detail"]


@pytest.mark.parametrize("case", sorted(GOOD_BODIES))
def test_middleware_passes_good_json_bodies_unchanged(case):
    inner = Recorder()
    data = GOOD_BODIES[case]
    sent = call(NeutralUploadNames(inner), data, content_type=b"application/json")
    assert sent[0]["status"] == 200
    assert inner.messages == [{"type": "http.request", "body": data, "more_body": False}]
    assert inner.scope is not None
    assert inner.scope["headers"] == [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(data)),
    ]


@pytest.mark.parametrize("content_type", [b"application/json", b"text/plain", b""])
def test_middleware_refuses_remote_files_before_the_app(content_type):
    """Whatever the Content-Type: Gradio's component server parses any body as JSON."""
    for data in _remote_bodies(REMOTE_PATHS["http"]):
        inner = Recorder()
        sent = call(NeutralUploadNames(inner), data, content_type=content_type)
        assert inner.scope is None
        assert _detail(sent) == (400, asgi.REMOTE_FILE_REFUSED)


def test_middleware_caps_bodies_that_are_not_multipart():
    data = queue_body(CLIENT_FILE)
    inner = Recorder()
    call(NeutralUploadNames(inner, max_json_bytes=len(data)), data, content_type=b"")
    assert inner.body == data
    inner = Recorder()
    sent = call(NeutralUploadNames(inner, max_json_bytes=len(data) - 1), data, content_type=b"")
    assert inner.scope is None
    assert _detail(sent) == (
        413,
        f"The request body exceeds {len(data) - 1} bytes; "
        "send files as uploads (multipart/form-data).",
    )
    big = b'{"data": ["' + b"x" * asgi.MAX_JSON_BYTES + b'"]}'
    sent = call(NeutralUploadNames(inner), big, content_type=b"application/json", chunk=65536)
    assert inner.scope is None and _detail(sent)[0] == 413


def test_middleware_passes_malformed_json_unchanged():
    for data in (queue_body({"path": "http://example.com/x.png"})[:-5], b"a=b&c=d"):
        inner = Recorder()
        call(NeutralUploadNames(inner), data, content_type=b"application/json")
        assert inner.body == data


def test_middleware_bodiless_requests_and_disconnects():
    # a GET: the server's one empty body message reaches the app as it is
    inner = Recorder()
    empty = {"type": "http.request", "body": b"", "more_body": False}
    sent = call(NeutralUploadNames(inner), b"", content_type=b"", tail=[empty])
    assert sent[0]["status"] == 200 and inner.messages == [empty]
    # a client that goes away before its body ends gets no answer, and the app is not called
    inner = Recorder()
    partial = {"type": "http.request", "body": b'{"data": [', "more_body": True}
    assert call(NeutralUploadNames(inner), b"", content_type=b"", tail=[partial]) == []
    assert inner.scope is None


def test_middleware_gives_the_app_the_disconnect_after_the_body():
    received: list[dict[str, Any]] = []

    async def app(scope, receive, send):
        received.extend([await receive(), await receive()])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    call(NeutralUploadNames(app), queue_body(CLIENT_FILE), content_type=b"application/json")
    assert [m["type"] for m in received] == ["http.request", "http.disconnect"]
    assert received[0]["body"] == queue_body(CLIENT_FILE)


@pytest.fixture
def gradio_api_app(tmp_path, monkeypatch):
    """A Gradio app with a file input behind ``/gradio_api/run/name``, and a factory of apps."""
    import gradio as gr
    from gradio.routes import App
    from starlette.middleware import Middleware

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "cache"))

    def make(middleware: bool = True):
        with gr.Blocks() as demo:
            file = gr.File(type="filepath")
            name = gr.Textbox()
            file.change(lambda p: Path(p).name, file, name, api_name="name", queue=False)
        demo.max_file_size = 4096  # set by launch()
        kwargs = {"middleware": [Middleware(NeutralUploadNames)]} if middleware else {}
        return App.create_app(demo, app_kwargs=kwargs)

    return make, tmp_path / "cache"


def test_gradio_downloads_no_remote_file(gradio_api_app):
    from gradio.processing_utils import hash_url
    from starlette.testclient import TestClient

    make, cache = gradio_api_app
    client = TestClient(make())
    # a real upload, then the frontend's way of passing it on, whose url is a full http URL
    response = client.post("/gradio_api/upload", files={"files": ("../a b.png", PNG)})
    assert response.status_code == 200, response.text
    [stored] = response.json()
    uploaded = {
        **FRONTEND_FILE,
        "path": stored,
        "url": "http://testserver/gradio_api/file=" + stored,
    }
    response = client.post("/gradio_api/run/name", json={"data": [uploaded]})
    assert response.status_code == 200, response.text
    assert response.json()["data"] == ["upload.png"]
    # gr.File leaves a temporary file per call at the top of the cache: compare the folders
    before = sorted(p.name for p in cache.iterdir() if p.is_dir())

    url = REMOTE_PATHS["http"]
    remote = {"path": url, "meta": {"_type": "gradio.FileData"}}
    for route, data in (
        ("/gradio_api/run/name", {"data": [remote]}),
        ("/gradio_api/call/name", {"data": [remote]}),
        ("/gradio_api/queue/join", {"data": [remote], "fn_index": 0, "session_hash": "s1"}),
    ):
        response = client.post(route, json=data)
        assert response.status_code == 400, (route, response.text)
        assert response.json() == {"detail": asgi.REMOTE_FILE_REFUSED}
    # Gradio answers what it cannot parse itself
    cut = json.dumps({"data": [remote]}).encode()[:-3]
    response = client.post(
        "/gradio_api/run/name", content=cut, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["type"] == "json_invalid"
    assert client.post("/gradio_api/run/name", json={"data": [uploaded]}).status_code == 200
    assert sorted(p.name for p in cache.iterdir() if p.is_dir()) == before
    assert not (cache / hash_url(url)).exists()

    # without the middleware, Gradio tries the download (refused for 127.0.0.1 by its SSRF
    # check, but only after creating the URL's folder in its cache)
    bare = TestClient(make(middleware=False), raise_server_exceptions=False)
    response = bare.post("/gradio_api/run/name", json={"data": [remote]})
    assert response.status_code == 500
    assert (cache / hash_url(url)).is_dir()


# ------------------------------------------------------------------------------------ upload caps
def test_a_files_part_without_a_plain_filename_is_refused():
    """Gradio's upload route answers a ``files`` field that is not a file with a 500."""
    star_only = part(b"form-data; name=\"files\"; filename*=UTF-8''..%2Fevil.png", b"text")
    nameless = part(b'form-data; name="files"', b"text")
    for bad in (star_only, nameless):
        inner = Recorder()
        sent = call(NeutralUploadNames(inner), body(file_part(b'"a.png"'), bad))
        assert sent[0]["status"] == 400, sent
        assert b"'files' is not a file" in sent[1]["body"]
        assert inner.body.endswith(MultipartRewriter(BOUNDARY).poison())
    # other fields may be plain fields; without file_fields the rewriter lets any through
    inner = Recorder()
    sent = call(
        NeutralUploadNames(inner), body(file_part(b'"a.png"'), part(b'form-data; name="x"', b"1"))
    )
    assert sent[0]["status"] == 200
    assert gradio_parse(rewrite(body(nameless)), Path("/nonexistent")) == [("files", None, b"text")]


def test_uploads_are_capped_in_bytes_and_files_as_they_stream():
    data = body(*[file_part(b'"%d.png"' % i) for i in range(5)])
    sent = call(NeutralUploadNames(Recorder(), max_upload_files=5), data)
    assert sent[0]["status"] == 200
    inner = Recorder()
    sent = call(NeutralUploadNames(inner, max_upload_files=4), data)
    assert sent[0]["status"] == 400
    assert sent[1]["body"] == b"Upload refused: more than 4 files in one request.\n"
    assert inner.body.endswith(MultipartRewriter(BOUNDARY).poison())

    sent = call(NeutralUploadNames(Recorder(), max_upload_bytes=len(data)), data)
    assert sent[0]["status"] == 200
    inner = Recorder()
    sent = call(NeutralUploadNames(inner, max_upload_bytes=len(data) - 1), data, chunk=100)
    assert sent[0]["status"] == 413
    assert b"exceeds 0 MB" in sent[1]["body"]
    # the app got the body only up to the chunk that passed the limit, then the poison
    assert len(inner.body) < len(data) + 200 and inner.body.endswith(
        MultipartRewriter(BOUNDARY).poison()
    )
    assert asgi.MAX_UPLOAD_BYTES == 60 * 1024 * 1024 and asgi.MAX_UPLOAD_FILES == 200


def test_the_upload_cap_stops_reading_a_long_body():
    """A body far over the cap is refused after the cap, not after the whole body."""
    reads = 0
    chunk = b"x" * 65536

    async def receive():
        nonlocal reads
        reads += 1
        if reads == 1:
            return {
                "type": "http.request",
                "body": body(file_part(b'"a.png"'))[:-40],
                "more_body": True,
            }
        return {"type": "http.request", "body": chunk, "more_body": reads < 100_000}

    sent: list[dict[str, Any]] = []

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/gradio_api/upload",
        "headers": [(b"content-type", CONTENT_TYPE)],
    }
    asyncio.run(NeutralUploadNames(Recorder(), max_upload_bytes=1024 * 1024)(scope, receive, send))
    assert sent[0]["status"] == 413
    assert reads < 20 + 1024 * 1024 // len(chunk)


# ------------------------------------------------------------------------------------ routes
@pytest.mark.parametrize(
    "path",
    [
        "/gradio_api/file=http://1.1.1.1/x.png",
        "/gradio_api/file=https://example.com/",
        "/gradio_api/file=HTTP://example.com/",
        "/gradio_api/file/http://1.1.1.1/x.png",
        "/gradio_api/file=http%3A%2F%2F1.1.1.1%2Fx.png",
        "/gradio_api/file=%2568ttp%253A//1.1.1.1/",
        "/gradio_api/file=//1.1.1.1/x.png",
        "/file=http://1.1.1.1/",
        "/root/gradio_api/file=ftp://example.com/x",
    ],
)
def test_file_routes_with_urls_are_refused(path):
    for method in ("GET", "HEAD"):
        assert asgi.route_refusal({"type": "http", "method": method, "path": path}) == (
            403,
            asgi.REMOTE_FETCH_REFUSED,
        )
        inner = Recorder()
        sent = _send_request(NeutralUploadNames(inner), method, path)
        assert inner.scope is None and sent[0]["status"] == 403


@pytest.mark.parametrize(
    "path",
    [
        "/gradio_api/file=/tmp/gradio/0a1b/upload.png",
        "/gradio_api/file=assets/examples/example_01.png",
        "/gradio_api/file=C:/x.png",
        "/gradio_api/upload_progress",
        "/gradio_api/info",
        "/",
    ],
)
def test_other_routes_pass(path):
    assert asgi.route_refusal({"type": "http", "method": "GET", "path": path}) is None
    # a POST to a file-like path is not a fetch
    assert asgi.route_refusal({"type": "http", "method": "POST", "path": path + "http://x"}) is None


def test_the_recording_route_is_refused_whatever_the_method():
    for method in ("POST", "GET", "PUT"):
        for path in ("/gradio_api/process_recording", "/gradio_api/process_recording/"):
            inner = Recorder()
            sent = _send_request(NeutralUploadNames(inner), method, path)
            assert inner.scope is None and sent[0]["status"] == 403
            assert json.loads(sent[1]["body"]) == {"detail": asgi.ROUTE_REFUSED}


def _send_request(
    app: Any, method: str, path: str, data: bytes = b"", headers=(), client=("10.0.0.9", 4000)
) -> list[dict[str, Any]]:
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(b"content-type", b"application/json"), *headers],
        "client": client,
    }
    messages = [{"type": "http.request", "body": data, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def test_gradio_recording_and_url_file_routes_are_refused_in_process(gradio_app):
    from starlette.testclient import TestClient

    app, _ = gradio_app
    client = TestClient(app)
    response = client.post(
        "/gradio_api/process_recording", files={"video": ("v.mp4", b"\x00" * 100, "video/mp4")}
    )
    assert response.status_code == 403
    for path in ("/gradio_api/file=http://127.0.0.1:9/x.png", "/gradio_api/file/https://x/y"):
        assert client.get(path).status_code == 403
        assert client.head(path).status_code == 403
    assert client.get("/gradio_api/file=/etc/passwd").status_code == 403  # Gradio's own check


# ------------------------------------------------------------------------------------ fair queue
class QueueApp:
    """A fake Gradio: event routes answer ``{"event_id": ...}`` and the event stays pending until
    `finish`; other routes answer 200 with a body."""

    def __init__(self) -> None:
        self.pending: set[str] = set()
        self.seen: list[tuple[str, bytes]] = []
        self.count = 0
        self.status = 200
        self.raises = False

    def finish(self, *event_ids: str) -> None:
        self.pending.difference_update(event_ids or set(self.pending))

    async def __call__(self, scope, receive, send):
        message = await receive()
        self.seen.append((scope["path"], message.get("body", b"")))
        if self.raises:
            raise RuntimeError("app failed")
        self.count += 1
        event_id = f"e{self.count}"
        if self.status == 200:
            self.pending.add(event_id)
        answer = json.dumps({"event_id": event_id}).encode()
        await send({"type": "http.response.start", "status": self.status, "headers": []})
        await send({"type": "http.response.body", "body": answer})


def _join(fair: Any, fn_index: Any = 1, client: str = "10.0.0.9", xff: bytes | None = None):
    headers = [(b"x-forwarded-for", xff)] if xff is not None else []
    data = json.dumps({"data": [], "fn_index": fn_index, "session_hash": "s"}).encode()
    sent = _send_request(
        fair, "POST", "/gradio_api/queue/join", data, headers, client=(client, 1234)
    )
    return sent[0]["status"], json.loads(sent[1]["body"])


def _fair(inner: QueueApp, **kwargs: Any) -> Any:
    return fair_queue.FairQueue(inner, pending=inner.pending.__contains__, **kwargs)


def test_fair_queue_caps_pending_events_per_client():
    inner = QueueApp()
    fair = _fair(inner, max_pending=3, max_heavy=3)
    assert [_join(fair)[0] for _ in range(3)] == [200, 200, 200]
    status, answer = _join(fair)
    assert status == 429 and answer == {"detail": fair_queue.TOO_MANY_PENDING.format(count=3)}
    assert len(inner.seen) == 3  # the refused request never reached the app
    # another client is not affected
    assert _join(fair, client="10.0.0.10")[0] == 200
    # a finished event frees its place
    inner.finish("e1")
    assert _join(fair)[0] == 200
    assert _join(fair)[0] == 429
    inner.finish()
    assert fair.counted("10.0.0.9") == (0, 0)
    assert [_join(fair)[0] for _ in range(4)] == [200, 200, 200, 429]


def test_fair_queue_heavy_events_have_their_own_cap():
    inner = QueueApp()
    fair = _fair(inner, heavy_events={7}, heavy_apis={"predict"}, max_pending=5, max_heavy=2)
    assert [_join(fair, 7)[0] for _ in range(3)] == [200, 200, 429]
    sent = _send_request(fair, "POST", "/gradio_api/call/predict", b'{"data": []}')
    assert sent[0]["status"] == 429
    # cheap events still pass, up to the total
    assert [_join(fair, 3)[0] for _ in range(4)] == [200, 200, 200, 429]
    assert fair.counted("10.0.0.9") == (5, 2)
    # an unreadable fn_index counts as heavy
    inner.finish()
    for body_ in (b"not json", b'{"fn_index": "7"}', b"[]", b'{"fn_index": true}'):
        _send_request(fair, "POST", "/gradio_api/queue/join", body_)
    assert fair.counted("10.0.0.9") == (2, 2)  # the last two were refused as heavy


def test_fair_queue_counts_every_event_route_and_nothing_else():
    inner = QueueApp()
    fair = _fair(inner, max_pending=100, max_heavy=100, heavy_apis={"predict"})
    for path in (
        "/gradio_api/queue/join",
        "/gradio_api/call/predict",
        "/gradio_api/call/v2/predict",
        "/gradio_api/run/predict",
        "/gradio_api/api/predict/",
    ):
        _send_request(fair, "POST", path, b'{"data": []}')
    assert fair.counted("10.0.0.9") == (5, 5)
    for method, path in (
        ("GET", "/gradio_api/call/predict/e1"),
        ("POST", "/gradio_api/upload"),
        ("GET", "/gradio_api/queue/data"),
        ("POST", "/gradio_api/cancel"),
        ("GET", "/gradio_api/queue/join"),
    ):
        _send_request(fair, method, path)
    assert fair.counted("10.0.0.9") == (5, 5)


def test_fair_queue_counts_cannot_leak():
    now = [1000.0]
    inner = QueueApp()
    fair = _fair(inner, max_pending=2, max_age=60.0, clock=lambda: now[0])
    assert [_join(fair)[0] for _ in range(3)] == [200, 200, 429]
    now[0] += 61  # the app never finished them: they stop counting anyway
    assert fair.counted("10.0.0.9") == (0, 0)
    assert _join(fair)[0] == 200
    # refused by the app (queue full, 4xx) or failed: released at once
    inner.finish()
    inner.status = 503
    assert [_join(fair)[0] for _ in range(3)] == [503, 503, 503]
    assert fair.counted("10.0.0.9") == (0, 0)
    inner.status, inner.raises = 200, True
    with pytest.raises(RuntimeError):
        _join(fair)
    assert fair.counted("10.0.0.9") == (0, 0)
    # a predicate that raises releases (and does not lock the client out)
    inner.raises = False

    def broken(event_id: str) -> bool:
        raise KeyError(event_id)

    fair = fair_queue.FairQueue(inner, pending=broken, max_pending=1)
    assert [_join(fair)[0] for _ in range(3)] == [200, 200, 200]
    # without a predicate an event counts only while its request runs
    fair = fair_queue.FairQueue(inner, max_pending=1)
    assert [_join(fair)[0] for _ in range(3)] == [200, 200, 200]
    # forgotten clients are swept
    fair = _fair(inner, max_pending=1)
    for i in range(300):
        _join(fair, client=f"10.1.{i // 256}.{i % 256}")
    inner.finish()
    for _ in range(256):
        _send_request(fair, "POST", "/gradio_api/upload")  # not an event: no sweep
        _join(fair)
        inner.finish()
    assert set(fair._tickets) <= {"10.0.0.9"}


def test_fair_queue_keys_clients_by_the_first_forwarded_hop():
    inner = QueueApp()
    fair = _fair(inner, max_pending=1)
    assert _join(fair, xff=b"203.0.113.5, 10.0.0.1")[0] == 200
    assert _join(fair, xff=b"203.0.113.5")[0] == 429
    assert _join(fair, xff=b"203.0.113.6, 203.0.113.5")[0] == 200
    assert _join(fair)[0] == 200  # the peer itself, without the header
    assert fair_queue.client_key({"headers": [], "client": None}) == "-"
    assert fair_queue.client_key({"headers": [(b"X-Forwarded-For", b" , x")]}) == "-"


def test_fair_queue_replays_the_body_and_passes_disconnects():
    inner = QueueApp()
    fair = _fair(inner, heavy_events={1})
    data = json.dumps({"data": ["x" * 100], "fn_index": 1, "session_hash": "s"}).encode()
    messages = [
        {"type": "http.request", "body": data[:10], "more_body": True},
        {"type": "http.request", "body": data[10:], "more_body": False},
    ]
    received = []

    async def app(scope, receive, send):
        received.extend([await receive(), await receive(), await receive()])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b'{"event_id": "z"}'})

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        return None

    scope = {"type": "http", "method": "POST", "path": "/gradio_api/queue/join", "headers": []}
    fair = fair_queue.FairQueue(app, pending=lambda e: True, heavy_events={1})
    asyncio.run(fair(scope, receive, send))
    assert b"".join(m.get("body", b"") for m in received) == data
    assert received[-1]["type"] == "http.disconnect"
    assert fair.counted("-") == (1, 1)
