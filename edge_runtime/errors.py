"""Errors a user can cause. Each message says what is wrong and what to do.

The CLIs catch `LinesideError` once, print its message on one line and exit
non-zero; anything else is a bug and keeps its traceback.
"""


class LinesideError(Exception):
    """Base of every user-facing error."""

    exit_code = 2


class InputFileError(LinesideError):
    """A file or folder the user named is missing, unreadable or malformed."""


class DatasetLayoutError(LinesideError):
    """A data set folder is not in a layout lineside reads."""


class ModelFileError(LinesideError):
    """A model file is not a valid lineside ONNX artifact."""


class SourceError(LinesideError):
    """A camera, stream or file source cannot be opened or read."""


class ProviderError(LinesideError):
    """An execution provider the user demanded is not active."""


class TrainingError(LinesideError):
    """Training went wrong in a way its settings can fix (it diverged)."""


class ServiceError(LinesideError):
    """A service the runtime offers (web view, ...) cannot start."""
