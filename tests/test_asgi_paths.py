"""`detector.serving.asgi` path guards: which files a request may name, texts without paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from detector.serving.paths import PATH_REFUSED, PathRefused, confine, scrub_paths


@pytest.fixture
def roots(tmp_path):
    cache, examples, outside = tmp_path / "cache", tmp_path / "examples", tmp_path / "outside"
    for folder in (cache / "abc", examples, outside):
        folder.mkdir(parents=True)
    (cache / "abc" / "upload.png").write_bytes(b"x")
    (examples / "example_01.png").write_bytes(b"x")
    (outside / "secret.png").write_bytes(b"x")
    (cache / "abc" / "link.png").symlink_to(outside / "secret.png")
    (cache / "dirlink").symlink_to(outside)
    return [cache, examples], tmp_path


def test_paths_inside_the_roots_are_accepted(roots):
    allowed, tmp = roots
    inside = tmp / "cache" / "abc" / "upload.png"
    assert confine(str(inside), allowed) == str(inside.resolve())
    assert confine(inside, allowed) == str(inside.resolve())
    assert confine(str(tmp / "examples" / "example_01.png"), allowed)
    assert confine(str(tmp / "cache" / "missing.png"), allowed)  # existence is the reader's job
    assert confine(str(tmp / "cache"), allowed)  # the folder itself: not a file, said later


@pytest.mark.parametrize(
    "value",
    [
        "/etc/passwd",
        "/proc/self/environ",
        "{tmp}/outside/secret.png",
        "{tmp}/cache/abc/../../outside/secret.png",
        "{tmp}/examples/../outside/secret.png",
        "{tmp}/cache/abc/link.png",  # a symbolic link out of the cache
        "{tmp}/cache/dirlink/secret.png",
        "{tmp}/cache-evil/x.png",  # a sibling whose name starts like the root
        "outside/secret.png",  # relative: resolved against the working directory
        "",
        "{tmp}/cache/abc/upload.png\x00",
        None,
        42,
        ["{tmp}/cache/abc/upload.png"],
        {"path": "{tmp}/cache/abc/upload.png"},
        b"/etc/passwd",
    ],
)
def test_everything_else_is_refused(roots, value):
    allowed, tmp = roots
    if isinstance(value, str):
        value = value.format(tmp=tmp)
    elif isinstance(value, list):
        value = [v.format(tmp=tmp) for v in value]
    with pytest.raises(PathRefused) as refused:
        confine(value, allowed)
    assert str(refused.value) == PATH_REFUSED and os.sep + "etc" not in str(refused.value)


def test_a_path_that_cannot_be_resolved_is_refused(roots):
    allowed, tmp = roots
    loop = tmp / "cache" / "loop"
    loop.symlink_to(loop)
    with pytest.raises(PathRefused):
        confine(str(loop / "x.png"), allowed)
    with pytest.raises(PathRefused):
        confine("/" + "x" * 5000 + "/y", allowed)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "weights file missing for model 'x': /srv/models/app_mix/missing/../../x",
            "weights file missing for model 'x': x",
        ),
        ("cannot open `/home/u/models/a/model.keras`.", "cannot open `model.keras`."),
        ("(/opt/a/b.keras) and '/tmp/c/d.json'", "(b.keras) and 'd.json'"),
        ("C:\\Users\\me\\models\\x.keras broke", "x.keras broke"),
        ("see https://example.org/a/b/c.png", "see https://example.org/a/b/c.png"),
        ("file:///etc/passwd", "file:///etc/passwd"),
        ("1/2 of a/b/c, 50 MB/s", "1/2 of a/b/c, 50 MB/s"),
        ("<b>bold</b></div>", "<b>bold</b></div>"),
        ("truncated_file: upload.png", "truncated_file: upload.png"),
    ],
)
def test_scrub_paths(text, expected):
    assert scrub_paths(text) == expected
    assert scrub_paths(expected) == expected


def test_scrubbed_texts_hold_no_absolute_path(tmp_path):
    text = f"ModelLoadError: {tmp_path / 'a' / 'model.keras'} and {Path.home() / 'x'}"
    scrubbed = scrub_paths(text)
    assert str(tmp_path) not in scrubbed and str(Path.home()) not in scrubbed
    assert scrubbed == "ModelLoadError: model.keras and x"
