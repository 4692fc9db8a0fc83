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
# What the tasks need inside Slicer besides torch (installed through the PyTorch extension),
# pinned like pyproject.toml. Packages whose only heavy dependency is numpy/torch are installed
# with --no-deps so pip cannot touch Slicer's numpy or pull a second torch; matplotlib (used by
# the demo's overview) needs its small pure-Python/wheel dependencies, and its numpy requirement
# is already satisfied by Slicer's, so pip leaves numpy alone.
SLICER_PIP_PACKAGES = {"monai": "monai==1.6.1 --no-deps", "tqdm": "tqdm==4.70.1 --no-deps",
                       "scipy": "scipy==1.17.1 --no-deps", "matplotlib": "matplotlib==3.11.2"}


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


def install_plan(missing: list[str]) -> dict[str, list[str]]:
    """Split missing packages into what PyTorchUtils installs (torch) and pip requirement
    strings; protected packages are reported, never installed."""
    plan: dict[str, list[str]] = {"torch": [], "pip": [], "protected": []}
    for name in missing:
        if name == "torch":
            plan["torch"].append(name)
        elif name in PROTECTED_PACKAGES:
            plan["protected"].append(name)
        else:
            plan["pip"].append(SLICER_PIP_PACKAGES.get(name, f"{name} --no-deps"))
    return plan
