"""Overlap metrics of Klein et al.: Dice (DSC) and Concurrency = (precision + recall) / 2."""

from __future__ import annotations

import numpy as np


def dsc(pred: np.ndarray, ref: np.ndarray) -> float:
    """2 |P n R| / (|P| + |R|); 1.0 when both are empty."""
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
