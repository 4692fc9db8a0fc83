"""Files of ``spineai cobb``: one CSV row per image (``cobb_angles.csv``) and, with
``--landmarks DIR``, ``DIR/<image file name>.json`` holding the whole result (68 landmarks,
angles, curves, scores, warnings). The JSON is what a background process hands back to Slicer."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable
from pathlib import Path

from SpineAILib.cobb.predict import CobbResult
from SpineAILib.errors import InputError

CSV_HEADER = ["image", "main", "upper", "lower", "confidence", "low_confidence", "main_curve", "upper_curve",
              "lower_curve", "main_apex", "warnings"]


def csv_row(image_name: str, result: CobbResult | InputError) -> list[str]:
    """The CSV row of one image: angles in degrees (main, upper, lower) first; an image that
    could not be read gets an empty row with the error in the warnings column."""
    if isinstance(result, InputError):
        return [image_name, "", "", "", "", "", "", "", "", "", f"error: {result}"]
    a = result.angles
    return [image_name, *(f"{v:.3f}" for v in result.values), f"{result.confidence:.3f}",
            str(int(result.low_confidence)), f"{a.main.upper_end}-{a.main.lower_end}",
            f"{a.upper.upper_end}-{a.upper.lower_end}", f"{a.lower.upper_end}-{a.lower.lower_end}", a.main.apex,
            " | ".join(result.warnings)]


def write_csv(path: str | os.PathLike, rows: Iterable[list[str]]) -> Path:
    """``cobb_angles.csv``: the header and one row per image (:func:`csv_row`)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(CSV_HEADER)
        w.writerows(rows)
    return p


def write_outputs(result: CobbResult, folder: str | os.PathLike, image_name: str) -> Path:
    """``folder/<image_name>.json``: ``{"image": image_name, **result.to_dict()}``."""
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    p = d / f"{image_name}.json"
    p.write_text(json.dumps({"image": image_name, **result.to_dict()}, indent=1), encoding="utf-8")
    return p


def read_outputs(folder: str | os.PathLike, image_name: str) -> CobbResult:
    """The result :func:`write_outputs` wrote for ``image_name`` (angles recomputed from the
    landmarks)."""
    p = Path(folder) / f"{image_name}.json"
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"Cannot read the Cobb result {p}: {exc}") from None
    return CobbResult.from_dict(data)
