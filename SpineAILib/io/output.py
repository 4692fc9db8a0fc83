"""Output folders and files that are checked before the work and never left half-written.

:func:`check_output_folder` says, before a long computation, that an output folder cannot be
used (a file of that name, no permission, a path that cannot exist). :func:`staged_folder`
collects a result's files in a hidden staging folder inside the target and moves them in only
when every one is written; :func:`atomic_file` does the same for one file. A failure leaves the
target as it was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from SpineAILib.errors import InputError


def check_output_folder(path: str | os.PathLike, option: str = "--output") -> tuple[Path, bool]:
    """(the folder, whether it was created now): the folder exists (created if missing) and a file
    can be written in it; InputError that names the problem otherwise."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise InputError(f"{option} {p} is a file; expected a folder (created if missing).")
    created = not p.exists()
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=p):
            pass
    except OSError as exc:
        if created:
            with contextlib.suppress(OSError):
                p.rmdir()
        reason = exc.strerror or str(exc)
        raise InputError(f"Cannot write into {option} {p}: {reason}. Expected a folder you can write to.") from None
    return p, created


def check_output_file(path: str | os.PathLike, option: str) -> Path:
    """A file path that can be written (its folder created if missing); InputError otherwise."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise InputError(f"{option} {p} is a folder; expected a file path.")
    check_output_folder(p.parent, f"the folder of {option}")
    return p


@contextlib.contextmanager
def staged_folder(target: str | os.PathLike) -> Iterator[Path]:
    """A staging folder inside ``target`` to write a result's files into; on success they are
    moved into ``target`` (replacing files of the same name), on failure removed."""
    t = Path(target)
    t.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".spineai-partial-", dir=t))
    try:
        yield stage
        for f in sorted(stage.rglob("*")):
            if f.is_file():
                dest = t / f.relative_to(stage)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(f, dest)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; moved onto ``path`` on success."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".partial", dir=p.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, p)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
