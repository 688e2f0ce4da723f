"""The project's own error types: every failure a user can cause has a name and a clear message."""

from __future__ import annotations


class DetectorError(Exception):
    """Base class of every error the `detector` package raises on purpose.

    Attributes:
        code: A short machine-readable name of the problem (e.g. ``"truncated_file"``).
    """

    code: str = "detector_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        """The human-readable message."""
        return str(self.args[0]) if self.args else self.code


def error_text(exc: BaseException) -> str:
    """A one-line description of an error, as rows and notices show it: ``code: message`` for
    the package's own errors, ``ExceptionType: message`` for any other."""
    if isinstance(exc, DetectorError):
        return f"{exc.code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


class ImageLoadError(DetectorError):
    """The input is not an image this tool can read (empty, truncated, not an image, too big...)."""

    code = "bad_image"


class ModelNotFoundError(DetectorError):
    """No recipe or trained model has the requested name."""

    code = "model_not_found"


class ModelNotTrainedError(DetectorError):
    """The recipe exists but no trained weights ship for it."""

    code = "model_not_trained"


class ModelLoadError(DetectorError):
    """A model's files are missing, corrupt, unsafe or do not match their card."""

    code = "model_load_failed"


class ChecksumError(ModelLoadError):
    """The weights file's SHA-256 differs from the one recorded in the model card."""

    code = "checksum_mismatch"


class UnsafeModelError(ModelLoadError):
    """The model needs arbitrary code (Lambda layers, unknown custom objects, pickle) to load."""

    code = "unsafe_model"


class UnsupportedMethodError(DetectorError):
    """The requested explanation method is not available for this model."""

    code = "unsupported_method"


class OutputError(DetectorError):
    """A result file cannot be written (a folder, no permission, a full or read-only device)."""

    code = "cannot_write"
