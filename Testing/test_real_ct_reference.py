"""Reference labels for real CT: a TotalSegmentator segmentations/ folder read as a VerSe label
map (and as --centroids), and predictions scored by the masks they lie in (exact answers on
hand-made masks; the real folder of totalseg_s0002)."""

from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest
import SimpleITK as sitk

from SpineAILib import anatomy
from SpineAILib.errors import InputError, InputWarning
from SpineAILib.io import Image, write_image


def _mask(shape, box):
    a = np.zeros(shape, np.uint8)
    a[box] = 1
    return a


def _ref():
    """A 30 x 20 x 20 label map (z, y, x), 2 mm, with L1 (z 2-9) and L2 (z 12-19) as blocks and
    L3 (z 22-29) touching the image's end (cut by the field of view)."""
    lab = np.zeros((30, 20, 20), np.uint8)
    lab[2:10, 5:15, 5:15] = 20
    lab[12:20, 5:15, 5:15] = 21
    lab[22:30, 5:15, 5:15] = 22
    return Image(lab, (2.0, 2.0, 2.0), (-20.0, -20.0, 0.0))


def test_score_masks_exact():
    from SpineAILib.vertebrae.evaluate import score_masks

    ref = _ref()
    centre = {v: ref.index_to_physical(np.array([10.0, 10.0, z])) for v, z in ((20, 5.5), (21, 15.5), (22, 25.5))}
    pred = {20: centre[20], 22: centre[21] + [0.0, 0.0, 1.0], 23: centre[22], 8: ref.index_to_physical(
        np.array([1.0, 1.0, 5.0]))}
    s = score_masks(pred, ref, {20, 21}, centre)
    # L1 right, "L3" inside L2 (wrong), "L4" inside the cut L3 (wrong), "T1" beside the column (outside)
    assert (s["correct"], s["wrong"], s["outside"]) == (1, 2, 1)
    assert s["complete"] == ["L1", "L2"] and s["identified"] == ["L1"] and s["id_rate"] == 0.5
    assert s["found_as"] == {"L1": "L1", "L2": "L3"} and s["distance_mean_mm"] == pytest.approx(0.0)
    far = {20: centre[20] + [0.0, 0.0, 500.0]}  # outside the image: in no mask
    assert score_masks(far, ref, {20, 21})["outside"] == 1


def _write_mask(path, arr, spacing=(1.5, 1.5, 1.5), skew=0.0):
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    sitk.WriteImage(img, str(path))
    if skew:  # a sform orthonormal only to ~skew, as TotalSegmentator writes them
        raw = bytearray(path.read_bytes())
        srow = np.zeros((3, 4))
        srow[:, :3] = np.diag([-spacing[0], -spacing[1], spacing[2]])
        srow[0, 1] += skew * spacing[1]
        struct.pack_into("<2h", raw, 252, 0, 2)
        struct.pack_into("<12f", raw, 280, *srow.astype(np.float32).ravel())
        path.write_bytes(bytes(raw))


def test_totalsegmentator_folder_as_labels_and_centroids(tmp_path):
    from SpineAILib.io.totalseg import read_totalseg_vertebrae, totalseg_folder
    from SpineAILib.tasks import read_centroids_option

    seg = tmp_path / "case" / "segmentations"
    seg.mkdir(parents=True)
    shape = (20, 12, 12)
    _write_mask(seg / "vertebrae_L1.nii", _mask(shape, (slice(2, 8), slice(2, 10), slice(2, 10))))
    _write_mask(seg / "vertebrae_L2.nii", _mask(shape, (slice(10, 16), slice(2, 10), slice(2, 10))), skew=2e-4)
    _write_mask(seg / "liver.nii", _mask(shape, (slice(0, 20), slice(0, 2), slice(0, 2))))
    assert totalseg_folder(tmp_path / "case") == seg and totalseg_folder(tmp_path) is None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        labels = read_totalseg_vertebrae(tmp_path / "case")
    assert sorted(np.unique(labels.array)) == [0, 20, 21]
    assert (labels.array == 20).sum() == 6 * 8 * 8 and (labels.array == 21).sum() == 6 * 8 * 8
    assert any("1 masks with direction cosines off orthonormal" in str(w.message) for w in caught)
    with pytest.warns(InputWarning, match="off orthonormal"):
        cents = read_centroids_option(tmp_path / "case", None)
    assert sorted(cents) == [20, 21] and cents[21][2] - cents[20][2] == pytest.approx(8 * 1.5)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no TotalSegmentator vertebra masks"):
        read_totalseg_vertebrae(tmp_path / "empty")
    write_image(Image(np.zeros((5, 5, 5), np.uint8), (1.0, 1.0, 1.0)), seg / "vertebrae_L3.nii.gz")
    with pytest.raises(InputError, match="not on the grid of the other masks"):
        read_totalseg_vertebrae(seg)


def test_real_totalsegmentator_dataset_case(data_dir):
    from SpineAILib.vertebrae.data import shared_ct_cases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        case = next(c for c in shared_ct_cases(data_dir) if c.name == "totalseg_s0002")
    assert case.reference.array.shape == case.image.array.shape  # the masks lie on the CT's grid
    assert [anatomy.vertebra_name(v) for v in sorted(case.centroids, key=anatomy.ORDER.index)][:7] == \
        ["C1", "C2", "C3", "C4", "C5", "C6", "C7"]
    complete = set(case.centroids) - case.partial
    assert {anatomy.vertebra_label(n) for n in ("C2", "C3", "C4", "C5", "C6")} <= complete
