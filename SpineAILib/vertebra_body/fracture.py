"""Fracture assessment of every labelled vertebra of a CT: the voxel classifier's vertebra-level
fracture probability (Nicolaes et al.) and the Genant grade from the segmented body's heights.

``assess_fractures(image, centroids)`` takes centroids from vertebra labelling ({VerSe label:
LPS mm}); the ``fracture`` task of :mod:`SpineAILib.tasks` runs vertebra labelling first when
none are given.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from SpineAILib import anatomy
from SpineAILib.device import resolve_device
from SpineAILib.errors import InputError
from SpineAILib.io import Image, read_image
from SpineAILib.io.image import lps_to_ras, point_inside
from SpineAILib.models import cached_model
from SpineAILib.preprocessing import check_image, resample_to_canonical
from SpineAILib.preprocessing.intensity import scale_hu
from SpineAILib.progress import CancelToken, ProgressCallback, SubProgress, check_cancel
from SpineAILib.vertebra_body import networks as _networks  # noqa: F401  (registers the architectures)
from SpineAILib.vertebra_body.fracture_data import SPACING, aggregate_vertebra, patient_components, predict_dense
from SpineAILib.vertebra_body.genant import GenantResult
from SpineAILib.vertebra_body.predict import grade_along_column, segment

TASK = "Fracture assessment"
MODEL_NAME = "fracture_classifier"
FRACTURE_PROBABILITY_THRESHOLD = 0.5
COLORS = {"normal": (0.1, 0.8, 0.2), "mild": (1.0, 0.55, 0.0), "moderate": (1.0, 0.55, 0.0), "severe": (0.9, 0.1, 0.1),
          "fracture": (1.0, 0.3, 0.0)}
STATUSES = ("normal", "mild", "moderate", "severe", "fracture")


@dataclass
class VertebraFracture:
    label: int
    position_lps: np.ndarray
    probability: float  # voxel classifier, vertebra level (0..1)
    genant: GenantResult | None = None  # from the body heights
    heights: dict[str, float] | None = None
    note: str = ""

    @property
    def name(self) -> str:
        return anatomy.vertebra_name(self.label)

    @property
    def status(self) -> str:
        """One rule: the Genant grade where the body was graded (normal, mild, moderate, severe);
        otherwise the voxel classifier alone, which gives no grade: "fracture" (probability >=
        0.5) or "normal"."""
        if self.genant is not None:
            return self.genant.label
        return "fracture" if self.probability >= FRACTURE_PROBABILITY_THRESHOLD else "normal"

    def to_dict(self) -> dict:
        g = self.genant
        return {"label": self.label, "name": self.name,
                "position_ras_mm": [round(float(v), 3) for v in lps_to_ras(self.position_lps)],
                "fracture_probability": round(self.probability, 4),
                "genant_grade": None if g is None else g.grade, "genant": None if g is None else g.label,
                "deformity": None if g is None else g.deformity,
                "height_loss": None if g is None else round(g.height_loss, 4),
                "heights_mm": None if self.heights is None else {k: round(v, 2) for k, v in self.heights.items()},
                "status": self.status, "note": self.note}

    @classmethod
    def from_dict(cls, data: dict) -> VertebraFracture:
        """Rebuild from :meth:`to_dict` output (``status`` follows from the rest)."""
        g = None if data["genant_grade"] is None else GenantResult(int(data["genant_grade"]), data["genant"],
                                                                      data["deformity"], float(data["height_loss"]))
        return cls(int(data["label"]), lps_to_ras(np.asarray(data["position_ras_mm"], float)),
                   float(data["fracture_probability"]), g, data["heights_mm"], data["note"])


@dataclass
class FractureResult:
    vertebrae: list[VertebraFracture]
    patient_fractured: bool  # any confident fracture component (voxel classifier)
    components: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"patient_fractured": self.patient_fractured, "fracture_components": self.components,
                "vertebrae": [v.to_dict() for v in self.vertebrae], "warnings": list(self.warnings),
                "seconds": self.seconds}

    @classmethod
    def from_dict(cls, data: dict) -> FractureResult:
        """Rebuild from :meth:`to_dict` output."""
        return cls([VertebraFracture.from_dict(v) for v in data["vertebrae"]], bool(data["patient_fractured"]),
                   list(data["fracture_components"]), list(data["warnings"]), dict(data.get("seconds", {})))


def get_model(device="cpu", models_dir=None):
    return cached_model(MODEL_NAME, device, models_dir)


def column_box(reference: Image, centroids: dict[int, np.ndarray], margin_mm: float = 40.0):
    """Array slices (z, y, x) of the box around the centroids plus a margin."""
    ref = reference.as_3d()
    idx = np.array([ref.physical_to_index(np.asarray(p, float)) for p in centroids.values()])[:, ::-1]
    m = margin_mm / np.array(ref.spacing[::-1])
    lo = np.maximum(0, np.floor(idx.min(0) - m)).astype(int)
    hi = np.minimum(np.array(ref.array.shape), np.ceil(idx.max(0) + m).astype(int) + 1)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


def assess_fractures(image: Image | str | os.PathLike, centroids: dict[int, np.ndarray], device: str = "auto",
                     models_dir=None, genant: bool = True, progress: ProgressCallback | None = None,
                     cancel: CancelToken | None = None) -> FractureResult:
    """Fracture probability (voxel classifier) and, with ``genant``, the Genant grade from the
    segmented body's heights, for every vertebra in ``centroids`` ({VerSe label: LPS mm}).
    Progress runs from 0.4 to 1 (the share before it is the labelling's when centroids are
    found first)."""

    t0 = time.perf_counter()
    if not isinstance(image, Image):
        image = read_image(image)
    img = check_image(image, TASK, ndim=3, min_size=2)
    dev = resolve_device(device)
    warnings: list[str] = []
    seconds: dict[str, float] = {}
    centroids = {int(k): np.asarray(v, float) for k, v in centroids.items() if int(k) in anatomy.VERTEBRAE}
    outside = [lab for lab in anatomy.ORDER if lab in centroids and not point_inside(img, centroids[lab])]
    if outside:
        where = ", ".join(f"{anatomy.vertebra_name(lab)} (RAS {lps_to_ras(centroids[lab]).round(1).tolist()} mm)"
                          for lab in outside)
        if len(outside) == len(centroids):
            raise InputError(f"Every centroid lies outside the CT: {where}. Expected the centroids of this CT "
                             "(made on another scan, or in LPS where RAS was expected?).")
        warnings.append(f"Centroids outside the CT, not assessed: {where}.")
        centroids = {lab: c for lab, c in centroids.items() if lab not in outside}
    if not centroids:
        warnings.append("No vertebrae to assess (no centroids given or found).")
        return FractureResult([], False, [], warnings, seconds)
    net, card = get_model(dev, models_dir)
    t = time.perf_counter()
    canon, _ = resample_to_canonical(img, float(card.input.get("spacing_mm", SPACING)), "linear", default_value=-1000.0)
    vol = scale_hu(canon.array)
    probs = predict_dense(net, vol, dev, column_box(canon, centroids), progress=SubProgress(progress, 0.4, 0.75),
                          cancel=cancel)
    seconds["classifier"] = round(time.perf_counter() - t, 3)
    comps = patient_components(probs, canon.spacing)
    out = []
    for lab in [v for v in anatomy.ORDER if v in centroids]:
        out.append(VertebraFracture(lab, centroids[lab], aggregate_vertebra(probs, canon, centroids[lab])))
    if genant:
        t = time.perf_counter()
        confirmed = [False] * len(out)  # heights the CT confirms: segment() graded the body
        for k, v in enumerate(out):
            check_cancel(cancel)
            try:
                r = segment(img, v.position_lps, "LPS", centroids, device, models_dir)
                v.heights = r.heights
                v.note = " ".join(r.warnings)
                confirmed[k] = r.genant is not None
            except InputError as exc:
                v.note = f"body not segmented: {exc}"
            if progress:
                progress(0.75 + 0.25 * (k + 1) / len(out), "measuring vertebral bodies")
        # Graded again with the neighbours' posterior heights (crush), as in segment_many: only
        # confirmed bodies, with confirmed neighbours. A body segment() did not grade (a partial
        # segment, or a centroid off the body: its ends lack endplate edges) keeps no grade; a
        # wrong "severe" from a bad segment is worse than the classifier's verdict alone.
        grades = grade_along_column([v.heights for v in out], [v.position_lps for v in out], confirmed)
        for v, g in zip(out, grades, strict=True):
            v.genant = g
        ungraded = [v.name for v, ok in zip(out, confirmed, strict=True) if not ok]
        if ungraded:
            warnings.append(f"No Genant grade for {', '.join(ungraded)}: the body segment is missing, cut by the "
                            "field of view or not confirmed by endplate edges in the CT (see each vertebra's note); "
                            "their status is the voxel classifier's alone (fracture or normal, no grade).")
        seconds["genant"] = round(time.perf_counter() - t, 3)
    seconds["total"] = round(time.perf_counter() - t0, 3)
    return FractureResult(out, bool(comps), comps, warnings, seconds)
