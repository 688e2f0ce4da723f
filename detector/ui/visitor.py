"""Error texts safe to show a visitor of a public app: no server path ever reaches the page.

The server log keeps the full message; what a page shows has every absolute path cut to its
last part (`visitor_text`). Nothing here imports a UI library.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from detector.core.errors import ImageLoadError
from detector.ui.texts import read_error as _read_error

#: An absolute path in a message: POSIX (``/a/b``, at the start, after a space, a quote, a
#: bracket or ``=``; never inside a URL or a word like ``JPEG/PNG``) or Windows (``C:\a\b``).
_ABSOLUTE_PATH = re.compile(
    r"""(?<![\w.~/:-])(?:/[^\s/'"`<>()\[\]{},;|]+)+/?"""
    r"""|\b[A-Za-z]:\\[^\s'"`<>|]*"""
)


def _last_part(match: re.Match[str]) -> str:
    parts = [p for p in re.split(r"[/\\]", match.group(0)) if p]
    return parts[-1] if parts else "…"


def visitor_text(text: str | None) -> str | None:
    """An error text safe to show a visitor: every absolute server path cut to its last part.

    ``weights file missing for model 'x': /srv/app/models/x/model.keras`` becomes
    ``… 'x': model.keras``; the server log keeps the full message. None stays None.
    """
    if text is None:
        return None
    return _ABSOLUTE_PATH.sub(_last_part, str(text))


def visitor_errors(errors: Mapping[str, str]) -> dict[str, str]:
    """`visitor_text` of every model's error."""
    return {name: visitor_text(error) or "" for name, error in errors.items()}


def visitor_read_error(exc: ImageLoadError) -> str:
    """The message for a file that is not a readable image (same wording as the Gradio app)."""
    return visitor_text(_read_error(exc.code, exc.message)) or ""
