"""``spineai demo``: phantoms -> every pipeline that exists -> a Slicer scene, a PNG, a report.

The demo writes the phantoms' ground truth through the same scene layer the tasks use and
checks the written scene against it after reloading the .mrb (the ``scene_roundtrip`` entry
of the report), then runs every task that exists (``cobb``: the landmark model on the AP
phantom, compared with the phantom's exact geometry; ``cervical``: the region-aware localiser
on the lateral phantom, against its C3-C7 mask; ``vertebrae``: labelled centroids on the CT
phantom; ``vertebral_body``: a click on every labelled body, with Dice, heights and Genant
against the phantom (L1 wedge 30 %, L3 crush 30 %); ``fracture``: the voxel classifier).
Each task has its own entry, shaped
``{"metrics": {...prediction vs phantom ground truth...}, "seconds": float}``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from SpineAILib import anatomy, render
from SpineAILib.errors import ModelError
from SpineAILib.io.image import lps_to_ras
from SpineAILib.phantoms import (
    CervicalPhantomConfig,
    CTPhantomConfig,
    ap_radiograph_phantom,
    ct_spine_phantom,
    lateral_cervical_phantom,
)
from SpineAILib.progress import CancelToken, ProgressCallback, check_cancel

DEFAULT_OUTPUT = "spineai-demo"


def _p(progress: ProgressCallback | None, f: float, msg: str) -> None:
    if progress is not None:
        progress(f, msg)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else float(2 * np.logical_and(a, b).sum() / s)


def run_demo(
    output: str | Path = DEFAULT_OUTPUT,
    device: str = "auto",
    seed: int = 0,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """Build the phantoms, run the pipelines, write ``output``/{spineai-demo.mrb, overview.png,
    report.json}. Returns the report dict."""
    from SpineAILib import scene as sc
    from SpineAILib.info import device_summary, versions
    from SpineAILib.scene.spine import landmark_names, write_centroids, write_landmarks_2d, write_vertebra_labels

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
    dices = [_dice(mask, ct.labels.array == anatomy.vertebra_label(name.split()[0])) for name, mask in segs.items()]
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
    # ------------------------------------------------------------------ Cobb angles (AP)
    check_cancel(cancel)
    _p(progress, 0.82, "Cobb angles on the AP phantom")
    cobb_pred = None
    try:
        from SpineAILib.cobb import cobb_angles, estimate, smape
        from SpineAILib.cobb.scene import write_cobb_result

        t2 = time.perf_counter()
        cobb_pred = estimate(ap.image, device=device)
        seconds = time.perf_counter() - t2
        gt = cobb_angles(ap.landmarks, ap.image.array.shape[0])
        write_cobb_result(scene, ap.image, cobb_pred, prefix="Predicted Cobb")
        sc.save_mrb(scene, mrb)
        tasks["cobb"] = {
            "metrics": {
                "smape_percent": smape([cobb_pred.values], [gt.values]),
                "main_abs_error_deg": abs(cobb_pred.values[0] - gt.values[0]),
                "predicted_deg": [round(v, 2) for v in cobb_pred.values],
                "phantom_deg": [round(v, 2) for v in gt.values],
                "landmark_mean_error_px": float(np.linalg.norm(cobb_pred.landmarks - ap.landmarks, axis=1).mean()),
                "confidence": cobb_pred.confidence,
                "low_confidence": cobb_pred.low_confidence,
            },
            "seconds": round(seconds, 3),
        }
    except ModelError as exc:  # a source checkout without weights still runs the rest of the demo
        tasks["cobb"] = {"metrics": {}, "seconds": 0.0, "error": str(exc)}

    # ------------------------------------------------------- cervical localisation (lateral)
    check_cancel(cancel)
    _p(progress, 0.85, "cervical localisation on the lateral phantom")
    cerv_pred = None
    try:
        from SpineAILib.cervical import localize
        from SpineAILib.cervical.metrics import binary_metrics
        from SpineAILib.cervical.scene import write_cervical_result

        t3 = time.perf_counter()
        cerv_pred = localize(cerv.image, device=device)
        seconds = time.perf_counter() - t3
        write_cervical_result(scene, cerv.image, cerv_pred, cerv_node, prefix="Predicted cervical")
        sc.save_mrb(scene, mrb)
        m = binary_metrics(cerv_pred.region, cerv.region)
        tasks["cervical"] = {"metrics": {**{k: m[k] for k in ("dice", "sensitivity", "specificity")},
                                         "regions_predicted": cerv_pred.regions_predicted, "found": cerv_pred.found,
                                         "axis_angle_deg": cerv_pred.axis_angle_deg},
                             "seconds": round(seconds, 3)}
    except ModelError as exc:
        tasks["cervical"] = {"metrics": {}, "seconds": 0.0, "error": str(exc)}

    # ------------------------------------------------- CT: vertebra labelling, bodies, fractures
    check_cancel(cancel)
    _p(progress, 0.86, "vertebra labelling on the CT phantom")
    vert_pred = None
    try:
        from SpineAILib.vertebrae import locate
        from SpineAILib.vertebrae.evaluate import match, summarize
        from SpineAILib.vertebrae.scene import write_vertebrae_result

        t4 = time.perf_counter()
        vert_pred = locate(ct.image, device=device)
        seconds = time.perf_counter() - t4
        write_vertebrae_result(scene, vert_pred, ct_node, "Predicted vertebra")
        sc.save_mrb(scene, mrb)
        s_all = summarize(match(vert_pred.centroids, ct.body_centers))["all"]
        tasks["vertebrae"] = {"metrics": {"id_rate": s_all["id_rate"], "mean_error_mm": s_all["error_mean_mm"],
                                          "found": vert_pred.names(),
                                          "phantom": [anatomy.vertebra_name(v) for v in sorted(ct.body_centers)]},
                              "seconds": round(seconds, 3)}
    except ModelError as exc:
        tasks["vertebrae"] = {"metrics": {}, "seconds": 0.0, "error": str(exc)}

    check_cancel(cancel)
    _p(progress, 0.87, "vertebral bodies and fractures on the CT phantom")
    try:
        from SpineAILib.fracture import assess
        from SpineAILib.fracture.scene import write_fracture_result
        from SpineAILib.vertebra_body import segment_many
        from SpineAILib.vertebra_body.metrics import dsc
        from SpineAILib.vertebra_body.scene import write_body_results

        # Clicks where a user would click (each body's centre) and names from the phantom's
        # centroids, so this entry measures segmentation and grading on their own.
        cents = ct.body_centers
        t5 = time.perf_counter()
        bodies = segment_many(ct.image, [cents[v] for v in sorted(cents)], "LPS", cents, device=device)
        seconds = time.perf_counter() - t5
        write_body_results(scene, ct.image, bodies, ct_node, "Predicted vertebral body")
        metrics = {}
        for b in bodies:
            if b.label is None or b.label not in ct.heights:
                continue
            name = anatomy.vertebra_name(b.label)
            metrics[name] = {"dice": round(dsc(b.mask, ct.body_labels.array == b.label), 4),
                             "genant": b.genant.label if b.genant else None,
                             "phantom_deformity": ct.deformity.get(b.label, ("none", 0.0))[0],
                             "height_errors_mm": [round(b.heights[k] - ct.heights[b.label][k], 2)
                                                  for k in ("anterior", "middle", "posterior")]}
        tasks["vertebral_body"] = {"metrics": metrics, "seconds": round(seconds, 3),
                                   "seconds_per_click": round(seconds / max(len(bodies), 1), 3)}
        t6 = time.perf_counter()
        frac = assess(ct.image, cents, device=device, genant=False)
        for v in frac.vertebrae:  # Genant from the bodies just measured (same clicks)
            match_b = [b for b in bodies if b.label == v.label]
            if match_b and match_b[0].genant is not None:
                v.genant, v.heights = match_b[0].genant, match_b[0].heights
        write_fracture_result(scene, frac, "Predicted fracture")
        sc.save_mrb(scene, mrb)
        tasks["fracture"] = {"metrics": {v.name: {"probability": round(v.probability, 3), "status": v.status}
                                         for v in frac.vertebrae} | {"patient_fractured": frac.patient_fractured},
                             "seconds": round(time.perf_counter() - t6, 3)}
    except ModelError as exc:
        tasks["vertebral_body"] = {"metrics": {}, "seconds": 0.0, "error": str(exc)}
        tasks["fracture"] = {"metrics": {}, "seconds": 0.0, "error": str(exc)}

    tasks["phantoms"] = {"metrics": {"ct_size_xyz": list(ct.image.size), "ct_vertebrae": len(ct.centroids),
                                     "ap_landmarks": int(len(ap.landmarks))},
                         "seconds": round(phantom_seconds, 3)}
    check_cancel(cancel)

    # ------------------------------------------------------------------------- overview
    _p(progress, 0.88, "rendering the overview")
    fig, axes = render.figure(3, 4.2, 6.5)
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
    render.save_figure(fig, out / "overview.png")

    report = {"tasks": tasks, "versions": versions(), "device": device_summary(device),
              "outputs": {"scene": mrb.name, "overview": "overview.png"}}
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    _p(progress, 1.0, "done")
    return report
