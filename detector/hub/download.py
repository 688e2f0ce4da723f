"""Files from the Hugging Face Hub: cached, offline-friendly downloads and safe loading.

`fetch_from_hub` downloads one file through ``huggingface_hub`` (cache first, so a cached file
works offline) and turns every failure into a `ModelLoadError` that says what to do.
`load_keras_from_hub` loads ``.keras`` archives in Keras safe mode (see
`detector.core.models.load_keras_file`). Pickle-based formats are never loaded.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from detector.core.errors import ModelLoadError, UnsafeModelError

log = logging.getLogger(__name__)

#: File suffixes of pickle-based formats: loading them can run arbitrary code, so they never load.
PICKLE_SUFFIXES: tuple[str, ...] = (".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt", ".joblib")
_TRUE_VALUES = {"1", "ON", "YES", "TRUE"}


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in _TRUE_VALUES


def hub_offline() -> bool:
    """True when Hugging Face Hub offline mode is on (``HF_HUB_OFFLINE``, read at call time)."""
    from huggingface_hub import constants

    return (
        _env_true("HF_HUB_OFFLINE")
        or _env_true("TRANSFORMERS_OFFLINE")
        or bool(constants.is_offline_mode())
    )


def _cache_root(cache_dir: str | Path | None) -> str:
    from huggingface_hub import constants

    return str(cache_dir) if cache_dir is not None else str(constants.HF_HUB_CACHE)


def _repo_folder(repo_id: str) -> str:
    return "models--" + repo_id.replace("/", "--")


def _hub_error(
    repo_id: str,
    filename: str,
    revision: str | None,
    cache_dir: str | Path | None,
    reason: str,
    tried: list[str],
    *,
    code: str,
) -> ModelLoadError:
    cache = _cache_root(cache_dir)
    rev = revision or "main"
    lines = [
        f"could not get {filename!r} from the Hugging Face Hub repository {repo_id!r} "
        f"(revision {rev!r}): {reason}.",
        "Tried: " + "; then ".join(tried) + ".",
        "To use it without a connection: download it once where the Hub is reachable "
        f"(`hf download {repo_id} {filename}`) and copy the cache folder "
        f"{Path(cache) / _repo_folder(repo_id)} into {cache} here (or point HF_HUB_CACHE / "
        "cache_dir at a copied cache), or pass the downloaded file's local path instead "
        "(e.g. detector.hub.load_s1_h5(path) or load_published_s1(path=...)).",
        "Set HF_HUB_OFFLINE=1 to use only the local cache and skip network attempts.",
    ]
    return ModelLoadError(" ".join(lines), code=code)


def fetch_from_hub(
    repo_id: str,
    filename: str,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
) -> Path:
    """The local path of one file of a Hugging Face Hub model repository.

    The local Hugging Face cache is checked first (``try_to_load_from_cache``), so a cached file
    is used without any network access; otherwise ``hf_hub_download`` downloads it into the cache
    (skipped when ``HF_HUB_OFFLINE`` is set).

    Args:
        repo_id: ``"owner/name"`` of a model repository.
        filename: Path of the file inside the repository.
        revision: Branch, tag or commit; default ``main``.
        cache_dir: Hugging Face cache folder; default the library's (``HF_HUB_CACHE``).

    Returns:
        The cached file's path (inside ``<cache>/models--owner--name/snapshots/<commit>/``).

    Raises:
        ModelLoadError: offline or unreachable without a cached copy (``code`` ``hub_offline``),
            unknown repository, revision or file (``hub_not_found``), other download failures
            (``hub_download_failed``); the message says what was tried and how to work offline.
    """
    import huggingface_hub
    from huggingface_hub import errors as hf_errors

    cache = _cache_root(cache_dir)
    try:
        cached = huggingface_hub.try_to_load_from_cache(
            repo_id, filename, cache_dir=cache_dir, revision=revision
        )
    except ValueError as exc:  # invalid repo id or file name
        raise ModelLoadError(
            f"invalid Hub reference {repo_id!r} / {filename!r}: {exc}", code="hub_not_found"
        ) from None
    if isinstance(cached, str):
        log.debug("using cached %s/%s: %s", repo_id, filename, cached)
        return Path(cached)
    tried = [f"the local Hugging Face cache {cache} (not there)"]
    known_missing = cached is huggingface_hub._CACHED_NO_EXIST
    if known_missing:
        tried[0] = f"the local Hugging Face cache {cache} (it records that the file does not exist)"
    if hub_offline():
        tried.append("no download: HF_HUB_OFFLINE is set")
        reason = (
            "the file is not in that repository (cached answer)"
            if known_missing
            else "offline mode is on and the file is not in the local cache"
        )
        raise _hub_error(repo_id, filename, revision, cache_dir, reason, tried, code="hub_offline")
    tried.append(f"a download from the Hub into {cache}")
    try:
        path = huggingface_hub.hf_hub_download(
            repo_id, filename, revision=revision, cache_dir=cache_dir
        )
    except hf_errors.LocalEntryNotFoundError:
        raise _hub_error(
            repo_id,
            filename,
            revision,
            cache_dir,
            "the Hub is unreachable (no connection?) and the file is not in the local cache",
            tried,
            code="hub_offline",
        ) from None
    except hf_errors.RepositoryNotFoundError:  # includes gated / private repositories
        raise _hub_error(
            repo_id,
            filename,
            revision,
            cache_dir,
            "the repository does not exist or needs authorisation (`hf auth login`)",
            tried,
            code="hub_not_found",
        ) from None
    except hf_errors.RevisionNotFoundError:
        raise _hub_error(
            repo_id, filename, revision, cache_dir, "no such revision", tried, code="hub_not_found"
        ) from None
    except hf_errors.EntryNotFoundError:
        raise _hub_error(
            repo_id,
            filename,
            revision,
            cache_dir,
            "the repository has no such file",
            tried,
            code="hub_not_found",
        ) from None
    except Exception as exc:  # httpx / OS / Hub errors: never a raw traceback
        raise _hub_error(
            repo_id,
            filename,
            revision,
            cache_dir,
            f"{type(exc).__name__}: {exc}",
            tried,
            code="hub_download_failed",
        ) from None
    return Path(path)


def _refuse_pickle(filename: str | Path) -> None:
    suffix = Path(filename).suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise UnsafeModelError(
            f"refusing {Path(filename).name}: {suffix} files are pickle-based and loading one can "
            "run arbitrary code, so they are never loaded. Use a .keras archive (or, for the "
            "published S1 checkpoint, its .h5 file with detector.hub.load_s1_h5).",
            code="pickle_format",
        )


def load_keras_from_hub(
    repo_id: str,
    filename: str,
    *,
    allow_unsafe: bool = False,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
):
    """Download (or take from the cache) a ``.keras`` model and load it in Keras safe mode.

    Args:
        repo_id: ``"owner/name"`` of a model repository.
        filename: The ``.keras`` file inside it.
        allow_unsafe: Allow Lambda layers and custom code to load (logs a warning: that code runs
            with your privileges). Only for repositories you trust; never for user input.
        revision: Branch, tag or commit; default ``main``.
        cache_dir: Hugging Face cache folder.

    Returns:
        The Keras model (not compiled).

    Raises:
        UnsafeModelError: pickle-based files (``.pkl``, ``.pt``, ``.pth``, ``.bin``...), or a
            model that needs code while ``allow_unsafe`` is False.
        ModelLoadError: other formats, download or loading failures.
    """
    from detector.core.models import load_keras_file

    _refuse_pickle(filename)
    suffix = Path(filename).suffix.lower()
    if suffix != ".keras":
        hint = (
            " For the published S1 checkpoint use detector.hub.load_published_s1 / load_s1_h5, "
            "which read an H5 file's weights only."
            if suffix in (".h5", ".hdf5")
            else ""
        )
        raise ModelLoadError(
            f"refusing {Path(filename).name}: only .keras archives load from the Hub (legacy H5 "
            f"and SavedModel configs can carry code).{hint}",
            code="unsupported_model_format",
        )
    path = fetch_from_hub(repo_id, filename, revision=revision, cache_dir=cache_dir)
    if allow_unsafe:
        log.warning(
            "allow_unsafe=True for %s/%s: Lambda layers and custom code stored in this Hub "
            "file will run with your privileges; do this only for repositories you trust",
            repo_id,
            filename,
        )
    return load_keras_file(path, allow_unsafe=allow_unsafe)
