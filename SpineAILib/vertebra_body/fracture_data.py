"""Training targets and dense inference for the fracture voxel classifier (Nicolaes et al.).

Label images are made from centroids alone (no segmentation needed): an ellipsoid per vertebral
body with the level's published width, depth and height, its long axis along the local column
direction; a fractured body's ellipsoid is flattened by its height loss. Classes: 0 background,
1 normal vertebra, 2 fractured vertebra (Genant grade >= 1, i.e. >= 20 % height loss).

Inference runs the dual-pathway network densely: output tiles of ``TILE`` voxels, the normal
pathway on the tile plus an 8-voxel margin, the subsampled pathway on a 3x larger context
average-pooled by 3. All arrays (z, y, x) on a canonical grid of ``SPACING`` mm.
"""

from __future__ import annotations

import numpy as np

from SpineAILib import anatomy
from SpineAILib.device import autocast
from SpineAILib.inference.tiling import tile_predict
from SpineAILib.phantoms.ct_spine import vertebra_dimensions
from SpineAILib.preprocessing.patches import crop_with_fill
from SpineAILib.progress import CancelToken
from SpineAILib.vertebra_body.predict import si_axis_from

SPACING = 2.0  # mm, working resolution
TILE = 45  # output voxels per tile side (a multiple of 3)
MARGIN = 8  # (receptive field 17 - 1) / 2


def body_ellipsoids(reference, centroids: dict[int, np.ndarray], losses: dict[int, float] | None = None,
                    fracture_threshold: float = 0.20) -> np.ndarray:
    """Class map (uint8, z y x) on ``reference``'s grid: 1 inside a normal body's ellipsoid, 2
    inside a fractured one (loss >= threshold), 0 elsewhere."""

    ref = reference.as_3d()
    out = np.zeros(ref.array.shape, np.uint8)
    kk, jj, ii = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in ref.array.shape), indexing="ij")
    pts = ref.index_to_physical(np.stack([ii, jj, kk], -1).reshape(-1, 3)).astype(np.float32)
    for lab, c in centroids.items():
        if lab not in anatomy.VERTEBRAE or anatomy.vertebra_name(lab) in ("T13", "L6"):
            continue
        d = vertebra_dimensions(anatomy.vertebra_name(lab))
        loss = (losses or {}).get(lab, 0.0)
        ez = si_axis_from(lab, centroids)
        ez = np.array([0.0, 0.0, 1.0]) if ez is None else ez
        ex = np.array([1.0, 0, 0]) - ez[0] * ez
        ex /= np.linalg.norm(ex)
        ey = np.cross(ez, ex)
        rel = pts - np.asarray(c, np.float32)
        u, v, w = (rel @ e.astype(np.float32) for e in (ex, ey, ez))
        r = (u / (d["width"] / 2)) ** 2 + (v / (d["depth"] / 2)) ** 2 + (w / (d["height"] * (1 - loss) / 2)) ** 2
        out.reshape(-1)[r <= 1] = 2 if loss >= fracture_threshold else 1
    return out


def pathway_inputs(vol: np.ndarray, centre_zyx, out_size: int, fill: float = -1.0):
    """(normal input of out_size + 16, low input of out_size / 3 + 16) around an output block
    whose first voxel is ``centre_zyx - out_size // 2`` (training samples; inference cuts the
    same inputs from its tiles' patches)."""
    start = np.asarray(centre_zyx, int) - out_size // 2
    big = crop_with_fill(np.asarray(vol, np.float32), start - 3 * MARGIN, (out_size + 6 * MARGIN,) * 3, fill)
    normal, low = split_pathways(big[None])
    return normal[0, 0], low[0, 0]


def predict_dense(net, vol: np.ndarray, device, box: tuple[slice, slice, slice] | None = None, tile: int = TILE,
                  batch: int = 2, progress=None, cancel: CancelToken | None = None) -> np.ndarray:
    """Class probabilities (3, z, y, x) over ``box`` of the (scaled) volume; background 1
    outside it. Each output tile's input patch carries the low pathway's context (3 x MARGIN on
    every side), from which both pathways' inputs are cut (:func:`split_pathways`)."""
    import torch

    def predictor(patches: np.ndarray) -> np.ndarray:
        a, b = split_pathways(patches)
        with torch.no_grad(), autocast(device):
            return torch.softmax(net(torch.as_tensor(a).to(device), torch.as_tensor(b).to(device)).float(),
                                 1).cpu().numpy()

    return tile_predict(vol, predictor, (tile,) * 3, (3 * MARGIN,) * 3, n_out=3, pad_value=-1.0, box=box,
                        batch=batch, fill=(1.0, 0.0, 0.0), progress=progress, cancel=cancel,
                        message="fracture classifier")


def split_pathways(patches: np.ndarray):
    """The two pathways' inputs (N, 1, ...) of input patches (N, s, s, s) with 3 x MARGIN voxels of
    context around an output tile of s - 6 x MARGIN: the normal pathway's tile + MARGIN on each
    side, and the whole patch average-pooled by 3."""
    import torch
    import torch.nn.functional as F

    x = np.asarray(patches, np.float32)[:, None]
    normal = x[(slice(None), slice(None), *(slice(2 * MARGIN, -2 * MARGIN),) * 3)]
    low = np.stack([F.avg_pool3d(torch.as_tensor(p)[None], 3)[0].numpy() for p in x])
    return np.ascontiguousarray(normal), low


def aggregate_vertebra(probs: np.ndarray, reference, centroid_lps, half_mm: float = 14.0,
                       sigma_mm: float = 7.0) -> float:
    """Vertebra-level fracture probability: the Gaussian-weighted mean over a cube (side
    2 * half_mm) around the centroid of p(fractured) / p(vertebra) (vertebra = normal +
    fractured), weighted also by p(vertebra) so background voxels do not dilute it."""
    ref = reference.as_3d()
    c = ref.physical_to_index(np.asarray(centroid_lps, float))[::-1]  # z, y, x
    h = half_mm / np.array(ref.spacing[::-1])
    lo = np.maximum(0, np.floor(c - h)).astype(int)
    hi = np.minimum(np.array(probs.shape[1:]), np.ceil(c + h).astype(int) + 1)
    if np.any(hi <= lo):
        return 0.0
    sl = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    zz, yy, xx = np.meshgrid(*(np.arange(a, b) for a, b in zip(lo, hi, strict=True)), indexing="ij")
    d2 = sum(((g - ci) * s) ** 2 for g, ci, s in zip((zz, yy, xx), c, ref.spacing[::-1], strict=True))
    w = np.exp(-d2 / (2 * sigma_mm ** 2))
    vert = probs[1][sl] + probs[2][sl]
    ww = w * vert
    if ww.sum() <= 1e-6:
        return 0.0
    return float((ww * probs[2][sl] / np.maximum(vert, 1e-6)).sum() / ww.sum())


def patient_components(probs: np.ndarray, spacing, threshold: float = 0.5, min_mm3: float = 500.0) -> list[dict]:
    """Patient level: connected components of voxels with p(fractured) > threshold of at least
    ``min_mm3``; each as {volume_mm3, centre_index_zyx, max_probability}."""
    from scipy import ndimage

    lab, n = ndimage.label(probs[2] > threshold)
    if n == 0:
        return []
    vox = float(np.prod(spacing))
    sizes = np.bincount(lab.ravel())[1:] * vox
    out = []
    for k in np.flatnonzero(sizes >= min_mm3) + 1:
        sel = lab == k
        out.append({"volume_mm3": float(sizes[k - 1]), "centre_index_zyx": np.argwhere(sel).mean(0).tolist(),
                    "max_probability": float(probs[2][sel].max())})
    return out
