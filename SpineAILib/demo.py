"""``spineai demo``: phantoms -> every pipeline that exists -> a Slicer scene, a PNG, a report.

The demo writes the phantoms' ground truth through the same scene layer the tasks use and
checks the written scene against it after reloading the .mrb (the ``scene_roundtrip`` entry
of the report), then runs every task that exists (``cobb``: the landmark model on the AP
phantom, compared with the phantom's exact geometry; ``cervical``: the region-aware localiser
on the lateral phantom, against its C3-C7 mask; ``xray_vertebrae``: the lateral labelling model on the
whole-spine lateral phantom, against its corners; ``vertebrae``: labelled centroids on the CT
phantom; ``vertebral_body``: a click on every labelled body, with Dice, heights and Genant
against the phantom (L1 wedge 30 %, L3 crush 30 %); ``fracture``: the voxel classifier).
Each task has its own entry, shaped
``{"metrics": {...prediction vs phantom ground truth...}, "seconds": float}``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from SpineAILib import anatomy, render
from SpineAILib import scene as sc
from SpineAILib.errors import ModelError
from SpineAILib.info import device_summary, versions
from SpineAILib.io.image import lps_to_ras
from SpineAILib.metrics import dice
from SpineAILib.phantoms import (
    APPhantom,
    CervicalPhantom,
    CervicalPhantomConfig,
    CTPhantom,
    CTPhantomConfig,
    LateralSpinePhantom,
    ap_radiograph_phantom,
    ct_spine_phantom,
    lateral_cervical_phantom,
    lateral_spine_phantom,
)
from SpineAILib.progress import CancelToken, ProgressCallback, check_cancel
from SpineAILib.scene.spine import landmark_names, write_centroids, write_landmarks_2d, write_vertebra_labels
from SpineAILib.tasks import TASKS

DEFAULT_OUTPUT = "spineai-demo"


def _p(progress: ProgressCallback | None, f: float, msg: str) -> None:
    if progress is not None:
        progress(f, msg)


@dataclass
class DemoContext:
    """What a task's demo entry (:attr:`SpineAILib.tasks.Task.demo`) works on: the phantoms, the
    scene and its input nodes, the device; each entry adds its prediction to ``predictions``
    (by task name) for the overview and for entries that build on it."""

    ct: CTPhantom
    ap: APPhantom
    cervical: CervicalPhantom
    lateral: LateralSpinePhantom
    scene: Any
    nodes: dict[str, Any]
    device: str
    predictions: dict[str, Any] = field(default_factory=dict)


def run_demo(
    output: str | Path = DEFAULT_OUTPUT,
    device: str = "auto",
    seed: int = 0,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """Build the phantoms, run the pipelines, write ``output``/{spineai-demo.mrb, overview.png,
    report.json}. Returns the report dict."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    tasks: dict[str, Any] = {}

    t0 = time.perf_counter()
    _p(progress, 0.02, "building CT phantom")
    ct = ct_spine_phantom(CTPhantomConfig(first="T11", last="L4", spacing=(1.2, 1.2, 1.5), seed=seed,
                                          height_loss={"L1": ("wedge", 0.3), "L3": ("crush", 0.3)}))
    check_cancel(cancel)
    _p(progress, 0.35, "building radiograph phantoms")
    ap = ap_radiograph_phantom()
    cerv = lateral_cervical_phantom(CervicalPhantomConfig(seed=seed, rotation_deg=5.0))
    lateral = lateral_spine_phantom()
    check_cancel(cancel)
    phantom_seconds = time.perf_counter() - t0

    # ---------------------------------------------------------------- scene (ground truth)
    t1 = time.perf_counter()
    _p(progress, 0.45, "writing the scene")
    scene = sc.new_scene()
    ct_node = sc.add_volume(scene, ct.image, "Phantom CT")
    write_vertebra_labels(scene, ct.labels, ct_node, "Phantom vertebrae (ground truth)")
    write_centroids(scene, ct.centroids, "Phantom centroids (ground truth)")
    labs = sorted(ct.heights, key=anatomy.ORDER.index)
    sc.add_table(scene, "Phantom vertebral heights (ground truth)", {
        "Vertebra": [anatomy.vertebra_name(lab) for lab in labs],
        "Anterior height (mm)": [ct.heights[lab]["anterior"] for lab in labs],
        "Middle height (mm)": [ct.heights[lab]["middle"] for lab in labs],
        "Posterior height (mm)": [ct.heights[lab]["posterior"] for lab in labs],
        "Deformity": [ct.deformity.get(lab, ("none", 0.0))[0] for lab in labs],
    })

    sc.add_volume(scene, ap.image, "Phantom AP radiograph")
    write_landmarks_2d(scene, ap.image, ap.landmarks, "Phantom corners (ground truth)")
    names = anatomy.AASCE_VERTEBRAE
    up, low = (names.index(v) for v in ap.main_end_vertebrae)
    lm = ap.landmarks
    lines_px = [(lm[4 * up], lm[4 * up + 1]), (lm[4 * low + 2], lm[4 * low + 3])]
    for (a, b), label in zip(lines_px, (f"{names[up]} upper endplate", f"{names[low]} lower endplate"), strict=True):
        pa, pb = ap.image.pixels_to_lps(np.array([a, b]))
        sc.add_line(scene, label, pa, pb, color=(0.2, 0.7, 1.0))
    # Angle markup whose value is the Cobb angle: arms parallel to the two endplates.
    vertex = np.array([ap.centers[:, 0].max() + 60.0, ap.centers[(up + low) // 2, 1]])
    arm = 80.0
    d_up = (lines_px[0][1] - lines_px[0][0]) / np.linalg.norm(lines_px[0][1] - lines_px[0][0])
    d_low = (lines_px[1][1] - lines_px[1][0]) / np.linalg.norm(lines_px[1][1] - lines_px[1][0])
    pts = ap.image.pixels_to_lps(np.array([vertex + arm * d_up, vertex, vertex + arm * d_low]))
    angle_node = sc.add_angle(scene, f"Main curve {names[up]}-{names[low]}", *pts, color=(1.0, 0.9, 0.2))

    cerv_node = sc.add_volume(scene, cerv.image, "Phantom lateral cervical radiograph")
    region = cerv.image.with_array(cerv.region.astype(np.uint8))
    sc.add_segmentation(scene, region, {1: sc.SegmentSpec(
        "Cervical spine C3-C7 region", (0.3, 0.9, 0.3),
        anatomy.terminology_entry(anatomy.CERVICAL_REGION_CODE))}, "Phantom cervical region (ground truth)", cerv_node)
    lateral_node = sc.add_volume(scene, lateral.image, "Phantom lateral spine radiograph")
    write_landmarks_2d(scene, lateral.image, lateral.centroids, "Phantom lateral vertebrae (ground truth)",
                       labels=list(anatomy.LATERAL_VERTEBRAE))
    check_cancel(cancel)
    _p(progress, 0.7, "saving the scene bundle")
    mrb = sc.save_mrb(scene, out / "spineai-demo.mrb")

    # Reload and compare with the phantoms: the scene layer's geometry must be exact.
    _p(progress, 0.78, "checking the saved scene")
    loaded = sc.load_mrb(mrb)
    c_labels, c_ras = sc.fiducials_ras(loaded.GetFirstNodeByName("Phantom centroids (ground truth)"))
    gt_ras = lps_to_ras(np.array([ct.centroids[anatomy.vertebra_label(n)] for n in c_labels]))
    l_labels, l_ras = sc.fiducials_ras(loaded.GetFirstNodeByName("Phantom corners (ground truth)"))
    gt_l = lps_to_ras(ap.image.pixels_to_lps(ap.landmarks))
    segs = sc.segment_arrays(loaded.GetFirstNodeByName("Phantom vertebrae (ground truth)"), ct.labels)
    dices = [dice(mask, ct.labels.array == anatomy.vertebra_label(name.split()[0])) for name, mask in segs.items()]
    reloaded_angle = loaded.GetFirstNodeByName(angle_node.GetName()).GetAngleDegrees()
    tasks["scene_roundtrip"] = {
        "metrics": {
            "centroid_max_error_mm": float(np.abs(c_ras - gt_ras).max()),
            "landmark_max_error_mm": float(np.abs(l_ras - gt_l).max()),
            "landmark_names_match": l_labels == landmark_names(),
            "vertebra_segments": len(segs),
            "vertebra_segment_min_dice": float(min(dices)),
            "cobb_angle_markup_deg": float(reloaded_angle),
            "cobb_angle_phantom_deg": float(ap.cobb_main_deg),
        },
        "seconds": round(time.perf_counter() - t1, 3),
    }
    # ------------------------------------------------------------ every task, one entry each
    ctx = DemoContext(ct=ct, ap=ap, cervical=cerv, lateral=lateral, scene=scene,
                      nodes={"ct": ct_node, "cervical": cerv_node, "lateral": lateral_node}, device=device)
    with_demo = [t for t in TASKS.values() if t.demo is not None]
    for k, task in enumerate(with_demo):
        check_cancel(cancel)
        _p(progress, 0.82 + 0.06 * k / len(with_demo), f"{task.title} on the phantom")
        try:
            tasks[task.report_key] = task.demo(ctx)
        except ModelError as exc:  # a source checkout without weights still runs the rest of the demo
            tasks[task.report_key] = {"metrics": {}, "seconds": 0.0, "error": str(exc)}
        sc.save_mrb(scene, mrb)

    tasks["phantoms"] = {"metrics": {"ct_size_xyz": list(ct.image.size), "ct_vertebrae": len(ct.centroids),
                                     "ap_landmarks": int(len(ap.landmarks))},
                         "seconds": round(phantom_seconds, 3)}
    check_cancel(cancel)

    # ------------------------------------------------------------------------- overview
    _p(progress, 0.88, "rendering the overview")
    fig, axes = render.figure(4, 4.2, 6.5)
    vert_pred, cobb_pred, cerv_pred = (ctx.predictions.get(k) for k in ("vertebrae", "cobb", "cervical"))
    if vert_pred is not None and vert_pred.found:
        render.ct_coronal(axes[0], ct.image, vert_pred.labels, vert_pred.centroids,
                          "CT phantom: predicted vertebra labels")
    else:
        render.ct_coronal(axes[0], ct.image, ct.labels, ct.centroids, "CT phantom: vertebrae + centroids")
    if cobb_pred is not None:
        m = cobb_pred.angles.main
        text = (f"predicted main {cobb_pred.values[0]:.1f}° ({m.upper_end}-{m.lower_end})\n"
                f"phantom main {ap.cobb_main_deg:.1f}° ({names[up]}-{names[low]})")
        if cobb_pred.low_confidence:
            text += "\nflagged: low confidence"
        render.radiograph(axes[1], ap.image, cobb_pred.landmarks, lines_px, text,
                          title="AP phantom: predicted corners + Cobb")
    else:
        render.radiograph(axes[1], ap.image, ap.landmarks, lines_px,
                          f"Cobb {ap.cobb_main_deg:.1f}° ({names[up]}-{names[low]})", title="AP phantom: 68 corners")
    if cerv_pred is not None:
        render.radiograph(axes[2], cerv.image, region=cerv_pred.region,
                          text=f"Dice {tasks['cervical']['metrics']['dice']:.2f} vs phantom",
                          title="Lateral cervical phantom: predicted C3-C7 region")
    else:
        render.radiograph(axes[2], cerv.image, region=cerv.region, title="Lateral cervical phantom: C3-C7 region")
    lat_pred = ctx.predictions.get("xray-vertebrae")
    if lat_pred is not None and lat_pred.vertebrae:
        pts = np.array([v.centroid for v in lat_pred.vertebrae])
        m = tasks["xray_vertebrae"]["metrics"]
        render.radiograph(axes[3], lateral.image, pts, text=f"{m['found']} found, id rate {m['id_rate']:.2f}",
                          title="Lateral spine phantom: predicted vertebrae")
    else:
        render.radiograph(axes[3], lateral.image, lateral.centroids, title="Lateral spine phantom: C2-S1")
    render.save_figure(fig, out / "overview.png")

    report = {"tasks": tasks, "versions": versions(), "device": device_summary(device),
              "outputs": {"scene": mrb.name, "overview": "overview.png"}}
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    _p(progress, 1.0, "done")
    return report
