"""Resampling to a target spacing, recording what was done so outputs map back exactly."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from SpineAILib.errors import InputError
from SpineAILib.io.image import Image

_INTERPOLATORS = ("nearest", "linear", "bspline")


def _sitk_interp(name: str):
    import SimpleITK as sitk

    table = {"nearest": sitk.sitkNearestNeighbor, "linear": sitk.sitkLinear, "bspline": sitk.sitkBSpline}
    if name not in table:
        raise InputError(f"Unknown interpolator '{name}'; expected one of {', '.join(_INTERPOLATORS)}.")
    return table[name]


@dataclass(frozen=True)
class ResampleRecord:
    """What :func:`resample_to_spacing` did: the original grid, so results go back onto it.

    The resampled grid keeps the original origin (centre of voxel 0) and direction, so a
    physical point has the same coordinates in both; only the voxel grid differs.
    """

    original_size: tuple[int, ...]
    original_spacing: tuple[float, ...]
    original_origin: tuple[float, ...]
    original_direction: tuple[float, ...]
    new_spacing: tuple[float, ...]
    new_size: tuple[int, ...]

    def to_dict(self) -> dict:
        return asdict(self)

    def restore(self, image: Image, interpolator: str = "nearest", default_value: float = 0.0) -> Image:
        """Resample ``image`` (on the resampled grid, e.g. a predicted label map) back onto the
        original grid. Use "nearest" for label maps and "linear" for probabilities."""
        import SimpleITK as sitk

        ref = sitk.Image([int(s) for s in self.original_size], sitk.sitkUInt8)
        ref.SetSpacing(self.original_spacing)
        ref.SetOrigin(self.original_origin)
        ref.SetDirection(self.original_direction)
        out = sitk.Resample(image.to_sitk(), ref, sitk.Transform(), _sitk_interp(interpolator),
                            float(default_value), image.to_sitk().GetPixelID())
        restored = Image.from_sitk(out, dict(image.meta))
        # A new list: the input's history must not change (meta dicts are shallow copies).
        restored.meta["history"] = [*image.meta.get("history", []), {"op": "restore", "from_spacing": self.new_spacing}]
        return restored


def resample_to_spacing(
    image: Image,
    spacing: tuple[float, ...] | float,
    interpolator: str = "linear",
    default_value: float | None = None,
) -> tuple[Image, ResampleRecord]:
    """Resample to ``spacing`` (mm, x/y[/z] order; a float means isotropic).

    The field of view is kept: new size = round(old extent / new spacing), at least 1. The
    default value outside the image is the image minimum (air in CT) unless given.
    Returns the resampled image and the record whose ``restore`` maps results back.
    """
    import SimpleITK as sitk

    nd = image.ndim
    new_spacing = (float(spacing),) * nd if np.isscalar(spacing) else tuple(float(s) for s in spacing)
    if len(new_spacing) != nd or not all(s > 0 for s in new_spacing):
        raise InputError(f"Target spacing {new_spacing} must hold {nd} positive values (mm).")
    old_size = np.array(image.size)
    new_size = np.maximum(1, np.round(old_size * np.array(image.spacing) / np.array(new_spacing))).astype(int)
    src = image.to_sitk()
    if default_value is None:
        default_value = float(np.min(image.array))
    out = sitk.Resample(
        src,
        [int(s) for s in new_size],
        sitk.Transform(),
        _sitk_interp(interpolator),
        image.origin,
        new_spacing,
        tuple(image.direction.ravel()),
        float(default_value),
        src.GetPixelID(),
    )
    record = ResampleRecord(
        original_size=tuple(int(s) for s in old_size),
        original_spacing=tuple(image.spacing),
        original_origin=tuple(image.origin),
        original_direction=tuple(float(d) for d in image.direction.ravel()),
        new_spacing=new_spacing,
        new_size=tuple(int(s) for s in new_size),
    )
    result = Image.from_sitk(out, dict(image.meta))
    result.meta["history"] = [*image.meta.get("history", []), {"op": "resample", **record.to_dict()}]
    return result, record


def resample_to_canonical(image: Image, spacing: float, interpolator: str = "linear",
                          default_value: float | None = None) -> tuple[Image, ResampleRecord]:
    """Resample a 3D image onto an axis-aligned LPS grid (identity direction) of isotropic
    ``spacing`` mm that covers the image's whole field of view.

    The array axes of the result are then anatomical: (z, y, x) = (inferior->superior,
    anterior->posterior, right->left), whatever the input's direction (axial, sagittal, oblique
    acquisitions alike), so sagittal slices are ``array[:, :, x]``. ``record.restore`` maps
    results back onto the original grid.
    """
    import SimpleITK as sitk

    img = image.as_3d()
    if not spacing > 0:
        raise InputError(f"Target spacing {spacing} must be positive (mm).")
    size = np.array(img.size)
    corners = np.array([[i, j, k] for i in (-0.5, size[0] - 0.5) for j in (-0.5, size[1] - 0.5)
                        for k in (-0.5, size[2] - 0.5)])
    phys = img.index_to_physical(corners)
    lo, hi = phys.min(0), phys.max(0)
    new_size = np.maximum(1, np.round((hi - lo) / spacing)).astype(int)
    origin = lo + spacing / 2.0
    if default_value is None:
        default_value = float(np.min(img.array))
    src = img.to_sitk()
    out = sitk.Resample(src, [int(s) for s in new_size], sitk.Transform(), _sitk_interp(interpolator),
                        tuple(float(v) for v in origin), (float(spacing),) * 3, tuple(np.eye(3).ravel()),
                        float(default_value), src.GetPixelID())
    record = ResampleRecord(
        original_size=tuple(int(s) for s in size), original_spacing=tuple(img.spacing),
        original_origin=tuple(img.origin), original_direction=tuple(float(d) for d in img.direction.ravel()),
        new_spacing=(float(spacing),) * 3, new_size=tuple(int(s) for s in new_size))
    result = Image.from_sitk(out, dict(img.meta))
    result.meta["history"] = [*img.meta.get("history", []), {"op": "resample_canonical", **record.to_dict()}]
    return result, record
