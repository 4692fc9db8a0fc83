"""Pre-processing and data for cervical localisation.

Pre-processing (the paper's): pad the radiograph with zeros to a square, resize to 100 x 100 with
bicubic interpolation. The ground truth is the C3-C7 vertebra masks resized the same way, closed
into one connected region. :class:`CanvasRecord` maps predictions back (resize up, drop padding).

Real data, two layouts:

* a folder of radiographs with C3-C7 masks (for users who have drawn them)::

    <root>/images/<name>.(png|jpg|dcm|nrrd|...)
    <root>/masks/<name>.(png|nrrd|nii.gz)   # C3-C7 mask (nonzero = spine), same pixel grid

* lateral radiographs with endplate corners as COCO keypoints (``io.lateral_keypoints``): the
  region is drawn from the corners as Al Arif et al. define it (:func:`c3_c7_region`), and
  lateral cervical views are cut from whole-spine radiographs (:func:`lateral_samples`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from SpineAILib.anatomy import LATERAL_VERTEBRAE
from SpineAILib.errors import InputError
from SpineAILib.io import read_image
from SpineAILib.io.lateral_keypoints import LateralCase
from SpineAILib.phantoms import CervicalPhantomConfig, lateral_cervical_phantom
from SpineAILib.preprocessing import CanvasRecord, fit_to_canvas
from SpineAILib.preprocessing.canvas import _resample_2d
from SpineAILib.training.lateral_views import NECK_ROWS, neck_view_box

SIZE = 100


def to_canvas(array: np.ndarray, size: int = SIZE) -> tuple[np.ndarray, CanvasRecord]:
    """(rows, cols) radiograph -> (size, size) float32 in [0, 1] (zero-padded square, bicubic)."""
    a = np.asarray(array, np.float32)
    lo, hi = float(a.min()), float(a.max())
    a = (a - lo) / (hi - lo if hi > lo else 1.0)
    side = max(a.shape)
    if side / size > 1.5:  # low-pass before a large down-scaling so bicubic does not alias
        import SimpleITK as sitk

        a = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(sitk.GetImageFromArray(a), 0.45 * side / size))
    out, rec = fit_to_canvas(a, (size, size), align="topleft", interpolator="bspline", pad_value=0.0)
    return np.clip(out, 0.0, 1.0).astype(np.float32), rec


def region_target(mask: np.ndarray, record: CanvasRecord) -> np.ndarray:
    """C3-C7 mask (original grid) -> the single connected 100 x 100 localisation target."""
    from scipy import ndimage

    m = np.asarray(mask) > 0
    small = _resize_mask(m, record)
    closed = ndimage.binary_closing(small, structure=np.ones((3, 3)), iterations=2, border_value=0)
    closed = ndimage.binary_fill_holes(closed)
    lab, n = ndimage.label(closed)
    if n > 1:  # keep the largest part: the target is one region by definition
        areas = np.bincount(lab.ravel())[1:]
        closed = lab == (np.argmax(areas) + 1)
    return closed.astype(np.uint8)


def _resize_mask(mask: np.ndarray, record: CanvasRecord) -> np.ndarray:
    frac = _resample_2d(mask.astype(np.float32), record.canvas_shape, record.scale, record.shift, "linear", 0.0)
    return frac >= 0.5


@dataclass
class Sample:
    name: str
    canvas: np.ndarray  # (100, 100) float32
    target: np.ndarray  # (100, 100) uint8 region
    record: CanvasRecord
    mask: np.ndarray | None = None  # original-resolution C3-C7 mask (evaluation)


def phantom_samples(n: int, seed: int = 0, size: int = 512, keep_masks: bool = False) -> list[Sample]:
    """``n`` varied lateral cervical phantoms (seeds seed .. seed+n-1)."""

    out = []
    for k in range(n):
        ph = lateral_cervical_phantom(CervicalPhantomConfig.random(seed + k, size))
        canvas, rec = to_canvas(ph.image.array)
        out.append(Sample(f"phantom-{seed + k}", canvas, region_target(ph.region, rec), rec,
                          ph.region if keep_masks else None))
    return out


def folder_samples(root: str | Path, keep_masks: bool = True) -> list[Sample]:
    """Samples from a folder of real radiographs with C3-C7 masks (layout in the module doc)."""

    root = Path(root)
    if not (root / "images").is_dir() or not (root / "masks").is_dir():
        raise InputError(f"{root} needs images/ and masks/ subfolders (see SpineAILib.cervical.data).")
    out = []
    for img_path in sorted((root / "images").iterdir()):
        stem = img_path.name.split(".")[0]
        masks = [p for p in (root / "masks").iterdir() if p.name.split(".")[0] == stem]
        if not masks:
            raise InputError(f"No mask for {img_path.name} in {root / 'masks'}.")
        img = read_image(img_path, expect_ndim=2)
        mask = read_image(masks[0], expect_ndim=2).array > 0
        if mask.shape != img.array.shape:
            raise InputError(f"Mask {masks[0].name} has shape {mask.shape}, image {img.array.shape}; they must match.")
        canvas, rec = to_canvas(img.array)
        out.append(Sample(stem, canvas, region_target(mask, rec), rec, mask if keep_masks else None))
    return out


C3_C7_ROWS = slice(LATERAL_VERTEBRAE.index("C3"), LATERAL_VERTEBRAE.index("C7") + 1)


def polygon_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(rows, cols) bool mask of the pixel centres inside the polygon ``points`` (K, 2) (x, y) px."""
    from matplotlib.path import Path as PolyPath

    pts = np.asarray(points, float)
    rows, cols = shape
    region = np.zeros(shape, bool)
    if len(pts) < 3:
        return region
    x0, y0 = np.clip(np.floor(pts.min(0)).astype(int), 0, [cols - 1, rows - 1])
    x1, y1 = np.clip(np.ceil(pts.max(0)).astype(int), 0, [cols - 1, rows - 1])
    yy, xx = np.mgrid[y0:y1 + 1, x0:x1 + 1]
    inside = PolyPath(pts).contains_points(np.stack([xx.ravel(), yy.ravel()], 1)).reshape(xx.shape)
    region[y0:y1 + 1, x0:x1 + 1] = inside
    return region


def c3_c7_polygon(corners: np.ndarray) -> np.ndarray:
    """The C3-C7 region of Al Arif et al. from endplate corners: down the posterior corners from
    C3's top to C7's bottom and back up the anterior corners.

    ``corners``: (V, 4, 2) px (x, y) of consecutive vertebrae in ``anatomy.LATERAL_CORNERS`` order
    (top posterior, top anterior, bottom posterior, bottom anterior); NaN corners are skipped.
    Returns the polygon (K, 2)."""
    c = np.asarray(corners, float)
    post = [p for p in c[:, [0, 2]].reshape(-1, 2) if not np.isnan(p).any()]
    ant = [p for p in c[:, [1, 3]].reshape(-1, 2) if not np.isnan(p).any()]
    return np.array(sorted(post, key=lambda p: p[1]) + sorted(ant, key=lambda p: -p[1]), float).reshape(-1, 2)


def c3_c7_region(case: LateralCase, shape: tuple[int, int] | None = None) -> np.ndarray:
    """(rows, cols) bool reference region of an annotated lateral radiograph (all of C3-C7
    labelled: otherwise an InputError)."""
    corners = case.corners[C3_C7_ROWS]
    if np.isnan(corners).any():
        raise InputError(f"{case.name}: C3-C7 are not all labelled; the reference region needs their 20 corners.")
    return polygon_mask(c3_c7_polygon(corners), shape or (case.size[1], case.size[0]))


def has_neck(case: LateralCase) -> bool:
    """Whether C3..T2 are all labelled (a lateral cervical view can be cut and scored)."""
    return not np.isnan(case.corners[C3_C7_ROWS]).any() and not np.isnan(case.centroids[NECK_ROWS]).any()


def neck_line(centres: np.ndarray) -> np.ndarray | None:
    """(8, 2) x, y px of C2..T2 on the least-squares line through the known centres (``centres``
    (8, 2), NaN where unknown): where a labelling missed a neck vertebra, its neighbours place it.
    None where fewer than two are known."""
    c = np.asarray(centres, float)
    known = ~np.isnan(c).any(1)
    if known.sum() < 2:
        return None
    idx = np.flatnonzero(known)
    return np.array([np.polyval(np.polyfit(idx, c[known, k], 1), np.arange(8)) for k in (0, 1)]).T


def neck_view_from_centres(centres: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """The lateral cervical view (x0, x1, y0, y1) px, clipped to the image, that the FCN reads in a
    larger radiograph: from the top of the image to 1.5 levels below T2, as wide as high, centred
    on C3-T2 (the middle of the framings it was trained on, ``training.lateral_views``).

    ``centres``: (8, 2) x, y px of C2..T2, NaN where unknown; :func:`neck_line` places C3-T2.
    None where fewer than two are known."""
    line = neck_line(centres)
    if line is None:
        return None
    h, w = shape
    bottom = min(h, line[7, 1] + 1.5 * np.linalg.norm(line[7] - line[6]))
    cx = line[1:8, 0].mean()
    x0, x1 = int(max(0, round(cx - bottom / 2))), int(min(w, round(cx + bottom / 2)))
    return (x0, x1, 0, int(round(bottom))) if x1 - x0 >= 16 and bottom >= 16 else None


def _box_pixels(box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    x0, x1, y0, y1 = box
    return int(round(x0 + 0.5)), int(round(x1 + 0.5)), int(round(y0 + 0.5)), int(round(y1 + 0.5))


def lateral_views(case: LateralCase, neck_views: int, rng: np.random.Generator, whole: bool = False,
                  lower_views: int = 0) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, image (rows, cols), C3-C7 reference mask) views of one annotated lateral
    radiograph (C3..T2 labelled, see :func:`has_neck`): ``neck_views`` lateral cervical views
    (:func:`training.lateral_views.neck_view_box`: top of the image to below T2, about square;
    nothing outside the view is kept, as in a real neck radiograph), the whole radiograph if
    ``whole`` and ``lower_views`` views below T2 (thorax and lumbar spine: the region is not in
    them)."""
    img = read_image(case.image_path, expect_ndim=2).array
    region = c3_c7_region(case, img.shape)
    views = []
    if whole:
        views.append((case.name, img, region))
    for k in range(neck_views):
        x0, x1, y0, y1 = _box_pixels(neck_view_box(case.centroids[NECK_ROWS], img.shape, rng))
        views.append((f"{case.name}-neck{k}", img[y0:y1, x0:x1], region[y0:y1, x0:x1]))
    below = case.centroids[NECK_ROWS][-1, 1]
    for k in range(lower_views):
        top = rng.uniform(below, max(below + 1, img.shape[0] * 0.6))
        height = rng.uniform(0.3, 1.0) * (img.shape[0] - top)
        y0, y1 = int(top), int(min(img.shape[0], top + max(height, 16)))
        views.append((f"{case.name}-lower{k}", img[y0:y1], np.zeros((y1 - y0, img.shape[1]), bool)))
    return views


def lateral_samples(cases: list[LateralCase], neck_views: int, rng: np.random.Generator, whole: bool = False,
                    lower_views: int = 0, keep_masks: bool = False) -> list[Sample]:
    """Network samples of :func:`lateral_views` of every case with C3..T2 labelled."""
    out = []
    for case in cases:
        if not has_neck(case):
            continue
        for name, array, mask in lateral_views(case, neck_views, rng, whole, lower_views):
            canvas, rec = to_canvas(array)
            out.append(Sample(name, canvas, region_target(mask, rec), rec, mask if keep_masks else None))
    return out


def negative_samples(paths: list[Path], n: int, rng: np.random.Generator) -> list[Sample]:
    """``n`` samples with empty targets from radiographs of other views (e.g. AP): the whole
    image or a random window of 40-100 percent of its height, cycling through ``paths``."""
    out = []
    for k in range(n):
        img = read_image(paths[k % len(paths)], expect_ndim=2).array
        if rng.random() < 0.5:
            frac = rng.uniform(0.4, 1.0)
            top = int(rng.uniform(0, (1 - frac) * img.shape[0]))
            img = img[top:top + max(16, int(frac * img.shape[0]))]
        canvas, rec = to_canvas(img)
        out.append(Sample(f"negative-{k}", canvas, np.zeros(canvas.shape, np.uint8), rec))
    return out
