"""Exception types shared by every layer.

Every error raised for bad user input says what was wrong and what is expected, so the
CLI and the Slicer modules can show the message as is.
"""


class SpineAIError(Exception):
    """Base class of all SpineAI errors."""


class InputError(SpineAIError, ValueError):
    """The input (image, path, option) is not usable; the message says why and what is expected."""


class ModelError(SpineAIError):
    """A model is missing, corrupt (sha256 mismatch) or does not fit its card."""


class CancelledError(SpineAIError):
    """The user cancelled a long-running operation."""
