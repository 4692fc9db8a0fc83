"""Fracture assessment on every vertebra of the real CTs in $SPINEAI_DATA/ct with masks, at the
reference centroids (the body centres of the masks): the voxel classifier's probability, the
status (`spineai fracture`'s rule) and the Genant grade where one is given.

None of these vertebrae is known to be fractured (the CTs come without fracture labels; the
sagittal views show no collapsed body), so every one is presumed normal: the classifier should
score them low, and a "fracture" status or a grade other than normal is a false positive. The
shipped classifier's card says which of these CTs its fine-tuning saw (``training.real_ct``).

    python benchmarks/eval_real_fracture.py [--cases a,b] [--no-genant] [--models-dir DIR]

Writes docs/benchmarks/fracture_real/fracture_real.json and .md and prints the table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DOCS, machine, write_report  # noqa: E402

from SpineAILib.training.real_ct import default_data_root, named_ct_cases  # noqa: E402
from SpineAILib.vertebra_body import assess_fractures  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=str(default_data_root()))
    p.add_argument("--cases", default="", help="comma-separated case names (default: all with masks)")
    p.add_argument("--no-genant", action="store_true", help="the classifier only (no body segmentation)")
    p.add_argument("--models-dir", default=None, help="a folder with another fracture_classifier card and weights")
    p.add_argument("--output", default=str(DOCS / "fracture_real"))
    a = p.parse_args()
    cases = [c for c in named_ct_cases(a.data, a.cases) if c.centroids]
    rows = []
    for case in cases:
        t = time.perf_counter()
        r = assess_fractures(case.image, case.centroids, device="cpu", models_dir=a.models_dir,
                             genant=not a.no_genant)
        secs = time.perf_counter() - t
        for v in r.vertebrae:
            rows.append({"case": case.name, "vertebra": v.name, "complete": v.label not in case.partial,
                         "probability": round(float(v.probability), 4), "status": v.status,
                         "grade": None if v.genant is None else v.genant.label, "note": v.note})
        print(f"{case.name:18s} " + ", ".join(f"{v.name} {v.probability:.2f} {v.status}" for v in r.vertebrae)
              + f" ({secs:.1f} s)", flush=True)
    probs = np.array([r["probability"] for r in rows])
    complete = np.array([r["probability"] for r in rows if r["complete"]])

    def summary(x: np.ndarray) -> dict:
        if not len(x):
            return {"n": 0}
        return {"n": int(len(x)), "median": round(float(np.median(x)), 3),
                "p90": round(float(np.percentile(x, 90)), 3), "max": round(float(x.max()), 3),
                "at_or_above_0.5": int((x >= 0.5).sum())}

    report = {"machine": machine(), "all": summary(probs), "complete": summary(complete),
              "graded": sum(r["grade"] is not None for r in rows),
              "graded_not_normal": sum(r["grade"] not in (None, "normal") for r in rows), "rows": rows}
    intro = ("Every vertebra of the real CTs with masks, at the masks' body centres, presumed normal (no fracture "
             "labels; no collapsed body in view): the voxel classifier's probability, the status and the Genant "
             "grade where one is given. A probability >= 0.5 or a grade other than normal is a false positive.")
    md = ["| vertebrae | n | median | 90th percentile | max | >= 0.5 (false positives) |", "|---|---|---|---|---|---|"]
    for name, s in (("all", report["all"]), ("complete (not cut by the field of view)", report["complete"])):
        if s["n"]:
            md.append(f"| {name} | {s['n']} | {s['median']:.2f} | {s['p90']:.2f} | {s['max']:.2f} | "
                      f"{s['at_or_above_0.5']} |")
    md += ["", f"Genant grades given: {report['graded']} (other than normal: {report['graded_not_normal']}).", "",
           "| case | vertebra | complete | probability | status | grade |", "|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['case']} | {r['vertebra']} | {'yes' if r['complete'] else 'no'} | {r['probability']:.3f} | "
                  f"{r['status']} | {r['grade'] or '-'} |")
    print("\n".join(md))
    write_report(a.output, "fracture_real", report, "Fracture assessment on real CT (vertebrae presumed normal)",
                 intro, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
