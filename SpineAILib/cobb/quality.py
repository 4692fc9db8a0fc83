"""How far to trust one Cobb result: a calibrated confidence and cut-off flags.

Both are small models on per-image features of the landmark network's own outputs, fitted on the
training split by :mod:`SpineAILib.cobb.calibrate` and stored in the landmark model's card
(``calibration``), so they always match the weights they describe.

* **Confidence** = the estimated probability that the image's SMAPE (the AASCE error measure) is
  at most 15 %. SMAPE divides the angle error by the angles' sum, so the same error in degrees
  matters more on a straight spine; the error in degrees is estimated from how much the angles
  move between the direct and the mirrored prediction (``flip_angle_deg``) and under a small
  jitter of the landmarks (``jitter_angle_deg``: borderline S-curve or end-vertebra decisions
  move a lot). ``expected_smape`` = 100 * expected error / (2 * sum of the predicted angles).
* **Cut-off**: a spine with vertebrae outside the image still gets 17 detections (the network
  splits or invents vertebrae), with weaker and irregular peaks. Two logistic models (top cut,
  bottom cut) on peak scores and shape features, each with a threshold that flags 2.5 % of the
  complete training radiographs.

Features are dimensionless (heights/widths relative to the median vertebra, positions relative
to the image height) so they do not depend on the radiograph's pixel size.
"""

from __future__ import annotations

import math

import numpy as np

from SpineAILib.cobb.angles import cobb_angles

CUT_FEATURES = ("score_min", "score_mean", "score_top", "score_bot", "flip_lm", "width_height", "bottom_y",
                "gap_min", "height_ratio_bottom", "width_ratio", "score_18th")
JITTER_SIGMA = 0.03  # landmark jitter, in median vertebra heights
JITTER_SAMPLES = 24
SMAPE_LIMIT = 15.0


def _geometry(landmarks: np.ndarray):
    p = np.asarray(landmarks, float).reshape(17, 4, 2)
    centres = p.mean(1)
    heights = np.linalg.norm((p[:, 2] + p[:, 3]) / 2 - (p[:, 0] + p[:, 1]) / 2, axis=1)
    widths = np.linalg.norm((p[:, 1] + p[:, 3]) / 2 - (p[:, 0] + p[:, 2]) / 2, axis=1)
    return p, centres, heights, widths


def jitter_angle(landmarks: np.ndarray, image_height: float, sigma: float = JITTER_SIGMA,
                 samples: int = JITTER_SAMPLES, seed: int = 0) -> float:
    """Mean change (degrees, summed over the three angles) of the Cobb angles when every landmark
    moves by a Gaussian of ``sigma`` median vertebra heights. Deterministic (fixed seed)."""
    lm = np.asarray(landmarks, float)
    _, _, heights, _ = _geometry(lm)
    s = sigma * float(np.median(heights))
    base = np.array(cobb_angles(lm, image_height).values)
    rng = np.random.default_rng(seed)
    moved = [np.abs(np.array(cobb_angles(lm + rng.normal(0.0, s, lm.shape), image_height).values) - base).sum()
             for _ in range(samples)]
    return float(np.mean(moved))


def features(landmarks: np.ndarray, direct: np.ndarray, mirrored: np.ndarray, scores: np.ndarray,
             score_18th: float, image_height: float) -> dict[str, float]:
    """Per-image features. ``landmarks`` (68, 2): the averaged prediction, input pixels;
    ``direct`` / ``mirrored``: the direct and the mirrored canvas's prediction mapped back to
    input pixels; ``scores`` (17,): averaged peak scores, top to bottom; ``score_18th``: the
    18th-highest peak of the direct prediction (a vertebra candidate left out)."""
    _, centres, heights, widths = _geometry(landmarks)
    h = float(np.median(heights)) or 1.0
    gaps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    g = float(np.median(gaps)) or 1.0
    a_direct = np.array(cobb_angles(direct, image_height).values)
    a_mirror = np.array(cobb_angles(mirrored, image_height).values)
    s = np.asarray(scores, float)
    return {
        "score_mean": float(s.mean()), "score_min": float(s.min()), "score_top": float(s[0]),
        "score_bot": float(s[-1]), "score_18th": float(score_18th),
        "flip_lm": float(np.linalg.norm(np.asarray(direct) - np.asarray(mirrored), axis=1).mean() / h),
        "flip_angle_deg": float(np.abs(a_direct - a_mirror).sum()),
        "jitter_angle_deg": jitter_angle(landmarks, image_height),
        "angle_sum_deg": float(sum(cobb_angles(landmarks, image_height).values)),
        "width_height": float(np.median(widths) / h),
        "bottom_y": float(centres[-1, 1] / image_height), "top_y": float(centres[0, 1] / image_height),
        "gap_min": float(gaps.min() / g), "height_ratio_bottom": float(heights[-1] / h),
        "width_ratio": float(widths[-1] / (widths[0] or 1.0)),
    }


def expected_error_deg(f: dict[str, float], cal: dict) -> float:
    """Expected sum of the three angles' absolute errors (degrees)."""
    c = cal["error_model"]
    return float(c["intercept"] + c["flip_angle_deg"] * f["flip_angle_deg"]
                 + c["jitter_angle_deg"] * f["jitter_angle_deg"])


def expected_smape(f: dict[str, float], cal: dict) -> float:
    return 100.0 * expected_error_deg(f, cal) / (2.0 * max(f["angle_sum_deg"], 0.5))


def confidence(f: dict[str, float], cal: dict) -> float:
    """Estimated probability that SMAPE <= 15 % (0..1)."""
    c = cal["confidence_model"]
    z = c["intercept"] + c["slope"] * math.log(max(expected_smape(f, cal), 1e-3))
    return float(1.0 / (1.0 + math.exp(-z)))


def _logit(model: dict, f: dict[str, float]) -> float:
    x = np.array([f[k] for k in model["features"]], float)
    z = (x - np.array(model["mean"])) / np.array(model["std"])
    return float(model["intercept"] + z @ np.array(model["weights"]))


def cut_off_ends(f: dict[str, float], cal: dict) -> list[str]:
    """"top" and/or "bottom" where the spine looks cut by the image border."""
    return [end for end in ("top", "bottom") if _logit(cal[f"cut_{end}"], f) > cal[f"cut_{end}"]["threshold"]]


def cut_off_warning(ends: list[str], in_view: int | None = None) -> list[str]:
    """The warning for a spine cut off at ``ends``; ``in_view``: the estimated number of T1-L5
    vertebrae in the image (``RawPrediction.vertebrae_in_view`` of :mod:`SpineAILib.cobb.predict`)."""
    if not ends:
        return []
    where = " and ".join(ends)
    seen = f" About {in_view} of the 17 vertebrae T1-L5 are in view." if in_view is not None and in_view < 17 else ""
    return [f"The spine may be cut off at the {where} of the image: the vertebra detections look like those of "
            f"radiographs with vertebrae outside the image.{seen} The angles assume T1 to L5 are all visible, and "
            "the 17 landmark sets are named T1 to L5 regardless; check the end vertebrae."]


def fit_logistic(x: np.ndarray, y: np.ndarray, names: tuple[str, ...], l2: float = 1e-3) -> dict:
    """Standardised L2-regularised logistic regression (scipy L-BFGS); returns the model dict."""
    from scipy.optimize import minimize

    mean, std = x.mean(0), x.std(0) + 1e-9
    z = (x - mean) / std

    def nll(w):
        t = z @ w[1:] + w[0]
        return float(np.mean(np.logaddexp(0.0, t) - y * t) + l2 * np.sum(w[1:] ** 2))

    w = minimize(nll, np.zeros(x.shape[1] + 1), method="L-BFGS-B").x
    return {"features": list(names), "mean": mean.tolist(), "std": std.tolist(), "intercept": float(w[0]),
            "weights": w[1:].tolist()}
