"""Building blocks of click-to-segment and fracture assessment (issue 5, in progress): height
measurement on phantoms with exact heights, Genant grading at its boundaries, and the
dual-pathway network's size and receptive fields."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from SpineAILib.errors import InputError
from SpineAILib.io.image import Image
from SpineAILib.phantoms import CTPhantomConfig, ct_spine_phantom
from SpineAILib.vertebra_body.genant import genant, grade_from_loss
from SpineAILib.vertebra_body.measure import body_core, find_edge, measure_heights, thinnest_direction
from SpineAILib.vertebra_body.networks import RF_NORMAL, RF_SUBSAMPLED, build_dual_pathway


@pytest.fixture(scope="module")
def deformed():
    cfg = CTPhantomConfig(first="T12", last="L3", spacing=(0.6, 0.6, 0.8), lateral_curve_mm=6, lordosis_mm=4,
                          lateral_fov_mm=70, ap_fov_mm=90, ribs=False, noise_hu=0,
                          height_loss={"L1": ("wedge", 0.3), "L2": ("biconcave", 0.25), "L3": ("crush", 0.45)})
    return ct_spine_phantom(cfg)


def test_heights_measured_in_the_body_plane_match_the_phantom(deformed):
    """With the column direction from the neighbouring centroids (what vertebra labelling
    provides) every height is within a voxel or so of the phantom's exact value."""
    ph = deformed
    c = ph.body_centers
    for lab in (19, 20, 21, 22):
        mask = ph.body_labels.with_array((ph.body_labels.array == lab).astype(np.uint8))
        up, down = c.get(lab - 1, c[lab]), c.get(lab + 1, c[lab])
        m = measure_heights(mask, si_axis=up - down)
        for key in ("anterior", "middle", "posterior"):
            assert m[f"{key}_height_mm"] == pytest.approx(ph.heights[lab][key], abs=1.2), (lab, key)
        assert 5 < m["volume_ml"] < 60


def test_heights_without_neighbours_on_symmetric_bodies(deformed):
    """Alone, the body's principal axes give the axis; fine for bodies without a wedge."""
    ph = deformed
    for lab in (19, 21, 22):  # normal, biconcave, crush
        mask = ph.body_labels.with_array((ph.body_labels.array == lab).astype(np.uint8))
        m = measure_heights(mask)
        for key in ("anterior", "middle", "posterior"):
            assert m[f"{key}_height_mm"] == pytest.approx(ph.heights[lab][key], abs=1.5), (lab, key)


def _rotation(tilt_deg: float, twist_deg: float) -> np.ndarray:
    """Columns: the body's lateral, AP and SI axes in LPS, tilted about lateral then twisted about SI."""
    a, b = np.deg2rad(tilt_deg), np.deg2rad(twist_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    rz = np.array([[np.cos(b), -np.sin(b), 0], [np.sin(b), np.cos(b), 0], [0, 0, 1]])
    return rz @ rx


def _real_like_body(rot: np.ndarray, leak: bool = True):
    """A box body 44 (lateral) x 32 (AP) x 30 mm (SI) with the canal's notch in its posterior
    wall (4 mm deep at the midline) and, with ``leak``, a 3 x 3 mm pedicle stub 10 mm long off
    one posterior corner (what a segmentation leaks into), on a grid with anisotropic spacing, an
    origin and an oblique direction. Returns (mask image, CT image: 700 HU bone, 0 HU outside,
    blurred like a scanner)."""
    from scipy import ndimage

    grid_dir = _rotation(8.0, -20.0)
    img = Image(np.zeros((40, 70, 64), np.float32), spacing=(0.9, 0.8, 1.25), origin=(-31.0, -20.0, 7.0),
                direction=grid_dir)
    centre = img.index_to_physical(np.array([[32.0, 35.0, 20.0]]))[0]
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in img.array.shape[::-1]], indexing="ij"), -1).reshape(-1, 3)
    q = (img.index_to_physical(idx.astype(float)) - centre) @ rot  # body frame: lateral, AP, SI
    lat, ap, si = q[:, 0], q[:, 1], q[:, 2]
    body = (np.abs(lat) <= 22) & (np.abs(ap) <= 16) & (np.abs(si) <= 15)
    body &= ~((np.abs(lat) < 10) & (ap > 16 - 4 * (1 - (lat / 10) ** 2)))  # concave posterior wall
    if leak:
        body |= (lat > 14) & (lat < 17) & (ap > 14) & (ap < 26) & (si > -8) & (si < -5)
    mask = body.reshape(img.array.shape[::-1]).transpose(2, 1, 0)
    ct = ndimage.gaussian_filter(np.where(mask, 700.0, 0.0), 0.6).astype(np.float32)
    return img.with_array(mask.astype(np.uint8)), img.with_array(ct)


def test_thinnest_direction_is_the_endplate_normal():
    """Points filling a tilted box whose SI axis is 14 degrees off the start guess: the thinnest
    direction is the box's SI axis within 0.3 degrees, also for a square sagittal section
    (30 x 30 mm, the real L2's shape) where the axis of least variance is undetermined."""
    rng = np.random.default_rng(0)
    rot = _rotation(14.0, 25.0)
    for half in ([22, 17, 14], [22, 15, 15]):
        pts = (rng.uniform(-1, 1, (20000, 3)) * half) @ rot.T
        d = thinnest_direction(pts, np.array([0.0, 0.0, 1.0]))
        assert np.degrees(np.arccos(min(1.0, abs(d @ rot[:, 2])))) < 0.3, half


def test_body_core_drops_a_pedicle_leak_and_keeps_the_body():
    mask, _ = _real_like_body(_rotation(15.0, 10.0))
    without, _ = _real_like_body(_rotation(15.0, 10.0), leak=False)
    core = body_core(mask.array > 0, mask.spacing, 3.0)
    stub = (mask.array > 0) & ~(without.array > 0)
    assert stub.sum() > 20 and (core & stub).sum() <= 0.2 * stub.sum()  # the stub is gone (bar its root)
    assert core.sum() > 0.9 * without.array.sum()  # the body is not
    thin = np.zeros((30, 30, 30), bool)
    thin[10:20, 14:16, 10:20] = True  # a 2-voxel plate has no core: the mask comes back unchanged
    assert (body_core(thin, (1.0, 1.0, 1.0), 3.0) == thin).all()


@pytest.mark.parametrize("tilt", [0.0, 15.0])
def test_heights_of_a_real_shaped_body_without_centroids(tilt):
    """A body with a concave posterior wall and a pedicle leak, alone (no centroids), tilted,
    on an oblique anisotropic grid: anterior/middle/posterior heights are its 30 mm, within the
    +-0.5 voxel steps of a box rasterised on a 1.25 mm oblique grid. (On the
    real spineFE L2 the least-variance axis and the whole mask's AP extent put the anterior and
    posterior lines off the body: 0 mm and 9-11 mm.) Refined on the CT all 6 ends find an
    endplate edge; on a CT without contrast none do."""
    mask, ct = _real_like_body(_rotation(tilt, 10.0))
    m = measure_heights(mask)
    for key in ("anterior", "middle", "posterior"):
        assert m[f"{key}_height_mm"] == pytest.approx(30.0, abs=1.3), key
    r = measure_heights(mask, hu=ct)
    assert r["edges_found"] == 6
    for key in ("anterior", "middle", "posterior"):
        assert r[f"{key}_height_mm"] == pytest.approx(30.0, abs=1.0), key
    flat = measure_heights(mask, hu=ct.with_array(np.full_like(ct.array, 100.0)))
    assert flat["edges_found"] == 0 and flat["anterior_edges"] == flat["middle_edges"] == flat["posterior_edges"] == 0
    # the click's edge-bias correction moves each edge-found end inwards by exactly that much
    moved = measure_heights(mask, hu=ct, edge_bias_mm=0.125)
    for key in ("anterior", "middle", "posterior"):
        assert r[f"{key}_edges"] == moved[f"{key}_edges"] == 2, key
        assert moved[f"{key}_height_mm"] == pytest.approx(r[f"{key}_height_mm"] - 0.25, abs=1e-9), key
    unmoved = measure_heights(mask, hu=ct.with_array(np.full_like(ct.array, 100.0)), edge_bias_mm=0.125)
    assert unmoved["anterior_height_mm"] == flat["anterior_height_mm"]  # no edge found: the mask's end stays


@pytest.mark.parametrize("sigma", [0.5, 0.8, 1.0])
def test_find_edge_finds_a_blurred_step_exactly(sigma):
    """A bone plateau (700 HU) ending at t = 3.37 mm, blurred by a Gaussian: the steepest fall
    is the edge, from either side of a starting guess up to 0.6 mm off (a segmentation's
    error). With a 1.5 mm cortical endplate (900 HU) over trabecular bone (220 HU) the edge is
    still found within 0.1 mm at the phantoms' blur."""
    from scipy.special import erf

    t = np.arange(-10, 10, 0.1)
    up = 90 + 610 * 0.5 * (1 - erf((t - 3.37) / (np.sqrt(2) * sigma)))  # bone below t = 3.37, disc above
    for guess in (2.77, 3.37, 3.97):
        assert find_edge(t, up, guess, +1, search_mm=2.5) == pytest.approx(3.37, abs=0.05)
    down = up[::-1].copy()  # mirrored: bone above t = -3.37 (same samples reversed)
    assert find_edge(t[::-1] * -1, down, -3.0, -1, search_mm=2.5) == pytest.approx(-3.37, abs=0.02)
    assert find_edge(t, np.full_like(t, 300.0), 1.0, +1) is None  # no contrast: no edge (the end stays)
    from scipy.ndimage import gaussian_filter1d

    shell = np.where(t < 3.37 - 1.5, 220.0, np.where(t < 3.37, 900.0, 90.0))
    blurred = gaussian_filter1d(shell, 0.6 / 0.1)
    assert find_edge(t, blurred, 3.0, +1) == pytest.approx(3.37, abs=0.1)


def test_heights_refined_on_the_ct_undo_an_eroded_mask(deformed):
    """A mask one voxel too small everywhere (what a smoothing network does at a deformity)
    loses about 1.6 mm of height; refined on the CT's endplate edges the heights are back
    within half a millimetre of the phantom's."""
    from scipy import ndimage

    ph = deformed
    c = ph.body_centers
    for lab in (20, 21):  # wedge, biconcave
        body = ph.body_labels.array == lab
        eroded = ph.body_labels.with_array(ndimage.binary_erosion(body).astype(np.uint8))
        axis = c[lab - 1] - c[lab + 1]
        raw = measure_heights(eroded, si_axis=axis)
        refined = measure_heights(eroded, si_axis=axis, hu=ph.image)
        for key in ("anterior", "middle", "posterior"):
            assert raw[f"{key}_height_mm"] < ph.heights[lab][key] - 1.0, (lab, key)
            assert refined[f"{key}_height_mm"] == pytest.approx(ph.heights[lab][key], abs=0.5), (lab, key)


def test_genant_grades_the_phantom_deformities(deformed):
    ph = deformed
    h = {lab: ph.heights[lab] for lab in ph.heights}
    wedge = genant(h[20]["anterior"], h[20]["middle"], h[20]["posterior"])
    assert (wedge.label, wedge.deformity) == ("moderate", "wedge") and wedge.height_loss == pytest.approx(0.3)
    bic = genant(h[21]["anterior"], h[21]["middle"], h[21]["posterior"])
    assert (bic.label, bic.deformity) == ("moderate", "biconcave")
    crush = genant(h[22]["anterior"], h[22]["middle"], h[22]["posterior"],
                   neighbour_posterior=[h[21]["posterior"]])
    assert (crush.label, crush.deformity) == ("severe", "crush")
    normal = genant(h[19]["anterior"], h[19]["middle"], h[19]["posterior"])
    assert (normal.grade, normal.deformity) == (0, "none")


@pytest.mark.parametrize(("loss", "grade"), [(0.0, 0), (0.1999, 0), (0.20, 1), (0.2499, 1), (0.25, 2), (0.40, 2),
                                             (0.4001, 3), (0.9, 3)])
def test_genant_boundaries(loss, grade):
    assert grade_from_loss(loss) == grade
    assert genant(20 * (1 - loss), 20.0, 20.0).grade == grade


def test_genant_rejects_bad_heights():
    with pytest.raises(InputError, match="positive"):
        genant(0.0, 20.0, 20.0)


def test_dual_pathway_size_and_receptive_fields():
    net = build_dual_pathway().eval()
    n = sum(p.numel() for p in net.parameters())
    assert abs(n - 230_000) / 230_000 < 0.02
    assert (RF_NORMAL, RF_SUBSAMPLED) == (17, 51)
    normal = torch.zeros(1, 1, 19 + 16, 19 + 16, 19 + 16, requires_grad=True)
    low = torch.zeros(1, 1, 7 + 16, 7 + 16, 7 + 16, requires_grad=True)
    with pytest.raises(ValueError, match="pathway outputs differ"):
        net(normal, low)  # 7 * 3 = 21 != 19: shapes must be consistent
    normal = torch.zeros(1, 1, 21 + 16, 21 + 16, 21 + 16, requires_grad=True)
    out = net(normal, low)
    assert out.shape == (1, 3, 21, 21, 21)
    out[0, 0, 10, 10, 10].backward()
    # Receptive field of one output voxel: 17 voxels in the normal input, 17 low-res voxels
    # (= 51 original voxels) in the subsampled input.
    g = normal.grad[0, 0].abs().sum(dim=(1, 2))
    assert int((g > 0).sum()) == 17
    gl = low.grad[0, 0].abs().sum(dim=(1, 2))
    assert int((gl > 0).sum()) == 17


def test_no_grade_from_heights_the_ct_does_not_confirm():
    """Heights whose ends mostly lack an endplate edge in the CT (a partial segment) get no
    Genant grade and a warning that says why; a missing height likewise; confirmed heights are
    graded (with the neighbours' posterior heights, a crush)."""
    from SpineAILib.vertebra_body.predict import MIN_EDGES_FOR_GRADE, grade_heights

    h = {"anterior": 16.0, "middle": 16.5, "posterior": 17.0}
    g, w = grade_heights(h, MIN_EDGES_FOR_GRADE - 1)
    assert g is None and "endplate edge" in w[0] and "no Genant grade" in w[0]
    g, w = grade_heights({**h, "anterior": 0.0}, 6)
    assert g is None and "could not be measured" in w[0]
    g, w = grade_heights(h, MIN_EDGES_FOR_GRADE, neighbour_posterior_mm=[28.0, 29.0])
    assert w == [] and (g.label, g.deformity) == ("severe", "crush")


def test_grades_along_the_column_use_confirmed_neighbours_only():
    """Three bodies head to feet, 25 mm apart; the middle one is a 44 % crush (posterior 14 mm
    against 25 mm neighbours). With all confirmed it is severe by the crush ratio; with the
    upper neighbour unconfirmed only the lower one counts (same answer); with both unconfirmed
    (or farther than 50 mm) it has no reference and reads normal; an unconfirmed body gets no
    grade at all."""
    from SpineAILib.vertebra_body.predict import grade_along_column

    h = [{"anterior": 25.0, "middle": 25.0, "posterior": 25.0}, {"anterior": 14.0, "middle": 14.0, "posterior": 14.0},
         {"anterior": 25.0, "middle": 25.0, "posterior": 25.0}]
    pos = [np.array([0.0, 0.0, z]) for z in (0.0, -25.0, -50.0)]
    g = grade_along_column(h, pos, [True, True, True])
    assert (g[1].label, g[1].deformity) == ("severe", "crush") and g[1].height_loss == pytest.approx(0.44)
    assert g[0].label == "normal" and g[2].label == "normal"
    g = grade_along_column(h, pos, [False, True, True])
    assert g[0] is None and g[1].label == "severe"
    assert grade_along_column(h, pos, [False, True, False])[1].label == "normal"
    far = [np.array([0.0, 0.0, z]) for z in (0.0, -60.0, -120.0)]
    assert grade_along_column(h, far, [True, True, True])[1].label == "normal"


def test_grade_results_grades_bodies_given_in_any_order_along_the_column():
    """The same three bodies as above, given feet first and out of order: each gets the grade
    it gets head to feet (the crushed middle one severe), written into the results themselves;
    a body without a grade of its own (unconfirmed heights) stays ungraded; no bodies, no error."""
    from SpineAILib.vertebra_body.genant import genant
    from SpineAILib.vertebra_body.predict import BodyResult, grade_results

    def body(z, height):
        h = {"anterior": height, "middle": height, "posterior": height}
        return BodyResult("body", None, np.array([0.0, 0.0, z]), np.zeros((1, 1, 1), bool), 1.0, 200.0, h,
                          genant=genant(height, height, height))

    results = [body(-50.0, 25.0), body(-25.0, 14.0), body(0.0, 25.0)]
    out = grade_results(results)
    assert out is results
    assert [r.genant.label for r in results] == ["normal", "severe", "normal"]
    results = [body(-25.0, 14.0), body(0.0, 25.0), body(-50.0, 25.0)]
    results[1].genant = None  # the upper neighbour unconfirmed: the lower one still grades the crush
    grade_results(results)
    assert results[0].genant.label == "severe" and results[1].genant is None
    assert grade_results([]) == []
