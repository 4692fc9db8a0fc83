"""Sliding-window and batch inference: exact answers, progress, cancel."""

from __future__ import annotations

import pytest
import torch

from SpineAILib.errors import CancelledError
from SpineAILib.inference import count_windows, predict_batches, sliding_window
from SpineAILib.progress import CancelToken, SubProgress, format_machine_progress, parse_machine_progress


@pytest.mark.parametrize(("shape", "roi", "overlap"), [((20, 24, 9), (8, 8, 8), 0.25), ((7, 30), (7, 10), 0.5),
                                                       ((5, 5, 5), (8, 8, 8), 0.25)])
def test_sliding_window_exact_and_progress(shape, roi, overlap):
    x = torch.rand(1, 1, *shape)
    calls, fractions = [], []

    def predictor(t):
        calls.append(t.shape[0])
        return t + 1

    y = sliding_window(x, roi, predictor, overlap=overlap, sw_batch_size=3, mode="constant",
                       progress=lambda f, m: fractions.append(f))
    torch.testing.assert_close(y, x + 1)
    assert sum(calls) == count_windows(shape, roi, overlap)
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)


def test_sliding_window_gaussian_blend_of_constant_predictor():
    x = torch.zeros(2, 1, 16, 16)
    y = sliding_window(x, (8, 8), lambda t: torch.full_like(t, 3.0), overlap=0.5, mode="gaussian")
    torch.testing.assert_close(y, torch.full_like(x, 3.0))


def test_sliding_window_cancel():
    token = CancelToken()
    seen = []

    def predictor(t):
        seen.append(1)
        token.cancel()  # the user presses Cancel during the first window batch
        return t

    with pytest.raises(CancelledError):
        sliding_window(torch.zeros(1, 1, 32, 32), (8, 8), predictor, sw_batch_size=1, cancel=token)
    assert len(seen) == 1


def test_predict_batches_order_progress_cancel():
    fractions = []
    out = predict_batches(list(range(7)), lambda b: [v * 10 for v in b], batch_size=3,
                          progress=lambda f, m: fractions.append(f))
    assert out == [0, 10, 20, 30, 40, 50, 60]
    assert fractions == pytest.approx([3 / 7, 6 / 7, 1.0])
    with pytest.raises(RuntimeError, match="2 results for a batch of 3"):
        predict_batches(range(3), lambda b: b[:2], batch_size=3)
    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        predict_batches(range(3), lambda b: b, cancel=token)


def test_progress_helpers():
    got = []
    sub = SubProgress(lambda f, m: got.append((f, m)), 0.5, 1.0)
    sub(0.5, "half")
    sub(2.0, "clamped")
    assert got == [(0.75, "half"), (1.0, "clamped")]
    line = format_machine_progress(0.25, "inference on slice 3")
    assert parse_machine_progress(line) == (0.25, "inference on slice 3")
    assert parse_machine_progress("ordinary output") is None
