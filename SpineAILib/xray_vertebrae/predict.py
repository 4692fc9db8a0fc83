"""Inference: radiograph -> named vertebrae (centre, endplate corners, confidence) and, in a
lateral view, the sagittal alignment.

Lateral views use this package's network (U-Net + residual corrector, C2..S1). AP views reuse
the Cobb task's landmark network (T1..L5 with four corners each): the AP labelling *is* those
landmarks, so this package composes that task rather than training a second AP model. With
``view="auto"`` the lateral network decides from its own evidence: it was trained to find
nothing on AP radiographs, so when it finds fewer than ``MIN_LATERAL_FOUND`` vertebrae the image
is tried as an AP view.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from SpineAILib.anatomy import AASCE_VERTEBRAE, AP_CORNERS, LATERAL_CORNERS, LATERAL_VERTEBRAE
from SpineAILib.device import autocast, resolve_device
from SpineAILib.errors import InputError
from SpineAILib.io import Image, read_image
from SpineAILib.models import cached_model
from SpineAILib.preprocessing import check_image
from SpineAILib.progress import CancelToken, ProgressCallback, check_cancel
from SpineAILib.xray_vertebrae import model as _model  # noqa: F401  (registers the architecture)
from SpineAILib.xray_vertebrae.alignment import ALIGNMENT_COLUMNS, Alignment, column_endplates, sagittal_alignment
from SpineAILib.xray_vertebrae.model import (
    LEVEL,
    N_DET,
    anatomical_corners,
    assign_labels,
    corner_channels,
    detections,
    facing_from_curvature,
    suppress_duplicates,
)
from SpineAILib.xray_vertebrae.preprocess import CANVAS, fit_matrix, prepare_source, sample_canvas

MODEL_NAME = "xray_vertebrae_lateral"
TASK = "X-ray vertebra labelling"
VIEWS = ("auto", "lateral", "ap")
# Every vertebra the decoding names is reported (it needs a detection score above 0.2 and
# agreeing evidence: SpineAILib.xray_vertebrae.model.assign_labels); this floor only drops
# names whose evidence disagrees by more than about two levels.
MIN_CONFIDENCE = 0.02
# "auto": at least this many vertebrae found by the lateral network make the view lateral; else
# the view is AP when the AP landmark model's mean vertebra score reaches AP_MIN_MEAN_SCORE (the
# Cobb task's low-confidence bar: noise scores 0.43 there).
MIN_LATERAL_FOUND = 4
AP_MIN_MEAN_SCORE = 0.45
# How detections are named (SpineAILib.xray_vertebrae.model.assign_labels). The paper's U-Net
# alone ("unet": the identity maps) named the most vertebrae right on the validation split, whole
# and cropped (docs/history/xray_vertebrae.md); "full" and "unet_rc" stay for the evaluation.
DECODING = "unet"
# Average the network's maps with those of the mirrored radiograph (see _merge_mirrored).
FLIP_TTA = True


@dataclass
class VertebraFinding:
    """One labelled vertebra: pixel (x, y) = (column, row) of the input image."""

    name: str
    centroid: tuple[float, float]
    corners: dict[str, tuple[float, float]]  # LATERAL_CORNERS or AP_CORNERS keys, those known
    confidence: float

    def to_dict(self) -> dict:
        return {"name": self.name, "centroid": [round(float(v), 2) for v in self.centroid],
                "corners": {k: [round(float(v), 2) for v in p] for k, p in self.corners.items()},
                "confidence": round(float(self.confidence), 4)}


@dataclass
class XrayVertebraeResult:
    """Plain result of :func:`label`."""

    view: str  # "lateral" or "ap"
    vertebrae: list[VertebraFinding]
    alignment: Alignment | None  # lateral views only
    warnings: list[str] = field(default_factory=list)
    image_size: tuple[int, int] = (0, 0)  # (width, height) pixels
    pixel_spacing: tuple[float, float] | None = None  # mm, when the file states it
    model: str = MODEL_NAME
    extra: dict = field(default_factory=dict)  # AP: the Cobb angles of the same landmarks

    def names(self) -> list[str]:
        return [v.name for v in self.vertebrae]

    def find(self, name: str) -> VertebraFinding | None:
        return next((v for v in self.vertebrae if v.name == name), None)

    def alignment_dict(self) -> dict:
        out = self.alignment.to_dict() if self.alignment is not None else {}
        return {**out, **self.extra}

    def to_dict(self) -> dict:
        return {"view": self.view, "vertebrae": [v.to_dict() for v in self.vertebrae],
                "alignment": self.alignment_dict(), "warnings": list(self.warnings),
                "image_size": list(self.image_size), "pixel_spacing_mm": self.pixel_spacing, "model": self.model}

    @classmethod
    def from_dict(cls, data: dict) -> XrayVertebraeResult:
        """Rebuild from :meth:`to_dict` output."""
        try:
            verts = [VertebraFinding(v["name"], tuple(v["centroid"]), {k: tuple(p) for k, p in v["corners"].items()},
                                     float(v["confidence"])) for v in data["vertebrae"]]
            view = str(data["view"])
            size = tuple(int(s) for s in data.get("image_size", (0, 0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"Not a SpineAI X-ray vertebrae result: missing or malformed field {exc}.") from None
        align = data.get("alignment") or {}
        alignment = Alignment.from_dict(align) if view == "lateral" and align else None
        extra = {k: v for k, v in align.items() if k.startswith("cobb_")}
        spacing = data.get("pixel_spacing_mm")
        return cls(view, verts, alignment, list(data.get("warnings", [])), size,
                   tuple(spacing) if spacing else None, data.get("model", MODEL_NAME), extra)


def corner_array(vertebrae: list[VertebraFinding]) -> np.ndarray:
    """(24, 4, 2) lateral corners (NaN where unknown) of findings named C2..S1."""
    out = np.full((len(LATERAL_VERTEBRAE), 4, 2), np.nan)
    for v in vertebrae:
        if v.name in LATERAL_VERTEBRAE:
            for k, p in v.corners.items():
                if k in LATERAL_CORNERS:
                    out[LATERAL_VERTEBRAE.index(v.name), LATERAL_CORNERS.index(k)] = p
    return out


def get_model(device="cpu", name: str = MODEL_NAME, models_dir: str | os.PathLike | None = None):
    return cached_model(name, device, models_dir)


# Corners each lateral vertebra has: C2 its lower endplate, S1 its upper plate.
_LATERAL_HAS = {"C2": (2, 3), "S1": (0, 1)}


def decode_maps(maps, prior, stride: int, matrix: np.ndarray, decoding: str = "full"):
    """One image's network maps (C, h, w) and the corrector's (or raw) centres (V, 2, fractions of
    the map) -> centres (V, 2), corners (V, 4, 2) in the pixels ``matrix`` maps the canvas to, and
    confidences (V,) (detection score x agreement of the naming evidence; 0 and NaN where not
    found)."""
    V = len(LATERAL_VERTEBRAE)
    h, w = maps.shape[-2:]
    pri = prior.cpu().numpy() * np.array([w, h]) - 0.5
    dets = detections(maps, V)
    if decoding == "full":
        dets = suppress_duplicates(dets, pri)
    spacing = float(np.median(np.linalg.norm(np.diff(pri, axis=0), axis=1)))
    labels = assign_labels(dets, pri, spacing, decoding)
    centres = np.full((V, 2), np.nan)
    corners = np.full((V, 4, 2), np.nan)
    conf = np.zeros(V)
    a, t = matrix[:2, :2], matrix[:2, 2]
    for d, v in zip(dets, labels, strict=True):
        if v >= 0:
            centres[v] = (d["centre"] * stride + (stride - 1) / 2) @ a.T + t
    # the way the patient faces: from the sagittal curves, else the network's facing map
    right = facing_from_curvature(centres, LATERAL_VERTEBRAE)
    if right is None:
        named = [d for d, v in zip(dets, labels, strict=True) if v >= 0]
        right = bool(np.mean([d["facing_right"] for d in named]) > 0.5) if named else True
        if np.linalg.det(a) < 0:  # a mirrored canvas
            right = not right
    for d, v in zip(dets, labels, strict=True):
        if v < 0:
            continue
        corners[v] = anatomical_corners((d["corners"] * stride + (stride - 1) / 2) @ a.T + t, right)
        # detection strength x agreement of the evidence that named it (level map, or the
        # identity map in the paper's decodings)
        agree = np.exp(-0.5 * (d["level"] - v) ** 2) if decoding == "full" else float(d["identity"][v])
        conf[v] = d["score"] * agree
    return centres, corners, conf, right


def _merge_mirrored(maps, raw, corrected):
    """Average the prediction of the canvas (batch item 0) with that of its mirror image (item 1)
    mapped back: the centre, level, identity and corner heatmaps (the mirror's left corners are
    the right ones) and the corrector's centres; the offsets stay the upright ones. Items after
    the first two are kept as they are (the canvas turned by 180 degrees)."""
    import torch

    V = len(LATERAL_VERTEBRAE)
    back = torch.flip(maps[1], dims=[-1])
    merged = maps[0].clone()
    keep = [0, LEVEL, *range(N_DET, N_DET + V + 1)]
    merged[keep] = (maps[0][keep] + back[keep]) / 2
    cc = corner_channels(V)
    swap = [cc.start + k for k in (1, 0, 3, 2)]
    merged[cc] = (maps[0][cc] + back[swap]) / 2
    mirror = torch.tensor([-1.0, 1.0])
    shift = torch.tensor([1.0, 0.0])
    raw_m = (raw[0] + raw[1] * mirror + shift) / 2
    cor_m = (corrected[0] + corrected[1] * mirror + shift) / 2
    return (torch.cat([merged[None], maps[2:]], 0), torch.cat([raw_m[None], raw[2:]], 0),
            torch.cat([cor_m[None], corrected[2:]], 0))


def predict_lateral_arrays(net, source: np.ndarray, device, stride: int, turned: bool = False):
    """One prepared source -> centres (24, 2), corners (24, 4, 2) in source pixels, confidences
    (24,), the two orientation scores and whether the patient faces right. With ``turned``, the
    scores are the mean of the 10 best detection scores upright and turned by 180 degrees (for
    :func:`orientation_warning`); else None."""
    import torch

    m = fit_matrix(source.shape, CANVAS)
    x = sample_canvas([torch.as_tensor(source)], [m], CANVAS)
    batch = [x, torch.flip(x, dims=[3])] if FLIP_TTA else [x]
    if turned:
        batch.append(torch.flip(x, dims=[2, 3]))
    with torch.no_grad(), autocast(device):
        maps, _raw, corrected = net(torch.cat(batch, 0).to(device))
    maps, _raw, corrected = maps.float(), _raw.float(), corrected.float()
    if FLIP_TTA:
        maps, _raw, corrected = _merge_mirrored(maps, _raw, corrected)
    prior = _raw if DECODING == "unet" else corrected
    centre, corners, conf, right = decode_maps(maps[0], prior[0].float(), stride, m, DECODING)
    scores = None
    if turned:
        top = torch.sigmoid(maps[:, 0]).flatten(1).topk(10, dim=1)[0].mean(1).cpu().numpy()
        scores = (float(top[0]), float(top[1]))
    return centre, corners, conf, scores, right


def orientation_warning(upright: float, turned: float) -> list[str]:
    if turned <= upright:
        return []
    return [f"The radiograph looks upside down: the vertebrae are found more clearly with the image turned by 180 "
            f"degrees (mean score {turned:.2f} against {upright:.2f}). Expected the head at the top; the labels "
            "below are named as if it were upright."]


def consistency_warnings(names: list[str], centres: np.ndarray) -> list[str]:
    """Reasons to doubt a lateral labelling: vertebrae out of order top to bottom, a gap in the
    sequence of names (missed vertebrae), or irregular spacing."""
    out = []
    if len(names) < 2:
        return out
    ys = centres[:, 1]
    if np.any(np.diff(ys) <= 0):
        out.append("Implausible spine: the labelled vertebrae are not in order from top to bottom.")
    idx = [LATERAL_VERTEBRAE.index(n) for n in names]
    missing = [LATERAL_VERTEBRAE[i] for a, b in zip(idx[:-1], idx[1:], strict=True) for i in range(a + 1, b)]
    if missing:
        out.append(f"Vertebrae {', '.join(missing)} were not found between {names[0]} and {names[-1]}: the labels may "
                   "be shifted.")
    return out


def _lateral(img: Image, device, models_dir) -> tuple[XrayVertebraeResult, float]:
    net, card = get_model(device, models_dir=models_dir)
    stride = int(card.input.get("output_stride", 2))
    source, scale = prepare_source(img.array)
    centre_s, corners_s, conf, (upright, turned), right = predict_lateral_arrays(net, source, device, stride,
                                                                                  turned=True)
    centre = (centre_s + 0.5) / scale - 0.5
    corners = (corners_s + 0.5) / scale - 0.5
    found = []
    for i, name in enumerate(LATERAL_VERTEBRAE):
        if conf[i] < MIN_CONFIDENCE:
            continue
        keys = _LATERAL_HAS.get(name, (0, 1, 2, 3))
        cdict = {LATERAL_CORNERS[k]: (float(corners[i, k, 0]), float(corners[i, k, 1])) for k in keys}
        # the centroid is the mean of the corners the vertebra has (as annotated)
        cen = np.mean([corners[i, k] for k in keys], 0) if name in _LATERAL_HAS else centre[i]
        found.append(VertebraFinding(name, (float(cen[0]), float(cen[1])), cdict, float(conf[i])))
    warnings = orientation_warning(upright, turned)
    if found:
        warnings += consistency_warnings([f.name for f in found], np.array([f.centroid for f in found]))
    result = XrayVertebraeResult("lateral", found, lateral_alignment(found, right) if found else None,
                                 warnings, (int(img.array.shape[1]), int(img.array.shape[0])), model=card.name)
    return result, upright


def lateral_alignment(found: list[VertebraFinding], facing_right: bool) -> Alignment:
    """The alignment of a lateral labelling: angles on endplates estimated from the column of
    vertebra centres (:func:`~SpineAILib.xray_vertebrae.alignment.column_endplates`; the
    predicted corners flatten the endplates towards the mean tilt), body and disc heights from
    the predicted corners."""
    out = sagittal_alignment(corner_array(found))
    centres = np.full((len(LATERAL_VERTEBRAE), 2), np.nan)
    for v in found:
        centres[LATERAL_VERTEBRAE.index(v.name)] = v.centroid
    col = sagittal_alignment(column_endplates(centres, facing_right))
    for k in ALIGNMENT_COLUMNS:
        setattr(out, k, getattr(col, k))
    out.endplates, out.method = col.endplates, "column"
    return out


def _ap(img: Image, device, models_dir) -> XrayVertebraeResult:
    from SpineAILib.cobb import estimate

    r = estimate(img, device=device, models_dir=models_dir)
    p = r.landmarks.reshape(len(AASCE_VERTEBRAE), 4, 2)
    found = [VertebraFinding(name, tuple(float(v) for v in p[i].mean(0)),
                             {AP_CORNERS[k]: (float(p[i, k, 0]), float(p[i, k, 1])) for k in range(4)},
                             float(r.vertebra_scores[i]))
             for i, name in enumerate(AASCE_VERTEBRAE)]
    extra = {f"cobb_{k}": round(float(v), 2) for k, v in zip(("main", "upper", "lower"), r.values, strict=True)}
    return XrayVertebraeResult("ap", found, None, list(r.warnings), r.image_size, r.pixel_spacing, r.model, extra)


def label(
    image: Image | str | os.PathLike,
    view: str = "auto",
    device: str = "auto",
    models_dir: str | os.PathLike | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> XrayVertebraeResult:
    """Name the vertebrae of a spine radiograph.

    Args:
        image: a 2D :class:`Image` (or single-slice volume), or a path to one.
        view: "lateral" (C2..L5 and the S1 plate, with the sagittal alignment), "ap" (T1..L5)
            or "auto" (decided from the lateral network's own evidence).
        device: "auto", "cpu", "cuda", "cuda:N" or "mps".
    Returns:
        :class:`XrayVertebraeResult`: per vertebra found its name, centroid and corners (input
        pixels) and confidence; warnings when the result should not be trusted.
    Raises:
        InputError: not a 2D image, empty/constant/NaN image, unreadable file, unknown view.
    """
    if view not in VIEWS:
        raise InputError(f"Unknown view '{view}'; expected one of {', '.join(VIEWS)}.")
    dev = resolve_device(device)
    if progress:
        progress(0.05, "reading the radiograph")
    if not isinstance(image, Image):
        image = read_image(image)
    img = check_image(image, TASK, ndim=2, min_size=32)
    spacing = None if img.meta.get("spacing_known") is False else (float(img.spacing[0]), float(img.spacing[1]))
    check_cancel(cancel)
    if progress:
        progress(0.3, "labelling vertebrae")
    if view == "ap":
        result = _ap(img, dev, models_dir)
    else:
        result, _ = _lateral(img, dev, models_dir)
        if view == "auto" and len(result.vertebrae) < MIN_LATERAL_FOUND:
            check_cancel(cancel)
            ap = _ap(img, dev, models_dir)
            # the AP landmark model's own bar for "vertebrae found" (its weaker warnings, e.g.
            # irregular spacing, stay with the AP result)
            if np.mean([v.confidence for v in ap.vertebrae]) >= AP_MIN_MEAN_SCORE:
                result = ap
            else:
                result.warnings.insert(0, "No spine found with confidence: neither a lateral view (only "
                                          f"{len(result.vertebrae)} vertebrae found) nor an AP view (T1-L5). "
                                          "Expected a spine radiograph; use --view to force one.")
    if result.view == "lateral":
        result.pixel_spacing = spacing
    check_cancel(cancel)
    if progress:
        progress(1.0, "done")
    return result
