"""Building blocks of CT vertebra labelling (issue 4, in progress): VerSe centroid files,
sparse-to-dense labels, dense-to-sparse centroids."""

from __future__ import annotations

import json

import numpy as np

from SpineAILib.io import Image
from SpineAILib.io.centroids import axis_codes, centroids_json, read_verse_centroids, write_verse_centroids
from SpineAILib.postprocessing import centers_of_mass
from SpineAILib.vertebrae.labels import dense_to_sparse, segments, sparse_to_dense, vertebra_radius_mm


def test_verse_json_against_real_mask(data_dir):
    from SpineAILib.io import read_image

    d = data_dir / "ct" / "verse004_mask_only"
    mask = read_image(d / "sub-verse004_seg-vert_msk.nii.gz")
    assert axis_codes(mask) == ["P", "I", "R"]
    ctd = read_verse_centroids(d / "sub-verse004_seg-subreg_ctd.json", mask)
    com = centers_of_mass(mask)
    assert sorted(ctd) == sorted(com) == list(range(16, 25))  # T9..L5
    for lab in ctd:
        diff = ctd[lab] - com[lab]
        # VerSe centroids mark the vertebral body: anterior (-y in LPS) of the whole-vertebra
        # centre of mass, within a few mm left-right and cranio-caudally.
        assert -16 < diff[1] < -8
        assert abs(diff[0]) < 3 and abs(diff[2]) < 6


def test_verse_json_round_trip_between_orientations(tmp_path, oblique_direction):
    a = Image(np.zeros((30, 40, 50), np.uint8), (0.8, 0.9, 2.5), (10.0, -20.0, 30.0), oblique_direction)
    cents = {20: np.array([5.0, -3.0, 60.0]), 21: np.array([7.0, 1.0, 35.0])}
    path = write_verse_centroids(tmp_path / "c.json", cents, a)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data[0]["direction"] == axis_codes(a) and data[1]["label"] == 20
    back = read_verse_centroids(path, a)
    for lab in cents:
        np.testing.assert_allclose(back[lab], cents[lab], atol=5e-3)
    # The same file read against a reoriented copy of the image (i flipped, so codes differ).
    flip = a.direction.copy()
    flip[:, 0] *= -1
    origin_flipped = a.index_to_physical(np.array([a.size[0] - 1, 0, 0]))
    b = Image(np.zeros_like(a.array), a.spacing, origin_flipped, flip)
    assert axis_codes(b)[0] != axis_codes(a)[0]
    back_b = read_verse_centroids(path, b)
    for lab in cents:
        np.testing.assert_allclose(back_b[lab], cents[lab], atol=5e-3)
    entries = centroids_json(cents, {20: 0.9})
    assert entries[0] == {"label": 20, "name": "L1", "position_ras_mm": [-5.0, 3.0, 60.0], "confidence": 0.9}


def straight_column(spacing=1.0):
    img = Image(np.zeros((160, 60, 60), np.float32), (spacing,) * 3, (-30.0, -30.0, -150.0))
    cents = {20: np.array([0.0, 0.0, -10.0]), 21: np.array([0.0, 0.0, -40.0]), 22: np.array([0.0, 0.0, -70.0])}
    return img, cents


def test_sparse_to_dense_straight_column():
    img, cents = straight_column()
    segs = segments(cents)
    np.testing.assert_allclose(segs[20][0], [0, 0, 5.0])  # extra half-segment above the first
    np.testing.assert_allclose(segs[22][1], [0, 0, -85.0])  # and below the last
    dense = sparse_to_dense(img, cents)
    arr = dense.array

    def at(p):
        i, j, k = np.round(img.physical_to_index(np.asarray(p, float))).astype(int)
        return arr[k, j, i]

    for lab, c in cents.items():
        r = vertebra_radius_mm(lab)
        assert at(c) == lab
        assert at(c + [np.floor(r) - 0.01, 0, 0]) == lab  # inside the disc
        assert at(c + [np.ceil(r) + 1, 0, 0]) == 0  # outside its radius
    # Label order along the column and the boundaries at the midpoints.
    assert at([0, 0, -24.0]) == 20 and at([0, 0, -26.0]) == 21
    assert at([0, 0, 4.0]) == 20 and at([0, 0, 6.5]) == 0
    assert at([0, 0, -84.0]) == 22 and at([0, 0, -86.5]) == 0
    binary = sparse_to_dense(img, cents, binary=True)
    np.testing.assert_array_equal(binary.array, (arr > 0).astype(np.uint8))


def test_dense_to_sparse_median_and_threshold():
    img = Image(np.zeros((40, 40, 40), np.uint8), (1.0, 1.0, 1.0))
    arr = np.zeros((40, 40, 40), np.uint8)
    arr[5:25, 5:25, 5:25] = 20  # 8000 votes, median voxel (14.5, 14.5, 14.5)
    arr[26:39, 26:39, 26:39] = 21  # 2197 votes: below 3000, above 0.4 R^3 of L2
    r3 = 0.4 * vertebra_radius_mm(21) ** 3
    assert r3 < 2197
    out = dense_to_sparse(img.with_array(arr))
    assert list(out) == [20]
    np.testing.assert_allclose(out[20], [14.5, 14.5, 14.5])
    assert sorted(dense_to_sparse(img.with_array(arr), min_votes=100)) == [20, 21]
    arr[26:39, 26:39, 26:39] = 0
    arr[30:35, 30:35, 30:35] = 21  # 125 votes: below 0.4 R^3, dropped even with a low min_votes
    assert sorted(dense_to_sparse(img.with_array(arr), min_votes=100)) == [20]
