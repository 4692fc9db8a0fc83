"""Batch-of-images inference with progress and cancel."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from SpineAILib.progress import CancelToken, ProgressCallback, check_cancel

T = TypeVar("T")
R = TypeVar("R")


def predict_batches(
    items: Sequence[T] | Iterable[T],
    predict: Callable[[list[T]], list[R]],
    batch_size: int = 8,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> list[R]:
    """Call ``predict`` on consecutive batches of ``items``; results come back in order.

    ``predict`` must return one result per item of its batch (checked).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    items = list(items)
    out: list[R] = []
    for start in range(0, len(items), batch_size):
        check_cancel(cancel)
        batch = items[start:start + batch_size]
        res = list(predict(batch))
        if len(res) != len(batch):
            raise RuntimeError(f"predict returned {len(res)} results for a batch of {len(batch)} items")
        out.extend(res)
        if progress is not None:
            progress(len(out) / len(items), f"{len(out)}/{len(items)} images")
    return out
