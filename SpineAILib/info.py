"""Environment report: versions, device, models (used by ``spineai info``, the demo report and
the Slicer home module)."""

from __future__ import annotations

import importlib.metadata as md
import platform
import sys
from typing import Any

import SpineAILib
from SpineAILib.device import describe_device, resolve_device
from SpineAILib.models import check_models, default_models_dir
from SpineAILib.tasks import available_tasks

PACKAGES = ("numpy", "SimpleITK", "scipy", "torch", "monai", "vtk", "slicer-core", "matplotlib", "tqdm")


def versions() -> dict[str, str]:
    out = {"spineai": SpineAILib.__version__, "python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in PACKAGES:
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def missing_packages(required: tuple[str, ...] = ("torch", "monai")) -> list[str]:
    """Packages a task needs that are not importable (the Slicer module offers to install them)."""
    import importlib.util

    names = {"SimpleITK": "SimpleITK", "slicer-core": "slicer"}
    return [p for p in required if importlib.util.find_spec(names.get(p, p)) is None]


def device_summary(device: str = "auto") -> str:
    try:
        return describe_device(resolve_device(device))
    except ImportError:
        return "unknown (torch not installed)"


def info(device: str = "auto") -> dict[str, Any]:
    models_dir = default_models_dir()
    return {
        "versions": versions(),
        "device": device_summary(device),
        "models_dir": str(models_dir),
        "models": check_models(models_dir),
        "tasks": [t.name for t in available_tasks()],
    }
