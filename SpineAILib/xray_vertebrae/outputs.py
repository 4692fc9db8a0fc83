"""Files of ``spineai xray-vertebrae`` (a stable contract):

- ``DIR/<image stem>.json``: ``{"image", "view", "vertebrae": [{"name", "centroid": [x, y],
  "corners": {...}, "confidence"}], "alignment": {...}, "warnings": [...]}`` (plus image_size,
  pixel_spacing_mm, model). Lateral corners are top_posterior, top_anterior, bottom_posterior,
  bottom_anterior; AP corners top_left, top_right, bottom_left, bottom_right (image left/right).
  An image that could not be read gets ``{"image", "error", "vertebrae": [], "warnings": [error]}``.
- ``DIR/alignment.csv``: ``image,c2_c7_lordosis,t4_t12_kyphosis,l1_s1_lordosis,sacral_slope``,
  degrees, one row per image; an empty cell where an angle's vertebrae are not in view (and in
  every angle of an AP view or an unreadable image).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable
from pathlib import Path

from SpineAILib.errors import InputError
from SpineAILib.xray_vertebrae.alignment import ALIGNMENT_COLUMNS
from SpineAILib.xray_vertebrae.predict import XrayVertebraeResult

CSV_HEADER = ["image", *ALIGNMENT_COLUMNS]
_SUFFIXES = (".nii.gz", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", ".nrrd", ".nii", ".mha")


def image_stem(name: str) -> str:
    """File name without its image suffix (``a.nii.gz`` -> ``a``)."""
    low = name.lower()
    for s in _SUFFIXES:
        if low.endswith(s) and len(name) > len(s):
            return name[: -len(s)]
    return Path(name).stem or name


def csv_row(image_name: str, result: XrayVertebraeResult | InputError) -> list[str]:
    if isinstance(result, InputError) or result.alignment is None:
        return [image_name, *([""] * len(ALIGNMENT_COLUMNS))]
    return [image_name, *("" if v is None else f"{v:.2f}" for v in result.alignment.angles().values())]


def write_csv(path: str | os.PathLike, rows: Iterable[list[str]]) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(CSV_HEADER)
        w.writerows(rows)
    return p


def write_outputs(result: XrayVertebraeResult | InputError, folder: str | os.PathLike, image_name: str) -> Path:
    """``folder/<image stem>.json`` (see the module docstring)."""
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    p = d / f"{image_stem(image_name)}.json"
    if isinstance(result, InputError):
        data = {"image": image_name, "error": str(result), "view": None, "vertebrae": [], "alignment": {},
                "warnings": [str(result)]}
    else:
        data = {"image": image_name, **result.to_dict()}
    p.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return p


def read_outputs(folder: str | os.PathLike, image_name: str) -> XrayVertebraeResult:
    p = Path(folder) / f"{image_stem(image_name)}.json"
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"Cannot read the X-ray vertebrae result {p}: {exc}") from None
    if data.get("error"):
        raise InputError(f"{image_name}: {data['error']}")
    return XrayVertebraeResult.from_dict(data)
