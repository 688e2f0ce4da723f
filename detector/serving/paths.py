"""File paths in requests and texts: which files a request may name, and errors without paths.

For the handlers behind the apps' routes, `confine` accepts a file path only when it resolves
(symbolic links and ``..`` followed) inside given folders, such as Gradio's upload cache and the
bundled examples, and `scrub_paths` turns the absolute paths in an error text into their last
component before a visitor sees it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

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
