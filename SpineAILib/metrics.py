"""Metrics shared by the tasks' evaluations and the demo (plain numpy, no torch).

* :func:`dice` (one Dice for every task), :func:`concurrency` (Klein et al.),
* :func:`binary_metrics` (pixel accuracy, Dice, sensitivity, specificity: Al Arif et al.'s
  Table 1), :func:`n_regions`, and :func:`summarize` (mean and standard deviation over images);
* :func:`roc_auc`, :func:`roc_points`, :func:`spearman`;
* agreement of measurements with a reference (:func:`agreement`: MAE, ICC(2,1), Bland-Altman
  bias and limits, share within given tolerances).
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


def roc_auc(scores, labels) -> float:
    """Area under the ROC curve by the rank statistic (ties count half); nan without both classes."""
    s = np.asarray(scores, float)
    y = np.asarray(labels, bool)
    pos, neg = s[y], s[~y]
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def roc_points(scores, labels) -> list[tuple[float, float, float]]:
    """(threshold, false positive rate, true positive rate) at every distinct score."""
    s = np.asarray(scores, float)
    y = np.asarray(labels, bool)
    out = []
    for t in sorted(set(s.tolist()), reverse=True):
        pred = s >= t
        tpr = float((pred & y).sum() / max(y.sum(), 1))
        fpr = float((pred & ~y).sum() / max((~y).sum(), 1))
        out.append((float(t), fpr, tpr))
    return out


def spearman(a, b) -> float:
    """Spearman rank correlation (average ranks for ties); nan for fewer than 2 values or a
    constant side."""
    from scipy import stats

    x, y = np.asarray(a, float), np.asarray(b, float)
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.spearmanr(x, y).statistic)


def icc_2_1(pred, ref) -> float:
    """Intraclass correlation ICC(2,1) of two raters (two-way random effects, absolute
    agreement, single measurement; Shrout & Fleiss), from the two-way ANOVA of n subjects x 2."""
    x = np.stack([np.asarray(pred, float), np.asarray(ref, float)], axis=1)
    n, k = x.shape
    if n < 2:
        return float("nan")
    grand = x.mean()
    ms_rows = k * ((x.mean(axis=1) - grand) ** 2).sum() / (n - 1)
    ms_cols = n * ((x.mean(axis=0) - grand) ** 2).sum() / (k - 1)
    sse = ((x - x.mean(axis=1, keepdims=True) - x.mean(axis=0, keepdims=True) + grand) ** 2).sum()
    ms_err = sse / ((n - 1) * (k - 1))
    denom = ms_rows + (k - 1) * ms_err + k * (ms_cols - ms_err) / n
    return float((ms_rows - ms_err) / denom) if denom > 0 else float("nan")


def agreement(pred, ref, within: tuple[float, ...] = (5.0, 10.0)) -> dict[str, float]:
    """How a measurement agrees with its reference (same units): mean absolute error, ICC(2,1),
    Bland-Altman bias (mean of pred - ref) and 95 % limits (bias +- 1.96 sd), and the share of
    cases within each tolerance of ``within``."""
    p, r = np.asarray(pred, float), np.asarray(ref, float)
    d = p - r
    sd = float(d.std(ddof=1)) if len(d) > 1 else float("nan")
    out = {"n": int(len(d)), "mae": float(np.abs(d).mean()), "icc": icc_2_1(p, r), "bias": float(d.mean()),
           "loa_low": float(d.mean() - 1.96 * sd), "loa_high": float(d.mean() + 1.96 * sd)}
    for w in within:
        out[f"within_{w:g}"] = float((np.abs(d) <= w).mean())
    return out
