"""Resampling with exact inverse, canvas fitting, intensity, and task input checks."""

from __future__ import annotations

import numpy as np
import pytest

from SpineAILib.errors import InputError
from SpineAILib.io import Image
from SpineAILib.preprocessing import (
    check_image,
    fit_to_canvas,
    map_from_canvas,
    normalize_intensity,
    resample_to_spacing,
)


def test_resample_roundtrip_is_exact_for_labels(random_volume):
    labels = random_volume.with_array((np.arange(random_volume.array.size) % 5).reshape(random_volume.array.shape)
                                      .astype(np.int16))
    half = tuple(s / 2 for s in labels.spacing)
    fine, record = resample_to_spacing(labels, half, interpolator="nearest")
    assert fine.size == tuple(2 * s for s in labels.size)
    np.testing.assert_allclose(fine.origin, labels.origin)
    np.testing.assert_allclose(fine.direction, labels.direction)
    back = record.restore(fine, "nearest")
    assert back.same_grid(labels)
    np.testing.assert_array_equal(back.array, labels.array)
    assert fine.meta["history"][-1]["op"] == "resample"


def test_resample_keeps_physical_positions(random_volume):
    """A bright voxel stays at the same physical point after resampling to 1 mm."""
    arr = np.zeros_like(random_volume.array)
    arr[5, 6, 8] = 1000.0
    img = random_volume.with_array(arr)
    iso, _ = resample_to_spacing(img, 1.0, interpolator="linear", default_value=0.0)
    peak = np.array(np.unravel_index(np.argmax(iso.array), iso.array.shape))[::-1]
    expected = img.index_to_physical(np.array([8.0, 6.0, 5.0]))
    assert np.linalg.norm(iso.index_to_physical(peak) - expected) <= np.sqrt(3) * 0.5 + 1e-6


def test_resample_rejects_bad_spacing(random_volume):
    with pytest.raises(InputError, match="positive"):
        resample_to_spacing(random_volume, (1.0, 0.0, 1.0))
    with pytest.raises(InputError, match="Unknown interpolator"):
        resample_to_spacing(random_volume, 1.0, interpolator="cubic")


def test_canvas_maps_points_exactly():
    arr = np.zeros((300, 120), np.float32)  # tall radiograph (rows, cols)
    arr[100:110, 50:60] = 1.0
    canvas, rec = fit_to_canvas(arr, (256, 128))
    assert canvas.shape == (256, 128)
    assert rec.scale == pytest.approx(256 / 300)
    pts = np.array([[0.0, 0.0], [119.0, 299.0], [54.5, 104.5]])
    np.testing.assert_allclose(rec.to_original(rec.to_canvas(pts)), pts, atol=1e-9)
    # The block's centre in the canvas is where the record says.
    cy, cx = np.argwhere(canvas > 0.5).mean(0)
    np.testing.assert_allclose(rec.to_canvas(np.array([54.5, 104.5])), [cx, cy], atol=0.6)
    # Padding is symmetric left/right for a tall image, none at top/bottom.
    assert rec.shift[1] == pytest.approx(0.5 * rec.scale - 0.5)


def test_map_from_canvas_restores_size_and_block():
    arr = np.zeros((200, 100), np.uint8)
    arr[50:150, 30:70] = 1
    canvas, rec = fit_to_canvas(arr, (100, 100), interpolator="nearest")
    back = map_from_canvas(canvas, rec, interpolator="nearest")
    assert back.shape == arr.shape
    assert (back == arr).mean() > 0.99
    with pytest.raises(InputError, match="does not match the canvas"):
        map_from_canvas(np.zeros((5, 5)), rec)


def test_intensity_methods():
    x = np.array([-2000.0, -1000.0, 500.0, 2000.0, 3000.0])
    np.testing.assert_allclose(normalize_intensity(x, {"type": "window", "min": -1000, "max": 2000}),
                               [0, 0, 0.5, 1, 1])
    z = normalize_intensity(np.arange(10.0), {"type": "zscore"})
    assert abs(z.mean()) < 1e-6 and z.std() == pytest.approx(1.0, rel=1e-5)
    with pytest.raises(InputError, match="Unknown intensity normalisation 'foo'"):
        normalize_intensity(x, {"type": "foo"})


def test_check_image_bad_inputs(random_volume):
    with pytest.raises(InputError, match="expects a 2D radiograph, but got a 3D volume"):
        check_image(random_volume, "Cobb angles", ndim=2)
    xr = Image(np.arange(20.0).reshape(4, 5), (0.1, 0.1))
    with pytest.raises(InputError, match="expects a 3D volume"):
        check_image(xr, "Vertebra labelling", ndim=3)
    nan = xr.with_array(np.where(np.arange(20.0).reshape(4, 5) == 3, np.nan, 1.0))
    with pytest.raises(InputError, match="1 NaN/inf"):
        check_image(nan, "Cobb angles", ndim=2)
    inf = xr.with_array(np.full((4, 5), np.inf))
    with pytest.raises(InputError, match="NaN/inf"):
        check_image(inf, "Cobb angles")
    with pytest.raises(InputError, match="constant"):
        check_image(xr.with_array(np.full((4, 5), 7.0)), "Cobb angles")
    with pytest.raises(InputError, match="SpineAILib Image"):
        check_image(np.zeros((3, 3)), "Cobb angles")
    one_slice = Image(np.arange(20.0).reshape(1, 4, 5), (0.1, 0.1, 1.0))
    assert check_image(one_slice, "Cobb angles", ndim=2).is_2d
    with pytest.raises(InputError, match="expects a 3D volume"):
        check_image(one_slice, "Vertebra labelling", ndim=3)


def test_crop_with_fill_pads_outside_the_array():
    from SpineAILib.preprocessing import crop_with_fill

    a = np.arange(12, dtype=np.int16).reshape(3, 4)
    out = crop_with_fill(a, (-1, 2), (3, 3), -5)
    np.testing.assert_array_equal(out, [[-5, -5, -5], [2, 3, -5], [6, 7, -5]])
    assert out.dtype == np.int16
    assert (crop_with_fill(a, (10, 10), (2, 2), 0) == 0).all()  # entirely outside
