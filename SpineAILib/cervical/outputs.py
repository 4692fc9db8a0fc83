"""Files of ``spineai cervical``: ``localization.png`` (the C3-C7 region as a 0/255 mask at the
input's size), ``localization.json`` (``{"image", **result.to_dict()}``: found, polygon, axis,
confidence, warnings) and, on request, ``probability.png`` (the spine probability x 255)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from SpineAILib.cervical.predict import CervicalResult
from SpineAILib.errors import InputError

OUTPUT_FILES = ("localization.png", "localization.json")


def write_outputs(result: CervicalResult, folder: str | os.PathLike, image_name: str = "",
                  probability: bool = False) -> dict[str, Path]:
    """Write the task's files into ``folder``; returns {file name: path}."""
    import SimpleITK as sitk

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"localization.png": out / "localization.png"}
    sitk.WriteImage(sitk.GetImageFromArray((result.region * 255).astype(np.uint8)), str(paths["localization.png"]))
    if probability:
        paths["probability.png"] = out / "probability.png"
        sitk.WriteImage(sitk.GetImageFromArray((result.probability * 255).round().astype(np.uint8)),
                        str(paths["probability.png"]))
    paths["localization.json"] = out / "localization.json"
    paths["localization.json"].write_text(json.dumps({"image": image_name, **result.to_dict()}, indent=1),
                                          encoding="utf-8")
    return paths


def read_outputs(folder: str | os.PathLike) -> CervicalResult:
    """The result :func:`write_outputs` wrote (the probability map read back at 1/255 steps;
    without ``probability.png``, the region stands for it)."""
    import SimpleITK as sitk

    d = Path(folder)
    try:
        data = json.loads((d / "localization.json").read_text(encoding="utf-8"))
        region = sitk.GetArrayFromImage(sitk.ReadImage(str(d / "localization.png"))) > 0
    except (OSError, RuntimeError, json.JSONDecodeError) as exc:
        raise InputError(f"Cannot read the cervical localisation in {d}: {exc}") from None
    prob = None
    if (d / "probability.png").is_file():
        prob = sitk.GetArrayFromImage(sitk.ReadImage(str(d / "probability.png"))).astype(np.float32) / 255
    return CervicalResult.from_dict(data, region, prob)
