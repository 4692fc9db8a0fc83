"""ROC / AUC of fracture detection at the vertebra and patient level (Nicolaes et al.), and the
Genant grading, on held-out phantoms (or any cases with centroids and known fracture status).

    spineai evaluate fracture [--phantoms 16] [--phantom-seed 7000] [--output DIR]

A vertebra is "fractured" when its exact height loss is >= 20 % (Genant grade >= 1); a
patient when any vertebra is. Scores: the classifier's vertebra-level probability (AUC, ROC
points) and the Genant grade from the segmented body (sensitivity/specificity of grade >= 1).
Writes ``DIR/fracture_eval.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from SpineAILib.metrics import roc_auc, roc_points
from SpineAILib.vertebra_body.fracture import assess_fractures
from SpineAILib.vertebra_body.train_fracture import fracture_phantom, phantom_losses


def evaluate_phantoms(n: int, seed0: int, device: str = "auto", models_dir=None, genant: bool = True,
                      log=print) -> dict:

    rows, patients = [], []
    for i in range(n):
        ph = fracture_phantom(seed0 + i)
        losses = phantom_losses(ph)
        res = assess_fractures(ph.image, ph.body_centers, device=device, models_dir=models_dir, genant=genant)
        for v in res.vertebrae:
            rows.append({"case": seed0 + i, "label": v.label, "true_loss": round(losses[v.label], 4),
                         "fractured": bool(losses[v.label] >= 0.2), "probability": v.probability,
                         "genant_grade": None if v.genant is None else v.genant.grade})
        patients.append({"case": seed0 + i, "fractured": any(r["fractured"] for r in rows if r["case"] == seed0 + i),
                         "score": max(v.probability for v in res.vertebrae), "components": len(res.components)})
        log(f"phantom {seed0 + i}: " + " ".join(f"{v.name}:{v.probability:.2f}/{losses[v.label]:.2f}"
                                                 for v in res.vertebrae))
    y = [r["fractured"] for r in rows]
    out = {"n_vertebrae": len(rows), "n_fractured": int(sum(y)),
           "vertebra_auc": roc_auc([r["probability"] for r in rows], y),
           "vertebra_roc": roc_points([r["probability"] for r in rows], y),
           "patient_auc": roc_auc([p["score"] for p in patients], [p["fractured"] for p in patients]),
           "patient_component_rule": {
               "sensitivity": float(np.mean([p["components"] > 0 for p in patients if p["fractured"]]))
               if any(p["fractured"] for p in patients) else None,
               "specificity": float(np.mean([p["components"] == 0 for p in patients if not p["fractured"]]))
               if not all(p["fractured"] for p in patients) else None},
           "rows": rows, "patients": patients}
    graded = [r for r in rows if r["genant_grade"] is not None]
    if graded:
        f = [r for r in graded if r["fractured"]]
        nf = [r for r in graded if not r["fractured"]]
        out["genant_sensitivity"] = float(np.mean([r["genant_grade"] >= 1 for r in f])) if f else None
        out["genant_specificity"] = float(np.mean([r["genant_grade"] == 0 for r in nf])) if nf else None
    log(f"vertebra AUC {out['vertebra_auc']:.3f} ({out['n_fractured']}/{out['n_vertebrae']} fractured), patient AUC "
        f"{out['patient_auc']:.3f}; Genant sensitivity {out.get('genant_sensitivity')}, specificity "
        f"{out.get('genant_specificity')}")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="spineai evaluate fracture", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--phantoms", type=int, default=16)
    p.add_argument("--phantom-seed", type=int, default=7000, help="held out: training uses seeds 3000+")
    p.add_argument("--no-genant", action="store_true", help="classifier only (skip the body segmentation)")
    p.add_argument("--output", default="spineai-eval-fracture")
    p.add_argument("--device", default="auto")
    p.add_argument("--models-dir", default=None)
    a = p.parse_args(argv)
    report = evaluate_phantoms(a.phantoms, a.phantom_seed, a.device, a.models_dir, not a.no_genant)
    out = Path(a.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fracture_eval.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    md = ["# Fracture detection (held-out phantoms)", "",
          f"- vertebrae: {report['n_vertebrae']} ({report['n_fractured']} with >= 20 % height loss)",
          f"- voxel classifier, vertebra level: AUC {report['vertebra_auc']:.3f}",
          f"- voxel classifier, patient level (max vertebra probability): AUC {report['patient_auc']:.3f}",
          f"- patient rule (a fracture component >= 500 mm^3): {report['patient_component_rule']}",
          f"- Genant from the segmented bodies: sensitivity {report.get('genant_sensitivity')}, "
          f"specificity {report.get('genant_specificity')}"]
    (out / "fracture_eval.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    print(f"Wrote {out}/fracture_eval.json and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
