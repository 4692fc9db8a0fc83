"""Inference: radiograph -> 68 landmarks -> the three Cobb angles, with confidence checks."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from SpineAILib import anatomy
from SpineAILib.cobb import model as _model  # noqa: F401  (registers the architecture)
from SpineAILib.cobb import quality as _quality
from SpineAILib.cobb.angles import CobbAngles, cobb_angles
from SpineAILib.cobb.model import decode
from SpineAILib.cobb.preprocess import to_canvas
from SpineAILib.device import autocast, resolve_device
from SpineAILib.errors import InputError
from SpineAILib.inference import predict_batches
from SpineAILib.io import Image, read_image
from SpineAILib.models import cached_model
from SpineAILib.preprocessing import check_image
from SpineAILib.progress import CancelToken, ProgressCallback, check_cancel

MODEL_NAME = "cobb_landmarks"
TASK = "Cobb angle estimation"
# Below these peak scores the detections are not trusted. The mean: just above the lowest mean
# score of the 376 AP radiographs of the training split (0.49; the next is 0.51), so it flags 1
# of them and none of the 78 validation ones (lowest 0.56), while the lateral radiographs score
# 0.37-0.51 and noise 0.43. The single vertebra: under the validation split's lowest (0.31).
MIN_MEAN_SCORE = 0.5
MIN_VERTEBRA_SCORE = 0.2
# The confidence is calibrated on complete AP radiographs; detections this weak come from other
# views (24 of the 26 real lateral radiographs here, 1 of the 454 AP ones), cut-off spines or
# noise, where that calibration does not hold, so such a result's confidence is at most this.
WEAK_DETECTION_CONFIDENCE = 0.2
MAX_SIDEWAYS_JUMP = 0.6
# A vertebra counts as in view when its heatmap peak reaches this (chosen on 126 training
# radiographs, complete and cut by 15 % at either end: the count is unbiased there and within one
# of the true count in 91-95 %).
IN_VIEW_SCORE = 0.4
# Average with the mirrored image's prediction (chosen on the validation split, see README).
FLIP_TTA = True


@dataclass
class CobbResult:
    """Plain result of :func:`estimate`. Pixel coordinates are (x, y) = (column, row) of the
    input radiograph; angles in degrees."""

    landmarks: np.ndarray  # (68, 2)
    angles: CobbAngles
    vertebra_scores: np.ndarray  # (17,) heatmap peak per vertebra, 0..1
    confidence: float
    warnings: list[str] = field(default_factory=list)
    image_size: tuple[int, int] = (0, 0)  # (width, height) pixels
    pixel_spacing: tuple[float, float] | None = None  # mm, when the file states it
    model: str = MODEL_NAME
    # the calibrated quality estimate: {"expected_smape", "cut_off": ["top"/"bottom"], "detection_score"}
    quality: dict | None = None

    @property
    def low_confidence(self) -> bool:
        return bool(self.warnings)

    @property
    def values(self) -> tuple[float, float, float]:
        """(main, upper, lower) degrees, the column order of the AASCE angles.csv."""
        return self.angles.values

    def landmark_dict(self) -> dict[str, list[float]]:
        names = [f"{v}-{c}" for v in anatomy.AASCE_VERTEBRAE for c in anatomy.CORNERS]
        return {n: [float(x), float(y)] for n, (x, y) in zip(names, self.landmarks, strict=True)}

    def to_dict(self) -> dict:
        return {"angles_deg": dict(zip(("main", "upper", "lower"), self.values, strict=True)),
                "curves": self.angles.to_dict(), "confidence": self.confidence, "warnings": list(self.warnings),
                "image_size": list(self.image_size), "pixel_spacing_mm": self.pixel_spacing, "model": self.model,
                "landmarks_px": self.landmark_dict(),
                "vertebra_scores": {v: float(s) for v, s in zip(anatomy.AASCE_VERTEBRAE, self.vertebra_scores,
                                                                strict=True)},
                "quality": self.quality}

    @classmethod
    def from_dict(cls, data: dict) -> CobbResult:
        """Rebuild from :meth:`to_dict` output (e.g. the CLI's landmark JSON written by a
        background process). Angles are recomputed from the landmarks by the same rule."""
        names = [f"{v}-{c}" for v in anatomy.AASCE_VERTEBRAE for c in anatomy.CORNERS]
        try:
            landmarks = np.array([data["landmarks_px"][n] for n in names], float)
            width, height = data["image_size"]
            scores = np.array([data["vertebra_scores"][v] for v in anatomy.AASCE_VERTEBRAE], float)
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"Not a SpineAI Cobb result: missing or malformed field {exc}.") from None
        spacing = data.get("pixel_spacing_mm")
        return cls(landmarks, cobb_angles(landmarks, float(height)), scores, float(data.get("confidence", 0.0)),
                   list(data.get("warnings", [])), (int(width), int(height)),
                   tuple(spacing) if spacing else None, data.get("model", MODEL_NAME), data.get("quality"))


def get_model(device="cpu", name: str = MODEL_NAME, models_dir: str | os.PathLike | None = None):
    """Load (once per process) the verified landmark model."""

    return cached_model(name, device, models_dir)


def weak_detections(scores: np.ndarray) -> bool:
    """True when the peak scores are too weak to trust (:data:`MIN_MEAN_SCORE`,
    :data:`MIN_VERTEBRA_SCORE`)."""
    return bool(scores.mean() < MIN_MEAN_SCORE or scores.min() < MIN_VERTEBRA_SCORE)


def plausibility_warnings(landmarks: np.ndarray, scores: np.ndarray) -> list[str]:
    """Reasons not to trust a prediction: weak detections or an implausible spine shape."""
    out = []
    if weak_detections(scores):
        out.append(f"Low confidence: vertebra detection scores are weak (mean {scores.mean():.2f}, "
                   f"min {scores.min():.2f}). Is this an AP spine radiograph showing T1 to L5? A lateral or other "
                   "non-AP view, or a spine hidden by noise, gives such scores.")
    p = landmarks.reshape(17, 4, 2)
    centres = p.mean(1)
    gaps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    med = float(np.median(gaps))
    if med <= 0 or gaps.max() > 2.2 * med or gaps.min() < 0.4 * med:
        out.append("Implausible spine: the detected vertebrae are irregularly spaced (missed or doubled vertebra).")
    widths = np.linalg.norm(((p[:, 1] + p[:, 3]) - (p[:, 0] + p[:, 2])) / 2, axis=1)
    if np.any(widths < 0.3 * np.median(widths)):
        out.append("Implausible spine: some detected vertebrae are far narrower than the others.")
    # Sideways jump of a vertebra from the line through its neighbours, in vertebra widths: at
    # most 0.34 on the validation predictions and 0.39 in the annotations, so 0.6 means a
    # detection off the column (e.g. on a rib).
    jump = np.abs(centres[1:-1, 0] - (centres[:-2, 0] + centres[2:, 0]) / 2) / max(float(np.median(widths)), 1e-6)
    if jump.max() > MAX_SIDEWAYS_JUMP:
        out.append(f"Implausible spine: a detected vertebra lies off the column (sideways jump of {jump.max():.1f} "
                   "vertebra widths); a vertebra may have been missed or found on another structure.")
    return out


def _prepare(image: Image | str | os.PathLike) -> tuple[Image, np.ndarray, object]:
    if not isinstance(image, Image):
        image = read_image(image)
    img = check_image(image, TASK, ndim=2, min_size=32)
    canvas, record = to_canvas(img.array)
    return img, canvas, record


def orientation_warning(upright: float, turned: float) -> list[str]:
    """A warning when the vertebrae are found more clearly in the image turned by 180 degrees
    (mean peak score ``turned``) than as given (``upright``, both without flip averaging): on every
    radiograph of the validation split the turned score is lower (by 0.02-0.23), on each of them
    turned upside down it is higher."""
    if turned <= upright:
        return []
    return [f"The radiograph looks upside down: the vertebrae are found more clearly with the image turned by 180 "
            f"degrees (mean score {turned:.2f} against {upright:.2f}). Expected an AP view with the head at the top; "
            "the levels and curves are named as if it were upright."]


@dataclass
class RawPrediction:
    """The network's outputs for one canvas (canvas pixels): the flip-averaged landmarks and
    scores, the direct and the mirrored prediction (mapped back), the 18th-highest direct peak,
    and the mean direct peak score upright and turned by 180 degrees."""

    landmarks: np.ndarray  # (68, 2)
    scores: np.ndarray  # (17,)
    direct: np.ndarray  # (68, 2)
    mirrored: np.ndarray  # (68, 2)
    score_18th: float
    upright: float
    turned: float
    # Estimated number of the 17 vertebrae T1-L5 in the image: the direct prediction's peaks
    # scoring IN_VIEW_SCORE or more, at most 17 (more are C7 or the sacrum). On the validation
    # split: exact on 72 % of complete radiographs and on 50-54 % of those cut by 15 % at an end,
    # within one on 86-96 %.
    vertebrae_in_view: int = 17


def quality_features(raw: RawPrediction, record, image_height: float) -> dict[str, float]:
    """:func:`SpineAILib.cobb.quality.features` of one prediction (input pixels)."""
    return _quality.features(record.to_original(raw.landmarks), record.to_original(raw.direct),
                             record.to_original(raw.mirrored), raw.scores, raw.score_18th, image_height)


def _finish(img: Image, raw: RawPrediction, record, card) -> CobbResult:
    landmarks = record.to_original(raw.landmarks)
    angles = cobb_angles(landmarks, float(img.array.shape[0]))
    warnings = orientation_warning(raw.upright, raw.turned) + plausibility_warnings(landmarks, raw.scores)
    conf = float(raw.scores.mean())
    quality = None
    cal = getattr(card, "calibration", None) or {}
    if "confidence_model" in cal:  # cards without a calibration keep the mean peak score
        feats = quality_features(raw, record, float(img.array.shape[0]))
        ends = _quality.cut_off_ends(feats, cal)
        warnings += _quality.cut_off_warning(ends, raw.vertebrae_in_view)
        conf = _quality.confidence(feats, cal)
        quality = {"expected_smape": round(_quality.expected_smape(feats, cal), 2), "cut_off": ends,
                   "detection_score": round(float(raw.scores.mean()), 4),
                   "vertebrae_in_view": raw.vertebrae_in_view}
    if weak_detections(raw.scores):
        conf = min(conf, WEAK_DETECTION_CONFIDENCE)
    spacing = None if img.meta.get("spacing_known") is False else (float(img.spacing[0]), float(img.spacing[1]))
    return CobbResult(landmarks, angles, raw.scores, conf, warnings,
                      (int(img.array.shape[1]), int(img.array.shape[0])), spacing, card.name, quality)


def predict_landmarks(net, x, flip_tta: bool = True) -> list[RawPrediction]:
    """(N, 1, H, W) canvases -> one :class:`RawPrediction` per canvas.

    With ``flip_tta`` the mirrored canvas is predicted too, mapped back (x -> W - 1 - x, left and
    right corners swapped) and averaged with the direct prediction, vertebra by vertebra (both
    are ordered top to bottom); without it the mirrored fields repeat the direct prediction. The
    canvas turned by 180 degrees gives the orientation check (:func:`orientation_warning`)."""
    import torch

    with torch.no_grad():
        out = net(x).float()
        lm, scores = decode(out)
        extra = decode(out, 18)[1][:, 17]
        in_view = (decode(out, 21)[1] >= IN_VIEW_SCORE).sum(1).clamp(max=17)
        lm_f, scores_f = lm, scores
        if flip_tta:
            lm_f, scores_f = decode(net(torch.flip(x, dims=[3])).float())
            w = x.shape[-1]
            lm_f = lm_f.clone()
            lm_f[..., 0] = (w - 1) - lm_f[..., 0]
            lm_f = lm_f.view(lm_f.shape[0], 17, 4, 2)[:, :, [1, 0, 3, 2]].reshape(lm.shape)
        turned = decode(net(torch.flip(x, dims=[2, 3])).float())[1].mean(1)
    avg, avg_s = (lm + lm_f) / 2, (scores + scores_f) / 2
    return [RawPrediction(avg[i].cpu().numpy(), avg_s[i].cpu().numpy(), lm[i].cpu().numpy(), lm_f[i].cpu().numpy(),
                          float(extra[i]), float(scores[i].mean()), float(turned[i]), int(in_view[i]))
            for i in range(x.shape[0])]


def _forward(canvases: list[np.ndarray], device, models_dir) -> tuple[list[RawPrediction], object]:
    """One RawPrediction per canvas, and the model card."""
    import torch

    net, card = get_model(device, models_dir=models_dir)
    x = torch.as_tensor(np.stack(canvases))[:, None].to(device)
    with autocast(device):
        raws = predict_landmarks(net, x, FLIP_TTA)
    return raws, card


def estimate(
    image: Image | str | os.PathLike,
    device: str = "auto",
    models_dir: str | os.PathLike | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> CobbResult:
    """Cobb angles of an AP spine radiograph.

    Args:
        image: a 2D :class:`Image` (or single-slice volume), or a path to one.
        device: "auto", "cpu", "cuda", "cuda:N" or "mps".
    Returns:
        :class:`CobbResult` with 68 landmarks (input pixels), the AASCE angles and their curves,
        per-vertebra scores and warnings when the result should not be trusted.
    Raises:
        InputError: not a 2D image, empty/constant/NaN image, unreadable file.
    """

    dev = resolve_device(device)
    if progress:
        progress(0.05, "preparing the radiograph")
    img, canvas, record = _prepare(image)
    check_cancel(cancel)
    if progress:
        progress(0.3, "detecting vertebrae")
    raws, card = _forward([canvas], dev, models_dir)
    check_cancel(cancel)
    result = _finish(img, raws[0], record, card)
    if progress:
        progress(1.0, "done")
    return result


def estimate_batch(
    images: list,
    device: str = "auto",
    batch_size: int = 8,
    models_dir: str | os.PathLike | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> list[CobbResult | InputError]:
    """:func:`estimate` for many images with batched network calls (fast on a GPU).

    Returns one entry per input, in order: a CobbResult, or the InputError that the input
    raised (so one unreadable file does not stop a batch).
    """

    dev = resolve_device(device)

    def run(batch: list) -> list:
        prepared, out = [], [None] * len(batch)
        for k, item in enumerate(batch):
            try:
                prepared.append((k, *_prepare(item)))
            except InputError as exc:
                out[k] = exc
        if prepared:
            raws, card = _forward([p[2] for p in prepared], dev, models_dir)
            for n, (k, img, _, record) in enumerate(prepared):
                out[k] = _finish(img, raws[n], record, card)
        return out

    return predict_batches(images, run, batch_size, progress, cancel)


