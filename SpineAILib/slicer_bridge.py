"""The non-GUI half of the Slicer modules, kept here so it is tested without Slicer:
background-process command lines, progress-line parsing, first-use dependency planning.

The Qt half (QProcess, progress bar, dialogs) lives in ``SpineAI/SpineAI/SpineAICommon``.
"""

from __future__ import annotations

import os
from pathlib import Path

from SpineAILib.progress import parse_machine_progress  # noqa: F401  (re-exported for the GUI)

# Never reinstalled inside Slicer: Slicer ships its own builds and replacing them breaks it.
PROTECTED_PACKAGES = ("numpy", "SimpleITK", "vtk")

# Supported Slicer: 5.10 (the stable release line) and later, including the preview. Slicer 5.10
# moved to Python 3.12; Slicer 5.8 and earlier run Python 3.9, which SpineAILib does not support
# (it needs 3.10, see pyproject.toml). The modules check this at load time (SpineAICommon.compat,
# which repeats these two numbers because it must run before SpineAILib can be imported).
MIN_SLICER_VERSION = (5, 10)
MIN_PYTHON_VERSION = (3, 10)

# What the tasks need inside Slicer, as version ranges that have wheels for the supported Slicer
# Pythons (3.10 and later). pip picks the newest release in each range, so the torch range is
# the one the newest MONAI in its range declares (MONAI 1.6 needs torch >= 2.8; checked against
# MONAI's own metadata by Testing/test_slicer_layer.py).
SLICER_REQUIREMENTS: dict[str, str] = {
    "torch": ">=2.8,<3",
    "monai": ">=1.5,<2",
    "tqdm": ">=4.64,<5",
    "scipy": ">=1.11,<2",
    "matplotlib": ">=3.8,<4",
}
# Packages whose only heavy dependency is numpy/torch are installed with --no-deps so pip cannot
# touch Slicer's numpy or pull a second torch; matplotlib (used by the demo's overview) needs its
# small wheel dependencies, and its numpy requirement is already met by Slicer's numpy.
NO_DEPS = ("monai", "tqdm", "scipy")


def parse_version(text: str) -> tuple[int, ...]:
    """The numeric release part of a version string: "2.13.0+cpu" -> (2, 13, 0),
    "1.6.1rc2" -> (1, 6, 1). Pre/post/local parts are ignored (enough for range checks)."""
    out = []
    for part in text.strip().split("+")[0].split("."):
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        out.append(int(digits))
        if len(digits) != len(part):
            break
    if not out:
        raise ValueError(f"Not a version: {text!r}")
    return tuple(out)


def _cmp(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    n = max(len(a), len(b))
    a, b = a + (0,) * (n - len(a)), b + (0,) * (n - len(b))
    return (a > b) - (a < b)


def version_satisfies(version: str, spec: str) -> bool:
    """Whether ``version`` meets a comma-separated range such as ">=2.8,<3" (operators >=, >,
    <=, <, ==, !=; an empty spec accepts every version)."""
    v = parse_version(version)
    ops = {">=": lambda c: c >= 0, "<=": lambda c: c <= 0, "==": lambda c: c == 0, "!=": lambda c: c != 0,
           ">": lambda c: c > 0, "<": lambda c: c < 0}
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        op = next((o for o in (">=", "<=", "==", "!=", ">", "<") if clause.startswith(o)), None)
        if op is None:
            raise ValueError(f"Unsupported version clause {clause!r} in {spec!r}")
        if not ops[op](_cmp(v, parse_version(clause[len(op):]))):
            return False
    return True


def installed_version(name: str) -> str | None:
    """The installed distribution's version, or None when it is not installed."""
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def requirement_problems(required: tuple[str, ...] | list[str],
                         versions: dict[str, str | None] | None = None) -> list[tuple[str, str | None, str]]:
    """(name, installed version or None, required range) for each package that is missing or
    outside its range. ``versions`` overrides what is installed (tests)."""
    problems = []
    for name in required:
        spec = SLICER_REQUIREMENTS.get(name, "")
        have = versions[name] if versions is not None and name in versions else installed_version(name)
        if have is None or not version_satisfies(have, spec):
            problems.append((name, have, spec))
    return problems


def describe_problems(problems: list[tuple[str, str | None, str]]) -> str:
    """One line per package: "torch 2.2.0 installed, SpineAI needs >=2.8,<3"."""
    return "\n".join(f"{n} {'not installed' if v is None else v + ' installed'}, SpineAI needs {s or 'any version'}"
                     for n, v, s in problems)


def library_root() -> Path:
    """Folder that contains the SpineAILib package (put on PYTHONPATH of background processes)."""
    return Path(__file__).resolve().parent.parent


def cli_command(python_executable: str, command: str, args: list[str], device: str = "auto") -> list[str]:
    """argv for running ``spineai <command>`` in a separate (Slicer) Python process with
    machine-readable progress. ``python_executable`` is Slicer's PythonSlicer."""
    return [python_executable, "-m", "SpineAILib.cli", command, *args, "--device", device, "--machine-progress"]


def cli_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for the background process: SpineAILib importable, unbuffered output."""
    env = dict(os.environ if base is None else base)
    root = str(library_root())
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def install_plan(problems: list[str] | list[tuple[str, str | None, str]]) -> dict[str, list[str]]:
    """Split packages to install (names, or :func:`requirement_problems` tuples) into what the
    PyTorch extension installs (torch, with its version range) and pip requirement strings;
    protected packages are reported, never installed."""
    plan: dict[str, list[str]] = {"torch": [], "pip": [], "protected": []}
    for item in problems:
        name = item if isinstance(item, str) else item[0]
        spec = SLICER_REQUIREMENTS.get(name, "")
        if name == "torch":
            plan["torch"].append(spec)
        elif name in PROTECTED_PACKAGES:
            plan["protected"].append(name)
        else:
            req = f"{name}{spec}" + (" --no-deps" if name in NO_DEPS or name not in SLICER_REQUIREMENTS else "")
            plan["pip"].append(req)
    return plan


def child_pids(pid: int) -> list[int]:
    """Every descendant of process ``pid`` (children before grandchildren). Uses psutil where
    installed, else /proc (Linux) or ``pgrep -P`` (macOS)."""
    try:
        import psutil

        try:
            return [c.pid for c in psutil.Process(pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
    except ImportError:
        pass
    parents: dict[int, list[int]] = {}
    proc = Path("/proc")
    if proc.is_dir():
        for d in proc.iterdir():
            if not d.name.isdigit():
                continue
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            parents.setdefault(ppid, []).append(int(d.name))
        direct = lambda p: parents.get(p, [])  # noqa: E731
    else:  # macOS and other Unix without /proc
        import subprocess

        def direct(p):
            out = subprocess.run(["pgrep", "-P", str(p)], capture_output=True, text=True).stdout
            return [int(x) for x in out.split()]
    out, todo = [], [pid]
    while todo:
        kids = direct(todo.pop(0))
        out += kids
        todo += kids
    return out


def kill_process_tree(pid: int) -> list[int]:
    """Kill ``pid`` and all its descendants (Slicer's PythonSlicer is a launcher whose child,
    python-real, does the work: killing the launcher alone leaves the computation running).
    Descendants are found first, then killed deepest first. Returns the pids signalled."""
    import signal
    import subprocess
    import sys

    if sys.platform == "win32":
        subprocess.run(["taskkill", "/F", "/T", "/PID", str(pid)], capture_output=True)
        return [pid]
    victims = [*reversed(child_pids(pid)), pid]
    killed = []
    for p in victims:
        try:
            os.kill(p, signal.SIGKILL)
            killed.append(p)
        except (ProcessLookupError, PermissionError):
            pass
    return killed


def remove_work_dir(path: str | os.PathLike | None) -> None:
    """Delete a background run's temporary folder (input copy, outputs once read); no error
    when it is already gone."""
    import shutil

    if path:
        shutil.rmtree(path, ignore_errors=True)
