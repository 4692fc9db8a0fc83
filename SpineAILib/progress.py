"""Progress reporting and cancellation, threaded through every long call.

A long function takes ``progress: ProgressCallback | None`` (called with a fraction in [0, 1]
and a message) and ``cancel: CancelToken | None``. The CLI maps progress to tqdm (or to
machine-readable lines for the Slicer background process); Slicer maps it to a progress bar.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from SpineAILib.errors import CancelledError

ProgressCallback = Callable[[float, str], None]

MACHINE_PREFIX = "@@SPINEAI_PROGRESS"


class CancelToken:
    """A thread-safe flag; ``check()`` raises CancelledError once ``cancel()`` was called."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise CancelledError("Cancelled by the user.")


def check_cancel(cancel: CancelToken | None) -> None:
    if cancel is not None:
        cancel.check()


class SubProgress:
    """Map a sub-step's 0..1 progress into [start, end] of a parent callback."""

    def __init__(self, parent: ProgressCallback | None, start: float, end: float) -> None:
        self.parent, self.start, self.end = parent, start, end

    def __call__(self, fraction: float, message: str = "") -> None:
        if self.parent is not None:
            f = min(1.0, max(0.0, fraction))
            self.parent(self.start + (self.end - self.start) * f, message)


def format_machine_progress(fraction: float, message: str) -> str:
    """One line the Slicer module parses from the background process's stdout."""
    return f"{MACHINE_PREFIX} {min(1.0, max(0.0, fraction)):.4f} {message}".rstrip()


def parse_machine_progress(line: str) -> tuple[float, str] | None:
    """Inverse of :func:`format_machine_progress`; None for ordinary output lines."""
    if not line.startswith(MACHINE_PREFIX):
        return None
    rest = line[len(MACHINE_PREFIX):].strip().split(" ", 1)
    try:
        frac = float(rest[0])
    except (ValueError, IndexError):
        return None
    return frac, (rest[1] if len(rest) > 1 else "")
