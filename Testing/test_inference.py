"""The 3D tiler and batch inference: exact answers, progress, cancel."""

from __future__ import annotations

import numpy as np
import pytest

from SpineAILib.errors import CancelledError
from SpineAILib.inference import predict_batches, tile_predict
from SpineAILib.progress import CancelToken, SubProgress, format_machine_progress, parse_machine_progress


@pytest.mark.parametrize(("shape", "core", "border"), [((97, 70, 41), (40, 32, 32), (20, 16, 16)),
                                                     ((5, 200, 9), (7, 7, 7), (0, 0, 0)),
                                                     ((12, 12, 12), (45, 45, 45), (24, 24, 24))])
def test_tiler_reconstructs_exactly_with_identity(shape, core, border):
    vol = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    seen, fractions = [], []

    def identity(x):  # (N, *patch) -> (N, 1, *patch): the tiler discards the border itself
        seen.append(x.shape[1:])
        return x[:, None]

    out = tile_predict(vol, identity, core, border, batch=3, progress=lambda f, m: fractions.append(f))
    np.testing.assert_array_equal(out[0], vol)
    assert set(seen) == {tuple(c + 2 * b for c, b in zip(core, border, strict=True))}
    n_tiles = int(np.prod([np.ceil(s / c) for s, c in zip(shape, core, strict=True)]))
    assert len(fractions) == int(np.ceil(n_tiles / 3)) and fractions[-1] == 1.0


def test_tiler_discards_borders_pads_and_takes_core_sized_outputs():
    vol = np.ones((90, 70, 70), np.float32)

    def noisy_border(x):  # marks its own border as garbage: none of it reaches the output
        y = np.full((len(x), 1, *x.shape[1:]), -1.0, np.float32)
        y[:, 0, 20:60, 16:48, 16:48] = x[:, 20:60, 16:48, 16:48]
        return y

    assert tile_predict(vol, noisy_border, (40, 32, 32), (20, 16, 16)).min() == 1.0

    def core_only(x):  # valid convolutions: the output is the core; here the mean of the padded patch
        return np.broadcast_to(x.mean(axis=(1, 2, 3))[:, None, None, None, None], (len(x), 2, 4, 4, 4))

    out = tile_predict(np.ones((4, 4, 8), np.float32), core_only, (4, 4, 4), (2, 2, 2), n_out=2, pad_value=0.0)
    assert out.shape == (2, 4, 4, 8)
    # either 8^3 patch holds 4 x 4 x 6 ones of the volume (x 0..5 or 2..7), the rest is padding
    np.testing.assert_allclose(out, 96 / 512)


def test_tiler_box_skip_and_fill():
    vol = np.zeros((20, 20, 20), np.float32)
    vol[16:, 16:, 16:] = 5.0
    calls = []

    def plus_one(x):
        calls.append(len(x))
        return x[:, None] + 1

    box = (slice(10, 20), slice(10, 20), slice(10, 20))
    out = tile_predict(vol, plus_one, (5, 5, 5), box=box, skip=lambda x: x.max() == 0, fill=(-1.0,), batch=2)
    assert (out[0][:10] == -1).all() and (out[0][:, :10] == -1).all()  # outside the box: the fill
    assert calls == [1]  # of the 8 tiles in the box only the one at (15, 15, 15) is not empty
    assert (out[0][16:, 16:, 16:] == 6).all() and (out[0][15, 15:, 15:] == 1).all()
    assert (out[0][10:15, 10:20, 10:20] == -1).all()  # skipped tiles keep the fill


def test_tiler_cancel_and_bad_predictor():
    token = CancelToken()

    def cancelling(x):
        token.cancel()  # the user presses Cancel during the first batch
        return x[:, None]

    with pytest.raises(CancelledError):
        tile_predict(np.zeros((8, 8, 8), np.float32), cancelling, (4, 4, 4), batch=1, cancel=token)
    with pytest.raises(ValueError, match="expected"):
        tile_predict(np.zeros((8, 8, 8), np.float32), lambda x: x[:, None, :2], (4, 4, 4))


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


def test_tiler_progress_ends_at_one_when_the_last_tiles_are_skipped():
    vol = np.zeros((10, 10, 10), np.float32)
    vol[:5, :5, :5] = 1.0  # only the first of 8 tiles holds anything
    fractions = []
    out = tile_predict(vol, lambda x: x[:, None] * 2, (5, 5, 5), skip=lambda x: x.max() == 0, batch=1,
                       progress=lambda f, m: fractions.append(f))
    assert fractions == [1 / 8, 1.0] and out[0, :5, :5, :5].min() == 2.0 and out[0, 5:].max() == 0.0
