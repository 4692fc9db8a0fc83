"""Loader for the AASCE / SpineWeb dataset 16 layout (any folder laid out the same way):

    <root>/images/<name>.jpg
    <root>/labels/<name>.jpg.mat          (p2: 68 x 2 pixel (x, y))
    <root>/labels/landmarks.csv           (68 x then 68 y, scaled 0-1 by width/height)
    <root>/labels/filenames.csv, angles.csv  (row order; main/upper/lower Cobb angles, degrees)

A few training files have corner-order errors; :func:`corner_order_problems` detects them
and :func:`fix_corner_order` re-sorts each vertebra's corners (top pair by y, then by x).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from SpineAILib.cobb.angles import N_LANDMARKS
from SpineAILib.errors import InputError


@dataclass
class AasceCase:
    name: str
    image_path: Path
    landmarks: np.ndarray  # (68, 2) pixels (x, y)
    angles: np.ndarray | None  # (3,) degrees: main, upper, lower
    size: tuple[int, int] | None = None  # (width, height) pixels when known


def _read_csv_rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return [row for row in csv.reader(f) if row]


def _read_mat(path: Path) -> np.ndarray:
    from scipy.io import loadmat

    m = loadmat(str(path))
    if "p2" not in m:
        raise InputError(f"{path.name} has no 'p2' landmark array.")
    return np.asarray(m["p2"], float)


def load_aasce(root: str | os.PathLike, source: str = "mat") -> list[AasceCase]:
    """Read every case of an AASCE-layout folder, in ``filenames.csv`` order.

    ``source`` "mat" takes pixel landmarks from the per-image .mat files; "csv" takes them
    from landmarks.csv (scaled back to pixels with the image size, which needs reading each
    image header).
    """
    import SimpleITK as sitk

    root = Path(root)
    labels = root / "labels"
    if not (root / "images").is_dir() or not labels.is_dir():
        raise InputError(f"{root} is not an AASCE-layout folder: expected images/ and labels/ inside.")
    names = [r[0] for r in _read_csv_rows(labels / "filenames.csv")]
    angles_rows = _read_csv_rows(labels / "angles.csv") if (labels / "angles.csv").is_file() else None
    lm_rows = _read_csv_rows(labels / "landmarks.csv") if source == "csv" else None
    cases = []
    for i, name in enumerate(names):
        img_path = root / "images" / name
        angles = np.array([float(v) for v in angles_rows[i]]) if angles_rows else None
        if source == "csv":
            reader = sitk.ImageFileReader()
            reader.SetFileName(str(img_path))
            reader.ReadImageInformation()
            w, h = reader.GetSize()[:2]
            vals = np.array([float(v) for v in lm_rows[i]])
            lm = np.stack([vals[:N_LANDMARKS] * w, vals[N_LANDMARKS:] * h], -1)
            cases.append(AasceCase(name, img_path, lm, angles, (w, h)))
        else:
            cases.append(AasceCase(name, img_path, _read_mat(labels / f"{name}.mat"), angles))
    return cases


def corner_order_problems(landmarks: np.ndarray) -> list[str]:
    """Descriptions of corner-order errors (empty when TL, TR, BL, BR order holds for all
    17 vertebrae and the vertebrae run top to bottom)."""
    p = np.asarray(landmarks, float).reshape(-1, 4, 2)
    out = []
    for v, (tl, tr, bl, br) in enumerate(p):
        if not (tl[0] < tr[0] and bl[0] < br[0]):
            out.append(f"vertebra {v + 1}: left corners not left of right corners")
        if not (tl[1] < bl[1] and tr[1] < br[1]):
            out.append(f"vertebra {v + 1}: top corners not above bottom corners")
    centres_y = p[:, :, 1].mean(1)
    if np.any(np.diff(centres_y) <= 0):
        out.append("vertebrae are not ordered top to bottom")
    return out


def fix_corner_order(landmarks: np.ndarray) -> np.ndarray:
    """Re-sort each vertebra's four corners into TL, TR, BL, BR (by y, then x) and the
    vertebrae top to bottom."""
    p = np.asarray(landmarks, float).reshape(-1, 4, 2).copy()
    for v in range(len(p)):
        q = p[v][np.argsort(p[v][:, 1], kind="stable")]
        top = q[:2][np.argsort(q[:2, 0])]
        bottom = q[2:][np.argsort(q[2:, 0])]
        p[v] = np.concatenate([top, bottom])
    p = p[np.argsort(p[:, :, 1].mean(1), kind="stable")]
    return p.reshape(-1, 2)


def split_cases(names: list[str], val_fraction: float = 0.2, seed: int = 0) -> dict[str, list[str]]:
    """Seeded train/validation split by patient: images of one patient (same 'sunhl-...-NNN'
    prefix before the view letter) stay on one side."""
    import re

    def patient(n: str) -> str:
        m = re.match(r"(.*?-\d+)\s*[A-Z]?\s*AP", n)
        return m.group(1) if m else n

    patients = sorted({patient(n) for n in names})
    rng = np.random.default_rng(seed)
    rng.shuffle(patients)
    n_val = max(1, int(round(len(patients) * val_fraction)))
    val_p = set(patients[:n_val])
    return {"train": sorted(n for n in names if patient(n) not in val_p),
            "val": sorted(n for n in names if patient(n) in val_p)}
