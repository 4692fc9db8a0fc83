"""Centroid files: VerSe ``*_ctd.json``, CSI 2014 ``.lml`` and SpineAI's ``centroids.json``, with
exact conversion between voxel, LPS and RAS coordinates.

VerSe JSON: the first entry gives the axis directions of the coordinates, e.g.
``{"direction": ["P", "I", "R"]}``, meaning X grows towards posterior, Y towards inferior and Z
towards the patient's right; then ``{"label": 20, "X": .., "Y": .., "Z": ..}`` entries in voxel
units of the image in that orientation. We map them through the reference image's own axes
(matched by anatomical direction, flipped when opposite), so any stored orientation works.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from SpineAILib import anatomy
from SpineAILib.errors import InputError
from SpineAILib.io.image import Image, lps_to_ras

# Anatomical code of the positive direction of each LPS axis and its opposite.
_POS = ("L", "P", "S")
_NEG = ("R", "A", "I")


def axis_codes(image: Image) -> list[str]:
    """Anatomical code ("L", "R", "P", "A", "S", "I") of each index axis i, j, k of ``image``."""
    codes = []
    for col in image.as_3d().direction.T:
        a = int(np.argmax(np.abs(col)))
        codes.append(_POS[a] if col[a] > 0 else _NEG[a])
    if len({_POS.index(c) if c in _POS else _NEG.index(c) for c in codes}) != 3:
        raise InputError(f"Image axes {codes} do not span three anatomical directions (oblique beyond 45 degrees?).")
    return codes


def _opposite(code: str) -> str:
    return _NEG[_POS.index(code)] if code in _POS else _POS[_NEG.index(code)]


def _axis_map(codes: list[str], image: Image) -> list[tuple[int, bool]]:
    """For each file axis: (image index axis, flipped?)."""
    img_codes = axis_codes(image)
    out = []
    for c in codes:
        c = c.upper()
        if c in img_codes:
            out.append((img_codes.index(c), False))
        elif _opposite(c) in img_codes:
            out.append((img_codes.index(_opposite(c)), True))
        else:
            raise InputError(f"Direction code '{c}' is not one of L, R, P, A, S, I.")
    if len({a for a, _ in out}) != 3:
        raise InputError(f"Direction codes {codes} do not name three different axes.")
    return out


def read_verse_centroids(path: str | os.PathLike, reference: Image) -> dict[int, np.ndarray]:
    """{VerSe label: LPS mm} from a VerSe centroid JSON, using ``reference`` (the CT or mask the
    file belongs to) for the voxel grid."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"Cannot read VerSe centroids {p}: {exc}") from None
    if not data or "direction" not in data[0]:
        raise InputError(
            f"{p.name}: the first entry must give the axis directions, e.g. {{'direction': ['P','I','R']}}."
        )
    ref = reference.as_3d()
    amap = _axis_map(list(data[0]["direction"]), ref)
    size = ref.size
    out = {}
    for entry in data[1:]:
        if "label" not in entry:
            continue
        idx = np.zeros(3)
        for value, (ax, flip) in zip((entry["X"], entry["Y"], entry["Z"]), amap, strict=True):
            idx[ax] = (size[ax] - 1 - value) if flip else value
        out[int(entry["label"])] = ref.index_to_physical(idx)
    return out


def write_verse_centroids(path: str | os.PathLike, centroids_lps: dict[int, np.ndarray], reference: Image) -> Path:
    """Write VerSe JSON in the reference image's own orientation (voxel units)."""
    ref = reference.as_3d()
    codes = axis_codes(ref)
    entries: list[dict] = [{"direction": codes}]
    for lab in sorted(centroids_lps, key=lambda v: anatomy.ORDER.index(v) if v in anatomy.ORDER else v):
        i, j, k = ref.physical_to_index(np.asarray(centroids_lps[lab], float))
        entries.append({"label": int(lab), "X": round(float(i), 3), "Y": round(float(j), 3), "Z": round(float(k), 3)})
    p = Path(path)
    p.write_text(json.dumps(entries) + "\n", encoding="utf-8")
    return p


def centroids_json(centroids_lps: dict[int, np.ndarray], confidence: dict[int, float] | None = None) -> list[dict]:
    """SpineAI ``centroids.json`` entries: label (VerSe number), name, RAS mm, confidence."""
    out = []
    for lab in sorted(centroids_lps, key=lambda v: anatomy.ORDER.index(v) if v in anatomy.ORDER else v):
        out.append({"label": int(lab), "name": anatomy.vertebra_name(lab),
                    "position_ras_mm": [round(float(v), 3) for v in lps_to_ras(np.asarray(centroids_lps[lab]))],
                    "confidence": float((confidence or {}).get(lab, 1.0))})
    return out


def read_centroids_file(path: str | os.PathLike, reference: Image | None = None) -> dict[int, np.ndarray]:
    """{VerSe label: LPS mm} from SpineAI ``centroids.json`` (RAS mm) or VerSe ``*_ctd.json``
    (voxel units: needs ``reference``, the image it belongs to) or CSI ``.lml``."""
    p = Path(path)
    if p.suffix == ".lml":
        if reference is None:
            raise InputError(f"{p.name}: .lml coordinates are relative to an image; give the CT as reference.")
        return read_lml(p, reference)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"Cannot read centroids {p}: {exc}") from None
    if isinstance(data, list) and data and isinstance(data[0], dict) and "direction" in data[0]:
        if reference is None:
            raise InputError(f"{p.name} is a VerSe centroid file (voxel units); give the CT as reference.")
        return read_verse_centroids(p, reference)
    if isinstance(data, dict) and "vertebrae" in data:  # a SpineAI report with a vertebrae list
        data = data["vertebrae"]
    if not isinstance(data, list) or not all(isinstance(e, dict) and "position_ras_mm" in e for e in data):
        raise InputError(f"{p.name}: expected SpineAI centroids.json entries {{'label', 'position_ras_mm'}} or a "
                         "VerSe *_ctd.json file.")
    out = {}
    for e in data:
        lab = int(e["label"]) if "label" in e else anatomy.vertebra_label(e["name"])
        out[lab] = lps_to_ras(np.asarray(e["position_ras_mm"], float))
    return out


def read_lml(path: str | os.PathLike, reference: Image) -> dict[int, np.ndarray]:
    """{VerSe label: LPS mm} from a CSI 2014 ``.lml`` file.

    Format: one header line, then ``<id> <name>_center <x> <y> <z>`` per vertebra, the
    coordinates in mm along the image's index axes measured from the centre of voxel (0, 0, 0)
    (i.e. index * spacing), as the challenge tools and later work (e.g. SpineFinder) use them.
    """
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"Cannot read {p}: {exc}") from None
    ref = reference.as_3d()
    out = {}
    for line in lines[1:]:
        parts = line.split()
        if len(parts) < 5:
            continue
        name = parts[1].split("_")[0]
        try:
            lab = anatomy.vertebra_label(name)
            mm = np.array([float(v) for v in parts[2:5]])
        except (InputError, ValueError):
            raise InputError(f"{p.name}: cannot parse line '{line.strip()}' (expected '<id> <name>_center x y z').") \
                from None
        out[lab] = ref.index_to_physical(mm / np.array(ref.spacing))
    if not out:
        raise InputError(f"{p.name} holds no vertebra centroids.")
    return out


def write_lml(path: str | os.PathLike, centroids_lps: dict[int, np.ndarray], reference: Image) -> Path:
    """Write a CSI 2014 ``.lml`` file (inverse of :func:`read_lml`)."""
    ref = reference.as_3d()
    rows = ["# SpineAI centroids"]
    for lab in [v for v in anatomy.ORDER if v in centroids_lps]:
        mm = ref.physical_to_index(np.asarray(centroids_lps[lab], float)) * np.array(ref.spacing)
        rows.append(f"{lab * 10}\t{anatomy.vertebra_name(lab)}_center\t{mm[0]:.3f}\t{mm[1]:.3f}\t{mm[2]:.3f}")
    p = Path(path)
    p.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return p
