"""Files of ``spineai vertebral-body`` and ``spineai fracture``.

* vertebral-body: ``vertebral_body.nii.gz`` (label map on the CT grid, value = click number;
  where two bodies overlap the earlier click keeps the voxel) and ``measurements.json``
  (``{"input", "bodies": [{"label_value", **BodyResult.to_dict()}]}``).
* fracture: ``fracture.json`` (``{"input", **FractureResult.to_dict()}``) and ``fracture.csv``
  (one row per vertebra: name, probability, Genant grade, deformity, height loss, status).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

from SpineAILib.errors import InputError
from SpineAILib.io import Image, read_image, write_image
from SpineAILib.vertebra_body.fracture import FractureResult
from SpineAILib.vertebra_body.predict import BodyResult

BODY_FILES = ("vertebral_body.nii.gz", "measurements.json")
FRACTURE_FILES = ("fracture.json", "fracture.csv")
FRACTURE_CSV_HEADER = ["vertebra", "fracture_probability", "genant_grade", "genant", "deformity", "height_loss",
                       "status"]


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"Cannot read the {what} {path}: {exc}") from None


def write_body_outputs(results: list[BodyResult], image: Image, folder: str | os.PathLike,
                       source: str = "") -> dict[str, Path]:
    """Write the bodies of :func:`~SpineAILib.vertebra_body.segment_many` (``image``: the CT
    they were segmented in); returns {file name: path}."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    labels = np.zeros(image.array.shape, np.uint8)
    for i, r in enumerate(results):
        labels[r.mask & (labels == 0)] = i + 1
    paths = {"vertebral_body.nii.gz": write_image(image.with_array(labels), out / "vertebral_body.nii.gz")}
    record = {"input": source, "bodies": [{"label_value": i + 1, **r.to_dict()} for i, r in enumerate(results)]}
    paths["measurements.json"] = out / "measurements.json"
    paths["measurements.json"].write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return paths


def read_body_outputs(folder: str | os.PathLike) -> list[BodyResult]:
    """The bodies :func:`write_body_outputs` wrote, each with its voxels of the label map as mask."""
    d = Path(folder)
    record = _read_json(d / "measurements.json", "vertebral body measurements")
    labels = read_image(d / "vertebral_body.nii.gz").array
    return [BodyResult.from_dict(b, labels == b["label_value"]) for b in record["bodies"]]


def write_fracture_outputs(result: FractureResult, folder: str | os.PathLike, source: str = "") -> dict[str, Path]:
    """Write a fracture assessment; returns {file name: path}."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"fracture.json": out / "fracture.json", "fracture.csv": out / "fracture.csv"}
    paths["fracture.json"].write_text(json.dumps({"input": source, **result.to_dict()}, indent=1) + "\n",
                                      encoding="utf-8")
    with open(paths["fracture.csv"], "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(FRACTURE_CSV_HEADER)
        for v in result.vertebrae:
            d = v.to_dict()
            w.writerow([d["name"], d["fracture_probability"], d["genant_grade"], d["genant"], d["deformity"],
                        d["height_loss"], d["status"]])
    return paths


def read_fracture_outputs(folder: str | os.PathLike) -> FractureResult:
    """The assessment :func:`write_fracture_outputs` wrote (from ``fracture.json``)."""
    return FractureResult.from_dict(_read_json(Path(folder) / "fracture.json", "fracture assessment"))
