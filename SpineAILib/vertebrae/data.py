"""Cases for training and evaluating vertebra localisation: CT + labelled centroids (LPS mm).

Sources:

* a VerSe-layout folder (any depth): a CT ``<subject>..._ct.nii.gz`` (or any NIfTI/NRRD/MHA
  that is not a mask) with, next to it or anywhere in the folder, a centroid file of the same
  subject: VerSe ``*_ctd.json``, CSI 2014 ``*.lml``, or else a vertebra mask
  ``*_seg-vert_msk.nii.gz`` (centroids = body centres estimated from the mask);
* our CT phantoms with random anatomy, field of view, spacing, orientation and noise;
* the real samples in ``$SPINEAI_DATA/ct`` (masks give the centroids).

Centroids follow the VerSe convention: the centre of the vertebral body.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from SpineAILib import anatomy
from SpineAILib.errors import InputError
from SpineAILib.io import read_image
from SpineAILib.io.centroids import read_lml, read_verse_centroids
from SpineAILib.phantoms.ct_spine import CTPhantomConfig, ct_spine_phantom
from SpineAILib.postprocessing import body_centroids_from_mask
from SpineAILib.training.real_ct import Case, shared_ct_cases  # noqa: F401  (shared with other tasks)

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")


def _subject(path: Path) -> str:
    name = path.name
    for suf in (*IMAGE_SUFFIXES, ".json", ".lml"):
        if name.endswith(suf):
            name = name[: -len(suf)]
            break
    # VerSe/BIDS: sub-verse004_ct, sub-verse004_seg-vert_msk, sub-verse004_seg-subreg_ctd -> sub-verse004
    return re.split(r"_(?:ct|seg-|ctd|msk|dir-)", name)[0]


def folder_cases(folder: str | os.PathLike) -> list[Case]:
    """All CTs with centroids found in a VerSe-layout folder (see the module docstring)."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder. Expected a VerSe-layout folder: CTs *_ct.nii.gz with "
                         "*_ctd.json (or .lml, or *_seg-vert_msk.nii.gz) files of the same subject.")
    files = sorted(p for p in root.rglob("*") if p.is_file())
    by_subject: dict[str, dict[str, list[Path]]] = {}
    for p in files:
        kind = None
        if p.name.endswith(".json") and "ctd" in p.name:
            kind = "ctd"
        elif p.name.endswith(".lml"):
            kind = "lml"
        elif p.name.endswith(IMAGE_SUFFIXES):
            kind = "mask" if ("msk" in p.name or "seg" in p.name) else "ct"
        if kind:
            by_subject.setdefault(_subject(p), {}).setdefault(kind, []).append(p)
    cases = []
    for subject, found in sorted(by_subject.items()):
        if "ct" not in found:
            continue
        for ct in found["ct"]:
            image = read_image(ct)
            partial: set[int] = set()
            if "ctd" in found:
                cents = read_verse_centroids(found["ctd"][0], image)
            elif "lml" in found:
                cents = read_lml(found["lml"][0], image)
            elif "mask" in found:
                vert = [m for m in found["mask"] if "vert" in m.name] or found["mask"]
                cents, partial = body_centroids_from_mask(read_image(vert[0]))
            else:
                continue
            cents = {k: v for k, v in cents.items() if k in anatomy.VERTEBRAE}
            if cents:
                cases.append(Case(f"{subject}" if len(found["ct"]) == 1 else ct.name, image, cents, str(ct), partial))
    if not cases:
        raise InputError(f"No CT with centroids found under {root}. Expected VerSe layout: <subject>_ct.nii.gz with "
                         "<subject>_..._ctd.json, <subject>.lml or <subject>_seg-vert_msk.nii.gz.")
    return cases


def random_phantom_config(rng: np.random.Generator, min_vertebrae: int = 4, max_vertebrae: int = 26):
    """A random CT phantom: level range, curvature, field of view, spacing, orientation, noise."""

    order = [anatomy.VERTEBRAE[i] for i in anatomy.ORDER if anatomy.VERTEBRAE[i] not in ("L6", "T13")]
    n = int(rng.integers(min_vertebrae, min(max_vertebrae, len(order)) + 1))
    first = int(rng.integers(0, len(order) - n + 1))
    inplane = float(rng.uniform(0.9, 1.6))
    direction = np.eye(3)
    if rng.random() < 0.3:  # stored with flipped axes (e.g. RAS-oriented NIfTI) or as sagittal slices
        direction = np.diag(rng.choice([-1.0, 1.0], 3))
    return CTPhantomConfig(
        first=order[first], last=order[first + n - 1],
        spacing=(inplane, inplane, float(rng.uniform(1.0, 3.0))),
        lateral_curve_mm=float(rng.normal(0, 12)), lordosis_mm=float(rng.normal(0, 10)),
        margin_mm=float(rng.uniform(-10, 40)), lateral_fov_mm=float(rng.uniform(110, 260)),
        ap_fov_mm=float(rng.uniform(140, 260)), ribs=True, noise_hu=float(rng.uniform(5, 60)),
        direction=direction, seed=int(rng.integers(0, 2**31)),
    )


def phantom_case(seed: int, **overrides) -> Case:
    """A random phantom case; ``overrides`` replace fields of the random config."""
    from dataclasses import replace

    cfg = replace(random_phantom_config(np.random.default_rng(seed)), **overrides)
    ph = ct_spine_phantom(cfg)
    return Case(f"phantom_{seed:04d}", ph.image, dict(ph.body_centers), "phantom")
