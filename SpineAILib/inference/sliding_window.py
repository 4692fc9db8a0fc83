"""Sliding-window inference: MONAI's pure function, with progress and cancel threaded through."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from SpineAILib.progress import CancelToken, ProgressCallback, check_cancel


def count_windows(spatial_size: Sequence[int], roi_size: Sequence[int], overlap: float) -> int:
    """Number of windows MONAI's sliding_window_inference visits (it pads the image up to the
    ROI first, then steps by int(roi * (1 - overlap)), at least 1)."""
    total = 1
    for s, r in zip(spatial_size, roi_size, strict=True):
        s = max(int(s), int(r))
        step = max(int(r * (1 - overlap)), 1) if r < s else 1
        total *= 1 if r >= s else math.ceil((s - r) / step) + 1
    return total


def sliding_window(
    inputs,
    roi_size: Sequence[int],
    predictor: Callable,
    overlap: float = 0.25,
    sw_batch_size: int = 4,
    mode: str = "gaussian",
    sw_device=None,
    device=None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
):
    """Run ``predictor`` over ``inputs`` (N, C, *spatial torch tensor) window by window.

    Thin wrapper over ``monai.inferers.sliding_window_inference`` (Gaussian blending,
    window batching, separate compute ``sw_device`` and accumulation ``device``). Progress is
    reported per window batch and ``cancel`` is checked before each batch. If the
    accumulation device runs out of memory on CUDA, the call is retried with CPU
    accumulation.
    """
    import torch
    from monai.inferers import sliding_window_inference

    spatial = inputs.shape[2:]
    n_windows = count_windows(spatial, roi_size, overlap) * int(inputs.shape[0])
    n_calls = max(1, math.ceil(n_windows / sw_batch_size))
    done = [0]

    def wrapped(x):
        check_cancel(cancel)
        y = predictor(x)
        done[0] += 1
        if progress is not None:
            progress(min(1.0, done[0] / n_calls), "sliding-window inference")
        return y

    kwargs = dict(roi_size=tuple(roi_size), sw_batch_size=sw_batch_size, predictor=wrapped,
                  overlap=overlap, mode=mode, sw_device=sw_device)
    try:
        return sliding_window_inference(inputs, device=device, **kwargs)
    except torch.cuda.OutOfMemoryError:
        done[0] = 0
        torch.cuda.empty_cache()
        return sliding_window_inference(inputs, device=torch.device("cpu"), **kwargs)
