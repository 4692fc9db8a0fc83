"""Phantoms: deterministic, ground truth consistent with the pixels (heights, centroids,
landmarks, Cobb geometry, masks)."""

from __future__ import annotations

import numpy as np
import pytest

from SpineAILib import anatomy
from SpineAILib.errors import InputError
from SpineAILib.phantoms import (
    APPhantomConfig,
    CervicalPhantomConfig,
    CTPhantomConfig,
    ap_radiograph_phantom,
    ct_spine_phantom,
    lateral_cervical_phantom,
)
from SpineAILib.phantoms.ct_spine import MEASURE_AT, vertebra_dimensions
from SpineAILib.postprocessing import centers_of_mass


@pytest.fixture(scope="module")
def straight_ct():
    """Straight column (no curvature) at 0.75 mm, one vertebra of each deformity type."""
    cfg = CTPhantomConfig(first="T12", last="L3", spacing=(0.75, 0.75, 0.75), lateral_curve_mm=0, lordosis_mm=0,
                          lateral_fov_mm=70, ap_fov_mm=90, ribs=False, noise_hu=0,
                          height_loss={"L1": ("wedge", 0.3), "L2": ("biconcave", 0.25), "L3": ("crush", 0.4)})
    return ct_spine_phantom(cfg)


def test_ct_phantom_labels_and_intensities(straight_ct):
    ph = straight_ct
    assert sorted(ph.centroids) == [19, 20, 21, 22]
    assert set(np.unique(ph.labels.array)) == {0, 19, 20, 21, 22}
    assert ph.labels.same_grid(ph.image)
    arr = ph.image.array
    body = ph.body_labels.array > 0
    # Trabecular core and cortical shell in HU ranges; soft tissue around the column.
    assert 150 < np.median(arr[body]) < 600
    assert arr[body].max() > 700
    assert -150 < arr[0, 0, 0] < 150
    assert ph.deformity == {20: ("wedge", 0.3), 21: ("biconcave", 0.25), 22: ("crush", 0.4)}


def test_ct_phantom_heights_are_exact_and_match_the_pixels(straight_ct):
    ph = straight_ct
    H = vertebra_dimensions("L1")["height"]
    assert ph.heights[20]["posterior"] == pytest.approx(H)
    assert ph.heights[20]["anterior"] == pytest.approx(H * (1 - 0.3))  # Genant ratio exactly 1 - f
    t12 = vertebra_dimensions("T12")["height"]
    assert ph.heights[19]["anterior"] == ph.heights[19]["posterior"] == pytest.approx(t12)
    h2 = ph.heights[21]
    assert h2["middle"] == pytest.approx(vertebra_dimensions("L2")["height"] * 0.75)
    assert h2["anterior"] == pytest.approx(h2["posterior"]) == pytest.approx(vertebra_dimensions("L2")["height"])
    h3 = ph.heights[22]
    assert h3["anterior"] == h3["middle"] == h3["posterior"] == pytest.approx(vertebra_dimensions("L3")["height"] * 0.6)
    # Independent check: count body voxels along z at the three measuring positions.
    img = ph.body_labels
    for lab in (19, 20, 21, 22):
        depth = vertebra_dimensions(anatomy.vertebra_name(lab))["depth"]
        for key, frac in MEASURE_AT.items():
            p = ph.body_centers[lab] + np.array([0.0, frac * depth / 2, 0.0])
            i, j, _ = np.round(img.physical_to_index(p)).astype(int)
            column = img.array[:, j, i] == lab
            assert column.sum() * img.spacing[2] == pytest.approx(ph.heights[lab][key], abs=1.6 * img.spacing[2])


def test_ct_phantom_centroids_are_centres_of_mass_and_geometry_independent(oblique_direction):
    cfg = dict(first="L1", last="L3", spacing=(1.5, 1.5, 1.5), ribs=False, noise_hu=0)
    a = ct_spine_phantom(CTPhantomConfig(**cfg))
    for lab, c in centers_of_mass(a.labels).items():
        np.testing.assert_allclose(a.centroids[lab], c)
    b = ct_spine_phantom(CTPhantomConfig(**cfg, direction=oblique_direction))
    assert not np.allclose(b.image.direction, np.eye(3))
    for lab in a.centroids:  # same anatomy in physical space, whatever the voxel grid
        assert np.linalg.norm(a.centroids[lab] - b.centroids[lab]) < 1.5
    # Vertebrae run downwards (superior = +z in LPS).
    zs = [a.centroids[lab][2] for lab in (20, 21, 22)]
    assert zs[0] > zs[1] > zs[2]


def test_ct_phantom_is_deterministic_and_validates():
    cfg = CTPhantomConfig(first="L4", last="L5", spacing=(2.0, 2.0, 2.0), seed=3)
    np.testing.assert_array_equal(ct_spine_phantom(cfg).image.array, ct_spine_phantom(cfg).image.array)
    with pytest.raises(InputError, match="range L5..L1 is invalid"):
        ct_spine_phantom(CTPhantomConfig(first="L5", last="L1"))
    with pytest.raises(InputError, match="Height loss"):
        ct_spine_phantom(CTPhantomConfig(height_loss={"L1": ("melted", 0.2)}))


def test_ct_phantom_thoracic_ribs():
    ph = ct_spine_phantom(CTPhantomConfig(first="T8", last="T9", spacing=(2.0, 2.0, 2.0), noise_hu=0))
    rib_voxels = (ph.image.array > 350) & (ph.labels.array == 0)
    assert rib_voxels.sum() > 100  # bone outside the vertebra labels = ribs
    assert (ph.image.array < -900).any()  # air behind the back at the default field of view


def test_ap_phantom_landmarks_and_cobb_geometry():
    ph = ap_radiograph_phantom(APPhantomConfig(amplitudes_px=(40.0, 15.0), seed=1))
    lm = ph.landmarks.reshape(17, 4, 2)
    assert ph.landmarks.shape == (68, 2)
    for v in range(17):
        tl, tr, bl, br = lm[v]
        top = np.degrees(np.arctan2(-(tr[1] - tl[1]), tr[0] - tl[0]))
        bottom = np.degrees(np.arctan2(-(br[1] - bl[1]), br[0] - bl[0]))
        # Both endplates have exactly the vertebra's tilt (positive = counter-clockwise on screen,
        # i.e. the right corner higher).
        assert top == pytest.approx(ph.tilts_deg[v], abs=1e-9)
        assert bottom == pytest.approx(ph.tilts_deg[v], abs=1e-9)
        assert tl[1] < bl[1] and tl[0] < tr[0]  # top above bottom, left left of right
    i_up, i_low = (anatomy.AASCE_VERTEBRAE.index(n) for n in ph.main_end_vertebrae)
    assert ph.cobb_main_deg == pytest.approx(abs(ph.tilts_deg[i_up] - ph.tilts_deg[i_low]))
    assert ph.cobb_main_deg == pytest.approx(ph.tilts_deg.max() - ph.tilts_deg.min())
    # The vertebra bodies are bright where the landmarks say.
    img = ph.image.array.astype(float)
    cx, cy = np.round(ph.centers[8]).astype(int)
    assert img[cy, cx] > np.median(img) + 20


def test_ap_phantom_straight_spine_has_zero_cobb():
    ph = ap_radiograph_phantom(APPhantomConfig(amplitudes_px=(0.0, 0.0)))
    assert ph.cobb_main_deg == pytest.approx(0.0, abs=1e-12)
    assert np.allclose(ph.tilts_deg, 0.0)


def test_cervical_phantom_masks():
    ph = lateral_cervical_phantom(CervicalPhantomConfig(rotation_deg=12, implant=True, seed=2))
    labs = set(np.unique(ph.labels.array)) - {0}
    assert labs == set(range(1, 8))
    np.testing.assert_array_equal(ph.region, (ph.labels.array >= 3) & (ph.labels.array <= 7))
    from scipy import ndimage

    _, n = ndimage.label(ndimage.binary_closing(ph.region, iterations=6))
    assert n == 1  # one connected C3-C7 region (discs closed)
    ys = [ph.centers[lab][1] for lab in range(2, 8)]
    assert all(np.diff(ys) > 0)  # C2 above C7 in the image
    assert ph.image.array.dtype == np.uint8 and ph.image.array.std() > 10
