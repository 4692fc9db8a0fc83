"""The `Image` type: a numpy array plus its physical geometry (ITK/LPS conventions).

Conventions used everywhere in SpineAILib:

* ``array`` axis order is (z, y, x) for 3D and (y, x) for 2D (row, column) -- the order
  SimpleITK's ``GetArrayFromImage`` returns. Index tuples (i, j[, k]) are in the opposite,
  (x, y[, z]) order, like ITK.
* ``spacing`` is in millimetres, (x, y[, z]) order.
* ``origin`` is the physical position of the centre of voxel (0, 0[, 0]) in LPS millimetres.
* ``direction`` is an ndim x ndim matrix whose columns are the physical (LPS) directions of
  the index axes i, j[, k]: ``physical = origin + direction @ (spacing * index)``.
* Slicer works in RAS: the scene layer converts with :func:`lps_to_ras`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from SpineAILib.errors import InputError

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def lps_to_ras(points: np.ndarray) -> np.ndarray:
    """Convert (..., 3) points from LPS to RAS millimetres (flip x and y). Self-inverse."""
    pts = np.asarray(points, dtype=float)
    if pts.shape[-1] != 3:
        raise InputError(f"Expected points with 3 coordinates in the last axis, got shape {pts.shape}.")
    return pts * np.array([-1.0, -1.0, 1.0])


ras_to_lps = lps_to_ras


@dataclass
class Image:
    """A 2D or 3D image with physical geometry. See the module docstring for axis conventions.

    ``meta`` carries provenance (source path, conversions, ``spacing_known``) and, for a 2D
    image squeezed out of a single-slice volume, the 3D geometry it came from.
    """

    array: np.ndarray
    spacing: tuple[float, ...] | None = None
    origin: tuple[float, ...] | None = None
    direction: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        arr = np.asarray(self.array)
        if arr.ndim not in (2, 3):
            raise InputError(
                f"Image array must be 2D (y, x) or 3D (z, y, x); got {arr.ndim} dimensions with shape "
                f"{arr.shape}. Colour radiographs are converted to grayscale by read_image()."
            )
        if arr.size == 0:
            raise InputError(f"Image is empty (shape {arr.shape}); expected at least one pixel on every axis.")
        self.array = arr
        nd = arr.ndim
        if self.spacing is None:
            raise InputError(
                f"Image spacing is missing; expected {nd} positive pixel sizes in mm (x, y{', z' if nd == 3 else ''})."
            )
        spacing = tuple(float(s) for s in np.ravel(self.spacing))
        if len(spacing) != nd:
            raise InputError(f"Spacing {spacing} has {len(spacing)} values; a {nd}D image needs {nd}.")
        if not all(math.isfinite(s) and s > 0 for s in spacing):
            raise InputError(f"Spacing {spacing} is invalid; every pixel size must be a positive finite number (mm).")
        self.spacing = spacing
        origin = (0.0,) * nd if self.origin is None else tuple(float(o) for o in np.ravel(self.origin))
        if len(origin) != nd or not all(math.isfinite(o) for o in origin):
            raise InputError(f"Origin {origin} must hold {nd} finite coordinates (LPS mm).")
        self.origin = origin
        direction = np.eye(nd) if self.direction is None else np.asarray(self.direction, dtype=float).reshape(nd, nd)
        if not np.all(np.isfinite(direction)) or abs(np.linalg.det(direction)) < 1e-6:
            raise InputError(f"Direction matrix must be finite and invertible, got {direction.tolist()}.")
        self.direction = direction

    # ----------------------------------------------------------------------------- basics
    @property
    def ndim(self) -> int:
        return int(self.array.ndim)

    @property
    def is_2d(self) -> bool:
        return self.array.ndim == 2

    @property
    def size(self) -> tuple[int, ...]:
        """Size in index order (x, y[, z]), like ITK's GetSize()."""
        return tuple(int(s) for s in self.array.shape[::-1])

    def with_array(self, array: np.ndarray, **meta: Any) -> Image:
        """A new image on the same grid (same geometry) holding ``array`` (e.g. a label map)."""
        array = np.asarray(array)
        if array.shape != self.array.shape:
            raise InputError(f"Array shape {array.shape} does not match the image grid {self.array.shape}.")
        return Image(array, self.spacing, self.origin, self.direction.copy(), {**self.meta, **meta})

    def same_grid(self, other: Image, tol: float = 1e-4) -> bool:
        return (
            self.array.shape == other.array.shape
            and np.allclose(self.spacing, other.spacing, atol=tol)
            and np.allclose(self.origin, other.origin, atol=tol)
            and np.allclose(self.direction, other.direction, atol=tol)
        )

    # ------------------------------------------------------------------------- geometry
    @property
    def index_to_physical_matrix(self) -> np.ndarray:
        """(ndim+1) x (ndim+1) homogeneous matrix mapping index (i, j[, k]) to LPS mm."""
        nd = self.ndim
        m = np.eye(nd + 1)
        m[:nd, :nd] = self.direction @ np.diag(self.spacing)
        m[:nd, nd] = self.origin
        return m

    def index_to_physical(self, index: np.ndarray) -> np.ndarray:
        """Continuous indices (..., ndim) in (i, j[, k]) order -> LPS mm (..., ndim)."""
        idx = np.asarray(index, dtype=float)
        m = self.index_to_physical_matrix
        nd = self.ndim
        return idx @ m[:nd, :nd].T + m[:nd, nd]

    def physical_to_index(self, points: np.ndarray) -> np.ndarray:
        """LPS mm (..., ndim) -> continuous indices (..., ndim) in (i, j[, k]) order."""
        pts = np.asarray(points, dtype=float)
        nd = self.ndim
        m = self.index_to_physical_matrix
        inv = np.linalg.inv(m[:nd, :nd])
        return (pts - m[:nd, nd]) @ inv.T

    def index_to_ras_matrix(self) -> np.ndarray:
        """4x4 IJK -> RAS matrix (what Slicer's volume nodes hold). 2D images use k = 0."""
        m3 = self.as_3d().index_to_physical_matrix
        flip = np.diag([-1.0, -1.0, 1.0, 1.0])
        return flip @ m3

    # ----------------------------------------------------------------- 2D <-> 3D views
    def as_3d(self) -> Image:
        """A 3D view: a 2D image becomes a single-slice volume (restoring the geometry it
        was squeezed from, if any); a 3D image is returned as is."""
        if not self.is_2d:
            return self
        src = self.meta.get("from_3d")
        if src is not None:
            arr = np.expand_dims(self.array, axis=2 - src["axis"])
            return Image(arr, src["spacing"], src["origin"], np.asarray(src["direction"]),
                         {k: v for k, v in self.meta.items() if k != "from_3d"})
        direction = np.eye(3)
        direction[:2, :2] = self.direction
        return Image(self.array[None], (*self.spacing, 1.0), (*self.origin, 0.0), direction, dict(self.meta))

    def as_2d(self, task: str = "this task") -> Image:
        """A 2D view of a 2D image or of a volume with exactly one slice along some axis.

        Raises InputError for a real 3D volume (e.g. a CT given to an X-ray task).
        """
        if self.is_2d:
            return self
        singleton = [ax for ax, n in enumerate(self.size) if n == 1]
        if not singleton:
            raise InputError(
                f"{task} expects a 2D radiograph, but got a 3D volume of size {self.size} (x, y, z). "
                "Load a single X-ray image (PNG/JPG/DICOM or a one-slice volume)."
            )
        axis = singleton[-1]  # index axis (0=i, 1=j, 2=k) that is squeezed; prefer k
        keep = [a for a in range(3) if a != axis]
        arr = np.squeeze(self.array, axis=2 - axis)
        direction = self.direction[np.ix_(keep, keep)]
        if abs(np.linalg.det(direction)) < 1e-6:  # oblique plane: in-plane geometry in pixels
            direction = np.eye(2)
        meta = dict(self.meta)
        meta["from_3d"] = {"axis": axis, "spacing": self.spacing, "origin": self.origin,
                           "direction": self.direction.tolist()}
        return Image(arr, tuple(self.spacing[a] for a in keep), tuple(self.origin[a] for a in keep),
                     direction, meta)

    def pixels_to_lps(self, points: np.ndarray) -> np.ndarray:
        """Continuous pixel indices (..., 2) of a 2D image, (x, y) order -> 3D LPS mm (..., 3),
        through the volume geometry the image came from (or the z = 0 plane)."""
        if not self.is_2d:
            raise InputError("pixels_to_lps is for 2D images; use index_to_physical for volumes.")
        pts = np.asarray(points, dtype=float)
        axis = self.meta.get("from_3d", {}).get("axis", 2)
        return self.as_3d().index_to_physical(np.insert(pts, axis, 0.0, axis=-1))

    # --------------------------------------------------------------------- SimpleITK
    def to_sitk(self):
        """Convert to a SimpleITK image (copy)."""
        import SimpleITK as sitk

        arr = self.array
        if arr.dtype == bool:
            arr = arr.astype(np.uint8)
        img = sitk.GetImageFromArray(arr)
        img.SetSpacing(self.spacing)
        img.SetOrigin(self.origin)
        img.SetDirection(tuple(self.direction.ravel()))
        return img

    @classmethod
    def from_sitk(cls, img, meta: dict[str, Any] | None = None) -> Image:
        """Build from a scalar SimpleITK image (copy)."""
        import SimpleITK as sitk

        nd = img.GetDimension()
        return cls(
            sitk.GetArrayFromImage(img),
            img.GetSpacing(),
            img.GetOrigin(),
            np.asarray(img.GetDirection()).reshape(nd, nd),
            dict(meta or {}),
        )


def point_inside(image: Image, point_lps, margin_voxels: float = 0.0) -> bool:
    """Whether a physical point (LPS mm) lies inside the image's voxels (their outer faces),
    at least ``margin_voxels`` from the border."""
    img = image.as_3d()
    idx = img.physical_to_index(np.asarray(point_lps, float))
    return bool(np.all(idx >= -0.5 + margin_voxels) and np.all(idx <= np.array(img.size) - 0.5 - margin_voxels))
