"""Metrics shared by the tasks' evaluations and the demo (plain numpy, no torch).

* :func:`dice` (one Dice for every task), :func:`concurrency` (Klein et al.),
* :func:`binary_metrics` (pixel accuracy, Dice, sensitivity, specificity: Al Arif et al.'s
  Table 1), :func:`n_regions`, and :func:`summarize` (mean and standard deviation over images).
"""

from __future__ import annotations

import numpy as np


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """2 |P n R| / (|P| + |R|) of two boolean maps; 1.0 when both are empty."""
    p, r = np.asarray(pred, bool), np.asarray(ref, bool)
    s = int(p.sum()) + int(r.sum())
    return 1.0 if s == 0 else float(2 * np.logical_and(p, r).sum() / s)


def concurrency(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean of precision |P n R| / |P| and recall |P n R| / |R| (0 for an empty side)."""
    p, r = np.asarray(pred, bool), np.asarray(ref, bool)
    inter = float(np.logical_and(p, r).sum())
    precision = inter / p.sum() if p.any() else 0.0
    recall = inter / r.sum() if r.any() else 0.0
    return 0.5 * (precision + recall)


def binary_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Pixel accuracy, Dice, sensitivity and specificity of boolean maps of the same shape.
    Conventions for empty sets: Dice 1 when both are empty; sensitivity 1 without positives;
    specificity 1 without negatives."""
    p = np.asarray(pred, bool)
    t = np.asarray(truth, bool)
    if p.shape != t.shape:
        raise ValueError(f"prediction {p.shape} and truth {t.shape} differ in shape")
    tp = float(np.logical_and(p, t).sum())
    tn = float(np.logical_and(~p, ~t).sum())
    fp = float(np.logical_and(p, ~t).sum())
    fn = float(np.logical_and(~p, t).sum())
    return {
        "accuracy": (tp + tn) / p.size,
        "dice": dice(p, t),
        "sensitivity": 1.0 if tp + fn == 0 else tp / (tp + fn),
        "specificity": 1.0 if tn + fp == 0 else tn / (tn + fp),
    }


def n_regions(pred: np.ndarray) -> int:
    """Number of connected regions of a boolean map."""
    from scipy import ndimage

    return int(ndimage.label(np.asarray(pred, bool))[1])


def summarize(rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """{metric: {"mean": m, "std": s}} over rows (one per image)."""
    keys = rows[0].keys() if rows else []
    return {k: {"mean": float(np.mean([r[k] for r in rows])), "std": float(np.std([r[k] for r in rows]))}
            for k in keys}
