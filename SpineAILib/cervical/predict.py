"""Inference: lateral radiograph -> C3-C7 localisation (probability map, region, polygon, axis)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from SpineAILib.cervical import networks as _networks  # noqa: F401  (registers the architectures)
from SpineAILib.cervical.data import to_canvas
from SpineAILib.device import resolve_device
from SpineAILib.io import Image, read_image
from SpineAILib.models import cached_model
from SpineAILib.preprocessing import check_image, map_from_canvas

MODEL_NAME = "cervical_fcn"
TASK = "Cervical spine localisation"


@dataclass
class CervicalResult:
    """Plain result of :func:`localize`; pixel coordinates (x, y) of the input radiograph."""

    probability: np.ndarray  # (rows, cols) float32, spine probability at the original size
    region: np.ndarray  # (rows, cols) bool: the largest predicted region
    polygon: np.ndarray  # (4, 2) oriented bounding box of the region (pixels), empty if none
    axis: np.ndarray  # (2,) unit vector along the spine (pointing down the image), zeros if none
    axis_angle_deg: float  # angle of the axis from the image vertical (positive = leaning right)
    regions_predicted: int  # connected regions before keeping the largest
    confidence: float  # mean probability inside the region
    warnings: list[str] = field(default_factory=list)
    model: str = MODEL_NAME

    @property
    def found(self) -> bool:
        return bool(self.region.any())

    def to_dict(self) -> dict:
        ys, xs = np.nonzero(self.region)
        return {"found": self.found, "area_px": int(self.region.sum()),
                "centroid_px": [float(xs.mean()), float(ys.mean())] if self.found else None,
                "bounding_polygon_px": self.polygon.tolist(), "axis_direction": self.axis.tolist(),
                "axis_angle_deg": self.axis_angle_deg, "regions_predicted": self.regions_predicted,
                "confidence": self.confidence, "warnings": list(self.warnings), "model": self.model,
                "image_size": [int(self.region.shape[1]), int(self.region.shape[0])]}

    @classmethod
    def from_dict(cls, data: dict, region: np.ndarray, probability: np.ndarray | None = None) -> CervicalResult:
        """Rebuild from :meth:`to_dict` output and the region mask (rows, cols); without the
        probability map, the region itself (0/1) stands for it."""
        region = np.asarray(region, bool)
        prob = region.astype(np.float32) if probability is None else np.asarray(probability, np.float32)
        return cls(prob, region, np.array(data["bounding_polygon_px"], float).reshape(-1, 2),
                   np.array(data["axis_direction"], float), float(data["axis_angle_deg"]),
                   int(data["regions_predicted"]), float(data["confidence"]), list(data["warnings"]),
                   data.get("model", MODEL_NAME))


def region_geometry(region: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(oriented bounding box (4, 2), unit axis (2,), axis angle from vertical in degrees) of a
    boolean region, from the principal axes of its pixel coordinates."""
    ys, xs = np.nonzero(region)
    if len(xs) < 3:
        return np.zeros((0, 2)), np.zeros(2), 0.0
    pts = np.stack([xs, ys], 1).astype(float)
    c = pts.mean(0)
    w, v = np.linalg.eigh(np.cov((pts - c).T))
    axis = v[:, np.argmax(w)]
    if axis[1] < 0:  # point down the image (superior to inferior)
        axis = -axis
    normal = np.array([-axis[1], axis[0]])
    a = (pts - c) @ axis
    b = (pts - c) @ normal
    corners = [c + axis * ai + normal * bi for ai, bi in ((a.min(), b.min()), (a.max(), b.min()),
                                                          (a.max(), b.max()), (a.min(), b.max()))]
    return np.array(corners), axis, float(np.degrees(np.arctan2(axis[0], axis[1])))


def _for_inference(net):
    """Fold batch norm into the convolutions and use channels-last memory (38 -> 30 ms per
    image for the FCN on a 2-core CPU; see docs/benchmarks)."""
    import torch
    from torch.fx.experimental.optimization import fuse

    try:
        net = fuse(net)
    except Exception:  # noqa: BLE001 - an architecture fx cannot trace runs unfused
        pass
    return net.to(memory_format=torch.channels_last)


def get_model(device="cpu", name: str = MODEL_NAME, models_dir=None):
    """Load (once per process) the verified localisation model, prepared for inference."""

    return cached_model(name, device, models_dir, prepare=_for_inference)


def localize(image: Image | str | os.PathLike, device: str = "auto", models_dir=None,
             threshold: float = 0.5) -> CervicalResult:
    """Localise the C3-C7 region in a lateral cervical radiograph.

    Returns the spine probability map and the largest predicted region at the input's size, its
    oriented bounding polygon and axis direction. When no region is found (e.g. an AP view, or
    no cervical spine in the image), ``found`` is False and ``warnings`` says so.
    """
    import torch

    if not isinstance(image, Image):
        image = read_image(image)
    img = check_image(image, TASK, ndim=2, min_size=16)
    dev = resolve_device(device)
    canvas, rec = to_canvas(img.array)
    net, card = get_model(dev, models_dir=models_dir)
    with torch.no_grad():
        x = torch.as_tensor(canvas)[None, None].to(dev).to(memory_format=torch.channels_last)
        prob100 = torch.softmax(net(x), 1)[0, 1].cpu().numpy()
    prob = np.clip(map_from_canvas(prob100, rec, "linear"), 0.0, 1.0).astype(np.float32)
    from scipy import ndimage

    labels, n = ndimage.label(prob > threshold)
    warnings = []
    if n == 0:
        region = np.zeros(prob.shape, bool)
        warnings.append("No cervical spine found: nothing in the image looks like the C3-C7 column of a lateral "
                        "radiograph (an AP view or another body part is not detectable by this model).")
    else:
        areas = np.bincount(labels.ravel())[1:]
        region = labels == (np.argmax(areas) + 1)
        if n > 1:
            warnings.append(f"{n} separate regions were predicted; the largest is kept.")
    polygon, axis, angle = region_geometry(region)
    conf = float(prob[region].mean()) if region.any() else float(prob.max())
    return CervicalResult(prob, region, polygon, axis, angle, int(n), conf, warnings, card.name)

