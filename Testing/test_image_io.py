"""Image I/O: round trips with anisotropic spacing and oblique directions, DICOM series,
radiographs (incl. RGB), geometry helpers, and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from SpineAILib.errors import InputError
from SpineAILib.io import Image, read_image, write_image
from SpineAILib.io.image import lps_to_ras


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_volume_roundtrip_keeps_geometry(tmp_path, random_volume, suffix):
    path = write_image(random_volume, tmp_path / f"vol{suffix}")
    back = read_image(path)
    assert back.array.shape == random_volume.array.shape
    np.testing.assert_allclose(back.array, random_volume.array, rtol=1e-6)
    np.testing.assert_allclose(back.spacing, random_volume.spacing, atol=1e-5)
    np.testing.assert_allclose(back.origin, random_volume.origin, atol=1e-4)
    np.testing.assert_allclose(back.direction, random_volume.direction, atol=1e-5)
    # A voxel lands at the same physical point after the round trip.
    idx = np.array([3.0, 5.0, 7.0])
    np.testing.assert_allclose(back.index_to_physical(idx), random_volume.index_to_physical(idx), atol=1e-4)


def test_index_physical_matches_simpleitk(random_volume):
    img = random_volume.to_sitk()
    for idx in [(0, 0, 0), (3, 5, 7), (16, 12, 10)]:
        expected = img.TransformContinuousIndexToPhysicalPoint([float(i) for i in idx])
        np.testing.assert_allclose(random_volume.index_to_physical(np.array(idx, float)), expected, atol=1e-9)
    pts = random_volume.index_to_physical(np.array([[1.5, 2.5, 3.5], [0, 0, 0]]))
    np.testing.assert_allclose(random_volume.physical_to_index(pts), [[1.5, 2.5, 3.5], [0, 0, 0]], atol=1e-9)


def test_lps_ras_flip():
    np.testing.assert_array_equal(lps_to_ras(np.array([1.0, 2.0, 3.0])), [-1.0, -2.0, 3.0])
    with pytest.raises(InputError, match="3 coordinates"):
        lps_to_ras(np.zeros((2, 2)))


def test_ras_matrix_of_oblique_volume(random_volume):
    m = random_volume.index_to_ras_matrix()
    idx = np.array([2.0, 4.0, 6.0, 1.0])
    lps = random_volume.index_to_physical(idx[:3])
    np.testing.assert_allclose((m @ idx)[:3], [-lps[0], -lps[1], lps[2]], atol=1e-9)


def test_dicom_series_folder(tmp_path, random_volume):
    """Write a CT-like DICOM series with SimpleITK and read the folder back."""
    vol = Image(np.round(random_volume.array).astype(np.int16), random_volume.spacing, random_volume.origin,
                random_volume.direction)
    img = vol.to_sitk()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    direction = img.GetDirection()
    series_uid = "1.2.826.0.1.3680043.2.1125.1.123456789"
    for k in range(img.GetDepth()):
        sl = img[:, :, k]
        for tag, value in [
            ("0008|0060", "CT"), ("0020|000e", series_uid), ("0020|000d", series_uid + ".1"),
            ("0020|0013", str(k + 1)),
            ("0020|0032", "\\".join(map(str, img.TransformIndexToPhysicalPoint((0, 0, k))))),
            ("0020|0037", "\\".join(map(str, (*direction[0::3], *direction[1::3])))),
            ("0018|0050", str(img.GetSpacing()[2])), ("0028|0030", f"{img.GetSpacing()[1]}\\{img.GetSpacing()[0]}"),
        ]:
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(tmp_path / f"slice{k:03d}.dcm"))
        writer.Execute(sl)
    back = read_image(tmp_path)
    assert back.array.shape == vol.array.shape
    np.testing.assert_array_equal(back.array, vol.array)
    np.testing.assert_allclose(back.spacing, vol.spacing, atol=1e-4)
    np.testing.assert_allclose(back.origin, vol.origin, atol=1e-3)
    np.testing.assert_allclose(back.direction, vol.direction, atol=1e-4)
    assert back.meta["dicom_series_uid"] == series_uid


def test_png_radiograph_and_single_slice_squeeze(tmp_path):
    arr = (np.arange(40 * 30) % 251).reshape(40, 30).astype(np.uint8)
    p = write_image(Image(arr, (1.0, 1.0)), tmp_path / "xr.png")
    img = read_image(p)
    assert img.is_2d and img.size == (30, 40)
    assert img.meta["spacing_known"] is False
    np.testing.assert_array_equal(img.array, arr)
    # A one-slice volume (how Slicer holds a radiograph) reads as 2D with its in-plane geometry.
    vol = Image(arr[None], (0.2, 0.3, 5.0), (1.0, 2.0, 3.0))
    write_image(vol, tmp_path / "xr.nrrd")
    flat = read_image(tmp_path / "xr.nrrd", expect_ndim=2)
    assert flat.is_2d and flat.spacing == pytest.approx((0.2, 0.3))
    # ... and maps pixels back to the volume's physical positions.
    expected = vol.index_to_physical(np.array([4.0, 5.0, 0.0]))
    np.testing.assert_allclose(flat.pixels_to_lps(np.array([4.0, 5.0])), expected)
    np.testing.assert_array_equal(flat.as_3d().array, vol.array)


def test_rgb_radiograph_is_converted_to_gray(tmp_path):
    rgb = np.zeros((20, 10, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 100, 200, 50
    img = sitk.GetImageFromArray(rgb, isVector=True)
    sitk.WriteImage(img, str(tmp_path / "rgb.png"))
    gray = read_image(tmp_path / "rgb.png")
    assert gray.is_2d and gray.array.shape == (20, 10)
    assert gray.array[0, 0] == pytest.approx(0.299 * 100 + 0.587 * 200 + 0.114 * 50, abs=1e-3)
    assert "grayscale" in gray.meta["converted"]


def test_bad_paths_and_formats(tmp_path):
    with pytest.raises(InputError, match="File not found"):
        read_image(tmp_path / "nope.nii.gz")
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(InputError, match=r"Unsupported file format '\.txt'.*Supported"):
        read_image(tmp_path / "notes.txt")
    (tmp_path / "broken.nii.gz").write_bytes(b"this is not a nifti file")
    with pytest.raises(InputError, match="corrupt or not a valid"):
        read_image(tmp_path / "broken.nii.gz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no DICOM series"):
        read_image(tmp_path / "empty")
    with pytest.raises(InputError, match="Cannot write"):
        write_image(Image(np.ones((2, 2)), (1.0, 1.0)), tmp_path / "x.txt")


def test_dimensionality_errors(tmp_path, random_volume):
    write_image(random_volume, tmp_path / "ct.nii.gz")
    with pytest.raises(InputError, match="expects a 2D radiograph, but got a 3D volume"):
        read_image(tmp_path / "ct.nii.gz", expect_ndim=2)
    write_image(Image(np.ones((8, 9), np.uint8) * 3, (1.0, 1.0)), tmp_path / "xr.png")
    with pytest.raises(InputError, match="expects a 3D volume"):
        read_image(tmp_path / "xr.png", expect_ndim=3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"array": np.zeros((0, 4)), "spacing": (1, 1)}, "empty"),
        ({"array": np.zeros((2, 2, 2, 2)), "spacing": (1, 1, 1, 1)}, "2D .* or 3D"),
        ({"array": np.zeros((3, 3)), "spacing": None}, "spacing is missing"),
        ({"array": np.zeros((3, 3)), "spacing": (0.0, 1.0)}, "positive finite"),
        ({"array": np.zeros((3, 3)), "spacing": (1.0, np.nan)}, "positive finite"),
        ({"array": np.zeros((3, 3)), "spacing": (1.0, 1.0, 1.0)}, "needs 2"),
        ({"array": np.zeros((3, 3)), "spacing": (1, 1), "direction": np.zeros((2, 2))}, "invertible"),
    ],
)
def test_image_validation(kwargs, match):
    with pytest.raises(InputError, match=match):
        Image(**kwargs)


def test_real_aasce_radiograph_and_ct(data_dir):
    xr = read_image(next(iter(sorted((data_dir / "aasce" / "images").glob("*.jpg")))), expect_ndim=2)
    assert xr.is_2d and xr.size[1] > xr.size[0] > 500  # tall AP radiograph
    ct = read_image(data_dir / "ct" / "totalseg_example" / "ct.nii.gz", expect_ndim=3)
    assert ct.size == (122, 101, 112)
    np.testing.assert_allclose(ct.spacing, (3.0, 3.0, 3.0), atol=1e-3)
    assert ct.array.min() < -500 and ct.array.max() > 500  # HU with air and bone
