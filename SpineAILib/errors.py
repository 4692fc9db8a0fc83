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


class InputWarning(UserWarning):
    """The input was used with a change the user should know about (e.g. direction cosines
    orthonormalised); the CLI prints it as ``spineai <command>: warning: ...``."""


# Exit codes of the ``spineai`` command line (README "Exit codes"): what each error type ends in.
EXIT_OK, EXIT_ERROR, EXIT_INPUT, EXIT_MODEL, EXIT_DEPENDENCY, EXIT_CANCELLED = 0, 1, 2, 3, 4, 130
