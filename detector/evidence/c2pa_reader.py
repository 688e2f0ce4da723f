"""C2PA Content Credentials read with c2pa-python's stream reader.

`read_c2pa` hands the file's bytes to ``c2pa.Reader.try_create`` (no remote manifests, no OCSP
requests: nothing leaves the machine), reads the manifest store with ``reader.json()`` and the
library's own validation state, and keeps of the active manifest what a reader of the verdict
needs: the claim generator, each action's ``digitalSourceType`` (``trainedAlgorithmicMedia``,
``compositeWithTrainedAlgorithmicMedia``, ``digitalCapture``...), the signer (the signing
certificate's organisation and common name) and the validation state:

- ``Invalid``: the file changed after signing, or the manifest is damaged;
- ``Valid``: the signature checks out and the file is as signed, but the certificate is not on
  a trust list (anyone can make such a certificate);
- ``Trusted``: valid, and the certificate chains to a trust anchor. Anchors are read from the
  PEM file named by ``FAKEDETECT_C2PA_TRUST_ANCHORS`` (or given to `read_c2pa`); without one,
  no file comes out ``Trusted``.

Files without an embedded manifest store (a JUMBF box labelled ``c2pa``) are not handed to the
reader at all; ``try_create`` answers None, not an exception, for a stream without one. Every
value is kept as a scalar and capped, since the manifest's content comes from whoever made the
file.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Environment variable naming a PEM file of trust anchors (root certificates).
TRUST_ANCHORS_ENV = "FAKEDETECT_C2PA_TRUST_ANCHORS"
#: Largest trust-anchor file read, in bytes.
MAX_TRUST_ANCHOR_BYTES = 4 * 1024 * 1024
#: Why the reader stopped when its time ran out.
TIME_BUDGET_REASON = "not checked: time budget exceeded"

IPTC_DST_PREFIX = "http://cv.iptc.org/newscodes/digitalsourcetype/"

#: Validation states c2pa-python reports, in plain words.
VALIDATION_STATES: dict[str, str] = {
    "Trusted": "valid signature from a certificate on the configured trust list",
    "Valid": "valid signature, file unchanged since signing; certificate not on a trust list",
    "Invalid": "the file changed after signing, or the manifest is damaged",
}
#: States whose signature checks out.
VALID_STATES = frozenset({"Valid", "Trusted"})

#: The MIME type handed to the reader for each Pillow format.
MIME_TYPES: dict[str, str] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "TIFF": "image/tiff",
    "GIF": "image/gif",
    "HEIF": "image/heif",
}


@dataclass(frozen=True)
class C2paReading:
    """What the C2PA reader found in one file.

    Attributes:
        status: ``present`` (a manifest was read), ``no_manifest``, ``invalid`` (a manifest is
            there but could not be read) or ``not_checked``.
        summary: One line for a report.
        details: JSON-ready values: ``validation_state``, ``validation_problems``,
            ``claim_generator``, ``signer``, ``signer_common_name``, ``actions``,
            ``digital_source_types``... (see `manifest_details`).
    """

    status: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def found(self) -> bool:
        """Whether the file holds a manifest store (readable or not)."""
        return self.status in ("present", "invalid")

    @property
    def validation_state(self) -> str | None:
        """``Trusted``, ``Valid``, ``Invalid`` or None (no manifest read)."""
        return self.details.get("validation_state")


def load_c2pa() -> Any:
    """Import c2pa-python (its native library may be missing or fail to load)."""
    import c2pa

    return c2pa


def has_manifest_store(data: bytes) -> bool:
    """Whether the bytes can hold an embedded manifest store: a JUMBF box and a ``c2pa`` label.

    A cheap byte search: without both there is nothing for the reader to find, and it is not
    run (it would walk the whole file).
    """
    return b"jumb" in data and b"c2pa" in data


def trust_anchors_from_env() -> tuple[str | None, str | None]:
    """The PEM trust anchors named by `TRUST_ANCHORS_ENV`, and a problem reading them.

    Returns:
        (PEM text or None, None or why the file named could not be used).
    """
    name = os.environ.get(TRUST_ANCHORS_ENV, "").strip()
    if not name:
        return None, None
    path = Path(name)
    try:
        if path.stat().st_size > MAX_TRUST_ANCHOR_BYTES:
            return None, f"{TRUST_ANCHORS_ENV}: file larger than {MAX_TRUST_ANCHOR_BYTES} bytes"
        text = path.read_text("ascii", errors="replace")
    except OSError as exc:
        return None, f"{TRUST_ANCHORS_ENV}: {exc.strerror or type(exc).__name__}"
    if "-----BEGIN CERTIFICATE-----" not in text:
        return None, f"{TRUST_ANCHORS_ENV}: no PEM certificate in the file"
    return text, None


class _ExpiringStream(io.BytesIO):
    """The file's bytes for the reader, which stops reading once ``expired()`` is true.

    c2pa-python reads through Python callbacks, one per container block, so a file of millions
    of tiny blocks costs millions of calls; a failed read makes the native reader give up.
    """

    def __init__(self, data: bytes, expired: Callable[[], bool]) -> None:
        super().__init__(data)
        self._expired = expired
        self.expired = False

    def _check(self) -> None:
        if self._expired():
            self.expired = True
            raise TimeoutError(TIME_BUDGET_REASON)

    def read(self, size: int | None = -1) -> bytes:
        self._check()
        return super().read(size)

    def readinto(self, buffer: Any) -> int:
        self._check()
        return super().readinto(buffer)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check()
        return super().seek(offset, whence)


def _never() -> bool:
    return False


def read_c2pa(
    data: bytes,
    fmt: str | None,
    *,
    expired: Callable[[], bool] | None = None,
    load: Callable[[], Any] | None = None,
    trust_anchors: str | None = None,
) -> C2paReading:
    """Read and validate the C2PA manifest store embedded in a file.

    Args:
        data: The file's bytes.
        fmt: Its Pillow format (``JPEG``, ``PNG``...), or None when it is not an image.
        expired: Called while the reader reads; once it returns True the read stops and the
            result is ``not_checked`` (`TIME_BUDGET_REASON`).
        load: Imports and returns the ``c2pa`` module (default `load_c2pa`).
        trust_anchors: PEM root certificates to trust; default: the file named by
            `TRUST_ANCHORS_ENV`, if any.

    Returns:
        A `C2paReading`; never raises for what the file holds.
    """
    try:
        c2pa = (load or load_c2pa)()
    except Exception as exc:  # ImportError, or OSError from the native library
        return C2paReading(
            "not_checked",
            f"c2pa-python is not available ({type(exc).__name__}): Content Credentials were "
            "not checked",
        )
    if not has_manifest_store(data):
        if fmt is None:
            return C2paReading(
                "not_checked", "not an image format Content Credentials are read from"
            )
        return C2paReading("no_manifest", "no Content Credentials")
    trust_problem = None
    if trust_anchors is None:
        trust_anchors, trust_problem = trust_anchors_from_env()
    settings: dict[str, Any] = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
    if trust_anchors:
        settings["trust"] = {"trust_anchors": trust_anchors}
    stream = _ExpiringStream(data, expired or _never)
    try:
        context = c2pa.Context.from_dict(settings)
        reader = c2pa.Reader.try_create(MIME_TYPES.get(fmt or ""), stream, context=context)
        if stream.expired:  # the reader may take a failed read for the end of the file
            if reader is not None:
                reader.close()
            return C2paReading("not_checked", TIME_BUDGET_REASON)
        if reader is None:
            return C2paReading("no_manifest", "no Content Credentials")
        with reader:
            store = json.loads(reader.json())
            state = reader.get_validation_state()
    except Exception as exc:  # c2pa.C2paError, anything the native side throws, odd JSON
        if stream.expired:
            return C2paReading("not_checked", TIME_BUDGET_REASON)
        return C2paReading(
            "invalid",
            "a C2PA manifest is present but could not be read or validated",
            {"status": "invalid", "error": _text(str(exc), 200)},
        )
    details = manifest_details(store if isinstance(store, dict) else {}, state)
    details["trust_list"] = "configured" if trust_anchors else "none configured"
    if trust_problem:
        details["trust_list_problem"] = trust_problem
    return C2paReading("present", manifest_summary(details), details)


def manifest_details(store: dict[str, Any], state: str | None) -> dict[str, Any]:
    """The facts of a manifest store's active manifest, every value a capped scalar.

    Args:
        store: The parsed ``reader.json()``.
        state: ``reader.get_validation_state()``.

    Returns:
        ``status``, ``validation_state``, ``validation_problems`` (failure codes),
        ``claim_generator``, ``title``, ``signer`` (certificate organisation),
        ``signer_common_name``, ``signed_at``, ``actions`` (each ``action``,
        ``digital_source_type``, ``software_agent``), ``digital_source_types`` (sorted codes),
        ``assertions`` (labels), ``ingredients`` and ``manifests`` (counts).
    """
    manifests = store.get("manifests") if isinstance(store.get("manifests"), dict) else {}
    active = manifests.get(_plain(store.get("active_manifest")) or "", {})
    active = active if isinstance(active, dict) else {}
    generator = active.get("claim_generator")
    infos = active.get("claim_generator_info")
    if not generator and isinstance(infos, list):
        generator = ", ".join(
            " ".join(str(_plain(v)) for v in (i.get("name"), i.get("version")) if v)
            for i in infos
            if isinstance(i, dict)
        )
    actions: list[dict[str, Any]] = []
    labels: list[str] = []
    assertions = active.get("assertions")
    for assertion in assertions if isinstance(assertions, list) else []:
        if not isinstance(assertion, dict):
            continue
        label = str(_plain(assertion.get("label", "")))
        labels.append(label)
        data = assertion.get("data")
        listed = data.get("actions") if isinstance(data, dict) else None
        if not label.startswith("c2pa.actions") or not isinstance(listed, list):
            continue
        for action in listed:
            if not isinstance(action, dict):
                continue
            agent = action.get("softwareAgent")
            if isinstance(agent, dict):
                agent = agent.get("name")
            dst = _plain(action.get("digitalSourceType"))
            actions.append(
                {
                    "action": _plain(action.get("action")),
                    "digital_source_type": source_type_code(dst) if dst else None,
                    "software_agent": _plain(agent),
                }
            )
    signature = active.get("signature_info")
    signature = signature if isinstance(signature, dict) else {}
    statuses = store.get("validation_status")
    problems = [
        _plain(s.get("code"))
        for s in (statuses if isinstance(statuses, list) else [])
        if isinstance(s, dict)
    ]
    ingredients = active.get("ingredients")
    return {
        "status": "present",
        "validation_state": _plain(state),
        "validation_problems": problems,
        "claim_generator": _plain(generator),
        "title": _plain(active.get("title")),
        "signer": _plain(signature.get("issuer")),
        "signer_common_name": _plain(signature.get("common_name")),
        "signed_at": _plain(signature.get("time")),
        "actions": actions,
        "digital_source_types": sorted(
            {str(a["digital_source_type"]) for a in actions if a["digital_source_type"]}
        ),
        "assertions": labels,
        "ingredients": len(ingredients) if isinstance(ingredients, list) else 0,
        "manifests": len(manifests),
    }


def manifest_summary(details: dict[str, Any]) -> str:
    """One line: who signed with which tool, the source types, the validation state."""
    signer, tool = details.get("signer"), details.get("claim_generator")
    name = details.get("signer_common_name")
    who = signer or "unknown"
    if name and name != signer:
        who += f" ({name})"
    summary = f"signed by {who} with {tool or 'unknown tool'}"
    sources = details.get("digital_source_types") or []
    if sources:
        summary += "; source type " + ", ".join(sources)
    state = details.get("validation_state")
    summary += f"; validation: {state or 'unknown'}"
    if state == "Invalid":
        summary += " (the file changed after signing, or the manifest is damaged)"
    if "signingCredential.untrusted" in (details.get("validation_problems") or []):
        summary += " (certificate not on a trust list)"
    return summary


def signer_name(details: dict[str, Any]) -> str:
    """The signer as one phrase: certificate organisation and common name, or ``unknown``."""
    signer, name = details.get("signer"), details.get("signer_common_name")
    if signer and name and name != signer:
        return f"{signer} ({name})"
    return str(signer or name or "an unknown signer")


def source_type_code(value: Any) -> str:
    """An IPTC digital source type's code: the last part of its URL, or the value itself."""
    text = str(value).strip()
    return text.rstrip("/").rsplit("/", 1)[-1] if "/" in text else text


def _text(value: str, limit: int) -> str:
    value = value.replace("\x00", "")
    if len(value) <= limit:
        return value
    return f"{value[:limit]}… (+{len(value) - limit} characters)"


def _plain(value: Any) -> Any:
    """A JSON scalar as it is (strings capped); anything else (lists, objects of any depth) by
    its type name."""
    if isinstance(value, str):
        return _text(value, 120)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return f"<{type(value).__name__}>"
