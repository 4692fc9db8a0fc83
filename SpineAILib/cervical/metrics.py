"""Localisation metrics (the paper's Table 1): pixel accuracy, Dice, sensitivity, specificity,
plus the number of predicted connected regions."""

from __future__ import annotations

import numpy as np


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
        "dice": 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn),
        "sensitivity": 1.0 if tp + fn == 0 else tp / (tp + fn),
        "specificity": 1.0 if tn + fp == 0 else tn / (tn + fp),
    }


def n_regions(pred: np.ndarray) -> int:
    from scipy import ndimage

    return int(ndimage.label(np.asarray(pred, bool))[1])


def summarize(rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """{metric: {"mean": m, "std": s}} over images."""
    keys = rows[0].keys() if rows else []
    return {k: {"mean": float(np.mean([r[k] for r in rows])), "std": float(np.std([r[k] for r in rows]))}
            for k in keys}
