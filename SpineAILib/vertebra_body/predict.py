"""Click to segment: a point on a vertebral body in a CT -> the body's mask, volume, mean HU,
anterior/middle/posterior heights in its own mid-sagittal plane and the Genant grade.

Stages: crop 128 x 128 x 64 mm at 1 mm around the click (``crop.crop_around``), the 3D U-Net
(crop + click channel), keep the connected region at the click, paste the probability back onto
the CT grid (linear) and threshold at 0.5, measure on the 1 mm crop mask (isotropic: heights
do not depend on the CT's slice thickness), each height's ends refined to the endplate edges in
the CT crop (``measure.find_edge``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from SpineAILib import anatomy
from SpineAILib.ctcolumn import find_column
from SpineAILib.device import autocast, resolve_device
from SpineAILib.errors import InputError
from SpineAILib.io import Image, read_image
from SpineAILib.io.image import lps_to_ras
from SpineAILib.models import cached_model
from SpineAILib.preprocessing import check_image
from SpineAILib.preprocessing.intensity import scale_hu
from SpineAILib.vertebra_body import networks as _networks  # noqa: F401  (registers the architectures)
from SpineAILib.vertebra_body.crop import click_channel, crop_around, paste_back
from SpineAILib.vertebra_body.genant import GenantResult, genant
from SpineAILib.vertebra_body.measure import measure_heights

TASK = "Vertebral body segmentation"
MODEL_NAME = "vertebral_body"
NAME_RADIUS_MM = 20.0  # a labelled centroid this close to the click names the body
MIN_EDGES_FOR_GRADE = 4  # of the 6 height ends: whole bodies confirm 5-6, partial segments fewer
# A click's heights are measured on its 1 mm crop, resampled linearly from the CT: that, and the
# CT's own blur, put the steepest fall of an endplate outside the bone's end (the bright cortical
# plate's rising edge tilts it outward). Each end found on an edge is moved inwards by the median
# of that outward bias on validation phantoms (how it was decided, and its effect at other
# spacings: docs/history/ct_tasks.md). An exact mask measured on the CT's own finer grid has no
# such bias, so measure_heights leaves the ends as found by default. Real CT (other blur, plate
# thickness) is unchecked.
EDGE_BIAS_MM = 0.125


@dataclass
class BodyResult:
    """Plain result of :func:`segment`. Positions in LPS mm; ``to_dict`` reports RAS."""

    name: str  # "L2 vertebral body" or "Vertebral body 1"
    label: int | None  # VerSe label when named from a centroid
    point: np.ndarray  # the click, LPS mm
    mask: np.ndarray  # bool (z, y, x) on the input CT's grid
    volume_ml: float
    mean_hu: float
    heights: dict[str, float]  # anterior/middle/posterior height (mm)
    genant: GenantResult | None = None
    confidence: float = 0.0
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        g = self.genant
        return {"name": self.name, "label": self.label, "point_ras_mm": [round(float(v), 3) for v in
                                                                         lps_to_ras(self.point)],
                "volume_ml": round(self.volume_ml, 3), "mean_hu": round(self.mean_hu, 1),
                "anterior_height_mm": round(self.heights["anterior"], 2),
                "middle_height_mm": round(self.heights["middle"], 2),
                "posterior_height_mm": round(self.heights["posterior"], 2),
                "genant_grade": None if g is None else g.grade, "genant": None if g is None else g.label,
                "deformity": None if g is None else g.deformity,
                "height_loss": None if g is None else round(g.height_loss, 4),
                "confidence": round(self.confidence, 3), "voxels": int(self.mask.sum()),
                "warnings": list(self.warnings)}

    @classmethod
    def from_dict(cls, data: dict, mask: np.ndarray) -> BodyResult:
        """Rebuild from :meth:`to_dict` output and the body's mask on the CT grid (z, y, x)."""
        g = None if data["genant_grade"] is None else GenantResult(int(data["genant_grade"]), data["genant"],
                                                                      data["deformity"], float(data["height_loss"]))
        heights = {k: float(data[f"{k}_height_mm"]) for k in ("anterior", "middle", "posterior")}
        return cls(data["name"], data["label"], lps_to_ras(np.asarray(data["point_ras_mm"], float)),
                   np.asarray(mask, bool), float(data["volume_ml"]), float(data["mean_hu"]), heights, g,
                   float(data["confidence"]), list(data["warnings"]))


def get_model(device="cpu", models_dir=None):
    return cached_model(MODEL_NAME, device, models_dir)


def to_lps(point, space: str = "RAS") -> np.ndarray:
    p = np.asarray(point, float).reshape(-1)
    if p.shape != (3,) or not np.all(np.isfinite(p)):
        raise InputError(f"A point needs three finite coordinates in mm, got {list(np.ravel(point))}.")
    if space.upper() == "RAS":
        return lps_to_ras(p)  # the flip is its own inverse
    if space.upper() != "LPS":
        raise InputError(f"Point space must be 'RAS' or 'LPS', got '{space}'.")
    return p


def predict_crop(crop_hu: np.ndarray, record, net, device) -> np.ndarray:
    """Body probability on the crop grid (z, y, x)."""
    import torch

    x = np.stack([scale_hu(crop_hu), click_channel(record)])[None]
    with torch.no_grad(), autocast(device):
        return torch.sigmoid(net(torch.as_tensor(x).to(device)).float())[0, 0].cpu().numpy()


def region_at_click(prob: np.ndarray, threshold: float = 0.5, max_mm: float = 12.0) -> np.ndarray:
    """The connected region (prob > threshold) containing the crop centre, or else the one
    nearest to it within ``max_mm`` (1 mm voxels); empty when none."""
    from scipy import ndimage

    lab, n = ndimage.label(prob > threshold)
    if n == 0:
        return np.zeros(prob.shape, bool)
    c = tuple(s // 2 for s in prob.shape)
    if lab[c]:
        return lab == lab[c]
    dist, (iz, iy, ix) = ndimage.distance_transform_edt(lab == 0, return_indices=True)
    if dist[c] > max_mm:
        return np.zeros(prob.shape, bool)
    return lab == lab[iz[c], iy[c], ix[c]]


def cut_at_neighbours(region: np.ndarray, record, label: int | None, centroids: dict[int, np.ndarray] | None
                      ) -> np.ndarray:
    """With labelled centroids, remove from the crop-grid region everything beyond the planes
    half-way to the neighbouring vertebrae's centroids (perpendicular to the line joining them):
    where two bodies touch (a collapsed disc, a strongly curved column) the network's connected
    region holds both, and the heights would be measured across them."""
    if label is None or not centroids:
        return region
    order = [v for v in anatomy.ORDER if v in centroids]
    if label not in order:
        return region
    i = order.index(label)
    own = np.asarray(centroids[label], float)
    sides = []
    for j in (i - 1, i + 1):
        if 0 <= j < len(order):
            other = np.asarray(centroids[order[j]], float)
            if np.linalg.norm(other - own) > 80.0:  # not an adjacent level (a gap in the labels)
                continue
            sides.append((0.5 * (own + other), other - own))
    return keep_below_planes(region, record, sides, strict=True)


def keep_below_planes(region: np.ndarray, record, planes: list[tuple[np.ndarray, np.ndarray]],
                      strict: bool = False) -> np.ndarray:
    """The crop-grid region less what lies beyond any of ``planes`` ((point, normal), LPS mm:
    kept where (x - point) . normal <= 0, or < 0 with ``strict``), then its part connected to
    the click."""
    idx = np.argwhere(region)
    if not len(idx):
        return region
    pts = np.asarray(record.origin) + idx[:, ::-1] * record.spacing  # crop grid: identity direction
    keep = np.ones(len(idx), bool)
    for point, normal in planes:
        side = (pts - np.asarray(point, float)) @ np.asarray(normal, float)
        keep &= side < 0 if strict else side <= 0
    out = np.zeros_like(region)
    out[tuple(idx[keep].T)] = True
    return region_at_click(out.astype(np.float32), 0.5) if out.any() else out


def name_for(point_lps: np.ndarray, centroids: dict[int, np.ndarray] | None, index: int) -> tuple[str, int | None]:
    if centroids:
        labs = list(centroids)
        d = [np.linalg.norm(np.asarray(centroids[k]) - point_lps) for k in labs]
        k = int(np.argmin(d))
        if d[k] <= NAME_RADIUS_MM and labs[k] in anatomy.VERTEBRAE:
            return f"{anatomy.vertebra_name(labs[k])} vertebral body", labs[k]
    return f"Vertebral body {index}", None


def si_axis_from(label: int | None, centroids: dict[int, np.ndarray] | None) -> np.ndarray | None:
    """Column direction at a vertebra from its neighbours' centroids (superior pointing)."""
    if label is None or not centroids:
        return None
    order = [v for v in anatomy.ORDER if v in centroids]
    if label not in order or len(order) < 2:
        return None
    i = order.index(label)
    a = centroids[order[max(0, i - 1)]]
    b = centroids[order[min(len(order) - 1, i + 1)]]
    v = np.asarray(a, float) - np.asarray(b, float)
    return v / np.linalg.norm(v) if np.linalg.norm(v) > 0 else None


@dataclass
class DiscPlanes:
    """The planes through the discs below and above a clicked body (LPS mm; normals pointing to
    the head), None on a side where the column leaves the region looked at, and the column's
    direction at the body."""

    lower: tuple[np.ndarray, np.ndarray] | None
    upper: tuple[np.ndarray, np.ndarray] | None
    axis: np.ndarray


def disc_planes(image: Image, point_lps: np.ndarray, half_size_mm: tuple[float, float, float] = (100.0, 100.0, 120.0),
                spacing_mm: float = 2.0, max_canal_mm: float = 50.0, max_centre_mm: float = 25.0
                ) -> DiscPlanes | None:
    """The disc planes around the body at ``point_lps`` from the column found in the image
    (:func:`SpineAILib.ctcolumn.find_column` on a region of +-``half_size_mm`` around the click):
    the piece whose canal samples are nearest the click, if the canal lies within
    ``max_canal_mm`` of it and the piece's body centre within ``max_centre_mm``. None where no
    column is found there. Why: without its neighbours' centroids the network's region spills
    across the discs into the bodies above and below on real CT."""
    size = tuple(int(round(2 * h / spacing_mm)) for h in half_size_mm)
    region, _ = crop_around(image, point_lps, size, spacing_mm)
    column = find_column(region.array, region)
    if column is None or not column.pieces:
        return None
    path = column.path
    d = np.linalg.norm(path.points - point_lps, axis=1)
    k = int(np.argmin(d))
    if d[k] > max_canal_mm:
        return None
    piece = next((p for p in column.pieces if p.start <= k < p.stop), None)
    if piece is None or np.linalg.norm(piece.centre - point_lps) > max_centre_mm:
        return None
    last = len(path.points) - 1
    lower = None if piece.start == 0 else (path.points[piece.start], path.tangent[piece.start])
    upper = None if piece.stop - 1 >= last else (path.points[piece.stop - 1], path.tangent[piece.stop - 1])
    return DiscPlanes(lower, upper, path.tangent[(piece.start + piece.stop) // 2])


def cut_at_planes(region: np.ndarray, record, planes: DiscPlanes | None) -> np.ndarray:
    """The crop-grid region less what lies beyond the disc planes (below the lower, above the
    upper), then its part connected to the click."""
    if planes is None:
        return region
    sides = [] if planes.lower is None else [(planes.lower[0], -planes.lower[1])]
    sides += [] if planes.upper is None else [planes.upper]
    return keep_below_planes(region, record, sides)


def touches_border(mask: np.ndarray) -> bool:
    """Whether a mask (any number of axes) has a voxel on a face of its array."""
    return any(np.take(mask, i, axis=ax).any() for ax in range(mask.ndim) for i in (0, -1))


def grade_heights(heights: dict[str, float], edges_found: int = 6,
                  neighbour_posterior_mm: list[float] | None = None):
    """Genant grade of measured heights (mm, keys anterior/middle/posterior) and the warnings
    that go with it: (GenantResult or None, [warning, ...]). No grade where a height is missing
    or where fewer than MIN_EDGES_FOR_GRADE of the 6 height ends were confirmed by an endplate
    edge in the CT: the mask then stops inside the bone (or beyond it), a partial segment reads
    as height loss, and a wrong "severe" is worse than no grade."""
    if min(heights.values()) <= 0:
        return None, ["A height could not be measured (the mask is not a closed body at that position)."]
    if edges_found < MIN_EDGES_FOR_GRADE:
        return None, [f"Only {edges_found} of the 6 height ends lie on an endplate edge in the CT: the segment may "
                      "not cover the whole body, so the heights are uncertain and no Genant grade is given."]
    return genant(heights["anterior"], heights["middle"], heights["posterior"], neighbour_posterior_mm), []


def segment(image: Image | str | os.PathLike, point, space: str = "RAS", centroids: dict[int, np.ndarray] | None = None,
            device: str = "auto", models_dir=None, index: int = 1,
            neighbour_posterior_mm: list[float] | None = None) -> BodyResult:
    """Segment and measure the vertebral body at ``point`` (mm, ``space`` "RAS" or "LPS").

    ``centroids`` ({VerSe label: LPS mm}, e.g. from vertebra labelling) name the body ("L2
    vertebral body") and give the column axis for the heights; ``neighbour_posterior_mm``
    (the neighbours' posterior heights) lets the Genant grade see a crush. Raises InputError
    for a click outside the image or where no vertebral body is found.
    """

    t0 = time.perf_counter()
    if not isinstance(image, Image):
        image = read_image(image)
    img = check_image(image, TASK, ndim=3, min_size=2)
    p = to_lps(point, space)
    dev = resolve_device(device)
    net, card = get_model(dev, models_dir)
    crop, rec = crop_around(img, p, tuple(card.input.get("crop_size_xyz", (128, 128, 64))),
                            float(card.input.get("spacing_mm", 1.0)))
    near = crop.array[tuple(slice(s // 2 - 5, s // 2 + 6) for s in crop.array.shape)]
    if float(near.max()) < 100.0:
        raise InputError(f"No bone within 5 mm of the point (RAS {lps_to_ras(p).round(1).tolist()} mm; highest value "
                         f"{float(near.max()):.0f} HU): click inside a vertebral body.")
    prob = predict_crop(crop.array, rec, net, dev)
    name, label = name_for(p, centroids, index)
    region = cut_at_neighbours(region_at_click(prob), rec, label, centroids)
    # without labelled neighbours, the discs the image shows bound the body (and give the axis)
    axis = si_axis_from(label, centroids)
    planes = disc_planes(img, p) if axis is None else None
    region = cut_at_planes(region, rec, planes)
    if region.sum() < 500:  # < 0.5 ml: nothing body-like at the click
        raise InputError(f"No vertebral body found at the point (RAS {lps_to_ras(p).round(1).tolist()} mm): click "
                         "inside the body of a vertebra (not a disc, rib or the posterior elements).")
    kept = np.where(region, prob, 0.0)
    box_values, box = paste_back(kept, rec, img, "linear", return_box=True)
    mask = np.zeros(img.array.shape, bool)
    mask[box] = box_values >= 0.5
    # heights from the probability inside the region (sub-voxel), their ends refined on the CT's
    # endplate edges (the network rounds deformed endplates); volume from the voxels
    m = measure_heights(crop.with_array(kept.astype(np.float32)), axis if planes is None else planes.axis, hu=crop,
                        edge_bias_mm=EDGE_BIAS_MM)
    heights = {k: m[f"{k}_height_mm"] for k in ("anterior", "middle", "posterior")}
    g, warnings = grade_heights(heights, m["edges_found"], neighbour_posterior_mm)
    touching = [ax for ax, s in zip("zyx", region.shape, strict=True)
                if region.take(0, axis="zyx".index(ax)).any() or region.take(s - 1, axis="zyx".index(ax)).any()]
    if touching:
        warnings.append(f"The segment reaches the crop border ({', '.join(touching)}): it may include a neighbour.")
    if touches_border(mask):  # part of the body lies beyond the CT: heights and grade would be of a piece
        g = None
        warnings.append("The body is cut by the CT's field of view (its segment reaches the image border): the "
                        "heights are of the part in view and no Genant grade is given.")
    inside = box_values >= 0.5
    mean_hu = float(img.array[box][inside].mean()) if inside.any() else float(np.mean(crop.array[region]))
    return BodyResult(name, label, p, mask, float(m["volume_ml"]), mean_hu, heights, g,
                      float(prob[region].mean()), warnings, round(time.perf_counter() - t0, 3))


def grade_along_column(heights: list[dict[str, float] | None], positions: list[np.ndarray], confirmed: list[bool],
                       max_mm: float = 50.0) -> list:
    """Genant grades (GenantResult or None) of bodies listed head to feet: each confirmed body
    (heights the CT confirms, see :func:`grade_heights`) graded with the posterior heights of
    its confirmed neighbours in the list that lie closer than ``max_mm`` (adjacent vertebrae:
    the crush ratio); None for the others. A neighbour without confirmed heights is left out:
    its heights are uncertain."""
    out = []
    for k, (h, ok) in enumerate(zip(heights, confirmed, strict=True)):
        if not ok:
            out.append(None)
            continue
        neigh = [heights[j]["posterior"] for j in (k - 1, k + 1) if 0 <= j < len(heights) and confirmed[j]
                 and np.linalg.norm(np.asarray(positions[j]) - np.asarray(positions[k])) < max_mm]
        out.append(genant(h["anterior"], h["middle"], h["posterior"], neigh or None))
    return out


def segment_many(image: Image, points, space: str = "RAS", centroids=None, device: str = "auto",
                 models_dir=None) -> list[BodyResult]:
    """Several clicks: each body segmented, then graded with its neighbours' posterior heights
    (neighbours = the clicks just above and below along the column, when closer than 50 mm,
    i.e. adjacent vertebrae, and graded themselves: :func:`grade_along_column`)."""
    results = [segment(image, pt, space, centroids, device, models_dir, index=i + 1) for i, pt in enumerate(points)]
    return grade_results(results)


def grade_results(results: list[BodyResult]) -> list[BodyResult]:
    """Grade segmented bodies together (in place, returned): each with its neighbours along the
    column (:func:`grade_along_column`), as :func:`segment_many` does after segmenting."""
    if not results:
        return results
    order = np.argsort(-np.array([r.point[2] for r in results]))  # head to feet (LPS z)
    grades = grade_along_column([results[i].heights for i in order], [results[i].point for i in order],
                                [results[i].genant is not None for i in order])
    for i, g in zip(order, grades, strict=True):
        results[i].genant = g
    return results
