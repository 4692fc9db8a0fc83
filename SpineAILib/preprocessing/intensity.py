"""Intensity normalisation described as data (the ``intensity`` entry of a model card)."""

from __future__ import annotations

import numpy as np

from SpineAILib.errors import InputError

METHODS = ("window", "zscore", "percentile", "minmax", "none")


def normalize_intensity(array: np.ndarray, spec: dict) -> np.ndarray:
    """Return a float32 array normalised as ``spec`` says.

    * ``{"type": "window", "min": -1000, "max": 2000}``: clip to [min, max] (e.g. HU) -> [0, 1]
    * ``{"type": "zscore"}``: (x - mean) / std
    * ``{"type": "percentile", "low": 1, "high": 99}``: robust min/max from percentiles -> [0, 1]
    * ``{"type": "minmax"}``: image minimum/maximum -> [0, 1]
    * ``{"type": "none"}``: cast only
    """
    kind = spec.get("type")
    x = np.asarray(array, dtype=np.float32)
    if kind == "window":
        lo, hi = float(spec["min"]), float(spec["max"])
        return (np.clip(x, lo, hi) - lo) / (hi - lo)
    if kind == "zscore":
        std = float(x.std())
        return (x - float(x.mean())) / (std if std > 0 else 1.0)
    if kind == "percentile":
        lo, hi = np.percentile(x, [float(spec.get("low", 1)), float(spec.get("high", 99))])
        if hi <= lo:
            hi = lo + 1.0
        return np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    if kind == "minmax":
        lo, hi = float(x.min()), float(x.max())
        return (x - lo) / (hi - lo if hi > lo else 1.0)
    if kind == "none":
        return x
    raise InputError(f"Unknown intensity normalisation '{kind}'; expected one of {', '.join(METHODS)}.")


def scale_hu(hu) -> np.ndarray:
    """CT network input (every CT model): HU / 1000 clipped to [-1, 2] (air -1, water 0,
    cortical bone ~1), float32, same shape."""
    return np.clip(np.asarray(hu, dtype=np.float32) / 1000.0, -1.0, 2.0)
