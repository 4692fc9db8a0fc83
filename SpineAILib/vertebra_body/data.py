"""Training and evaluation data for click-to-segment: CT phantoms with varied vertebral bodies
(size, height loss, osteolytic/osteoblastic lesions, curvature, noise) and the real crops with
expert masks in ``$SPINEAI_DATA/ct``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from SpineAILib import anatomy
from SpineAILib.io import Image, read_image
from SpineAILib.phantoms.ct_spine import DEFORMITIES, CTPhantomConfig, ct_spine_phantom
from SpineAILib.postprocessing import centers_of_mass
from SpineAILib.preprocessing import resample_to_canonical

LEVELS = [anatomy.VERTEBRAE[i] for i in range(8, 25)]  # T1..L5


def random_body_config(rng: np.random.Generator, spacing=(1.0, 1.0, 1.0)):
    """A phantom of 4-6 vertebrae between T1 and L5 with random body sizes, deformities and
    metastases: each vertebra has a 30 % chance of a height loss (wedge/biconcave/crush, 10-50 %)
    and a 25 % chance of a lytic or blastic lesion (radius 3-9 mm)."""

    n = int(rng.integers(4, 7))
    first = int(rng.integers(0, len(LEVELS) - n + 1))
    names = LEVELS[first:first + n]
    loss = {v: (str(rng.choice(DEFORMITIES)), float(rng.uniform(0.1, 0.5))) for v in names if rng.random() < 0.3}
    lesions = {v: (str(rng.choice(["lytic", "blastic"])), float(rng.uniform(3, 9))) for v in names
               if rng.random() < 0.25}
    return CTPhantomConfig(first=names[0], last=names[-1], spacing=tuple(float(s) for s in spacing),
                           lateral_curve_mm=float(rng.normal(0, 8)), lordosis_mm=float(rng.normal(0, 8)),
                           height_loss=loss, lesions=lesions, margin_mm=10.0, lateral_fov_mm=150.0, ap_fov_mm=170.0,
                           noise_hu=float(rng.uniform(5, 45)), size_scale=float(rng.uniform(0.85, 1.15)),
                           seed=int(rng.integers(0, 2**31)))


@dataclass
class BodyCase:
    """A CT with vertebral-body masks (VerSe label values) and the body centres to click."""

    name: str
    image: Image
    bodies: Image  # label map of the vertebral bodies on the CT grid
    centers: dict[int, np.ndarray]  # label -> LPS mm, where a user would click
    heights: dict[int, dict[str, float]] = field(default_factory=dict)
    deformity: dict[int, tuple[str, float]] = field(default_factory=dict)
    source: str = ""


def phantom_body_case(seed: int, spacing=(1.0, 1.0, 1.0), direction=None) -> BodyCase:
    from dataclasses import replace

    cfg = random_body_config(np.random.default_rng(seed), spacing)
    if direction is not None:
        cfg = replace(cfg, direction=np.asarray(direction, float))
    ph = ct_spine_phantom(cfg)
    return BodyCase(f"phantom_{seed}", ph.image, ph.body_labels, dict(ph.body_centers), ph.heights, ph.deformity,
                    "phantom")


def real_body_cases(data_root: str | os.PathLike) -> list[BodyCase]:
    """Real crops with expert masks: TPTBox (L2-L4; corpus subregions 49+50 of each vertebra) and
    spineFE L2 (the body labels of its segmentation). Click = centre of mass of each body."""

    ct = Path(data_root) / "ct"
    cases = []
    d = ct / "tptbox_crop"
    if (d / "ct.nii.gz").is_file():
        img = read_image(d / "ct.nii.gz")
        vert = read_image(d / "seg-vert_msk.nii.gz").array
        sub = read_image(d / "seg-subreg_msk.nii.gz").array
        bodies = np.where(np.isin(sub, (49, 50)), vert, 0).astype(np.int16)
        lab = img.with_array(bodies)
        cases.append(BodyCase("tptbox_crop", img, lab, centers_of_mass(lab), source=str(d)))
    d = ct / "spinefe_l2_crop"
    if (d / "ct.nii.gz").is_file():
        img = read_image(d / "ct.nii.gz")
        seg = read_image(d / "seg.nii.gz").array
        body = np.where(np.isin(seg, SPINEFE_BODY_LABELS), anatomy.vertebra_label("L2"), 0).astype(np.int16)
        lab = img.with_array(body)
        cases.append(BodyCase("spinefe_l2_crop", img, lab, centers_of_mass(lab), source=str(d)))
    return cases


# spineFE-benchmark's L2 segmentation has labels 1-6. Measured on the volume: 1 (trabecular,
# mean 75 HU) and 2 (cortical shell, 181 HU) share one centre and a 47 x 40 x 30 mm extent: the
# body; 3 and 4 (89 mm wide) are the posterior elements; 5 and 6 are 7 mm slabs at the bottom
# and top (endplate/disc regions, ~0 HU), left out. (The file's AP axis appears flipped: its
# posterior elements lie at more negative LPS y than the body.)
SPINEFE_BODY_LABELS = (1, 2)


def pseudo_body_arrays(image: Image, vertebra_mask: Image, mapping: dict[int, int] | None = None,
                       anterior_fraction: float = 0.45, margin_mm: float = 70.0) -> dict:
    """Training arrays from a real CT with a whole-vertebra label map (e.g. TotalSegmentator
    pseudo labels): on a 1 mm canonical grid around the column, each vertebra's anterior
    ``anterior_fraction`` of its AP extent as a (crude) body mask. Vertebrae cut by the field of
    view are left out. Returns the dict the training script caches (hu, bodies, labels, centers_zyx)."""

    lab = vertebra_mask.as_3d().array
    if mapping:
        lab = _map(lab, mapping)
    fg = np.argwhere(lab > 0)[:, ::-1].astype(float)
    pts = vertebra_mask.as_3d().index_to_physical(fg)
    lo, hi = pts.min(0) - margin_mm, pts.max(0) + margin_mm
    img, _ = resample_to_canonical(image, 1.0, "linear", default_value=-1000.0)
    m, _ = resample_to_canonical(vertebra_mask.with_array(lab.astype(np.int16)), 1.0, "nearest", default_value=0)
    a = np.clip(np.floor(img.physical_to_index(lo)), 0, np.array(img.size) - 1).astype(int)[::-1]
    b = np.clip(np.ceil(img.physical_to_index(hi)) + 1, 1, np.array(img.size)).astype(int)[::-1]
    sl = tuple(slice(int(x), int(y)) for x, y in zip(a, b, strict=True))
    hu, vm = img.array[sl], m.array[sl]
    bodies = np.zeros(vm.shape, np.uint8)
    labels, centers = [], []
    shape = np.array(vm.shape)
    for v in (int(x) for x in np.unique(vm) if x):
        idx = np.argwhere(vm == v)
        if v not in anatomy.VERTEBRAE or (idx.min(0) == 0).any() or (idx.max(0) == shape - 1).any():
            continue
        y = idx[:, 1]  # canonical grid: array axis 1 = LPS y (anterior = small)
        body = idx[y <= y.min() + anterior_fraction * (y.max() - y.min())]
        bodies[tuple(body.T)] = v
        labels.append(v)
        centers.append(body.mean(0))
    return {"hu": np.clip(hu, -1024, 3071).astype(np.int16), "bodies": bodies, "labels": np.array(labels),
            "centers_zyx": np.array(centers).reshape(-1, 3)}


def _map(arr: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    out = np.zeros(arr.shape, np.int16)
    for s, d in mapping.items():
        out[arr == s] = d
    return out
