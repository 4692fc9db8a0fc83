"""Evaluate click-to-segment under the four validation conditions of Klein et al. and the
Genant grading, on held-out phantoms and on the real crops with expert masks.

    spineai evaluate vertebral-body [--phantoms 8] [--phantom-seed 6000] [--shared] [--output DIR]

Conditions: *none* (CT at 1 mm, click at the body centre), *translated* (click moved by up to
8/8/5 mm in x/y/z), *resampled* (the CT acquired at a random 1-2 mm spacing per axis), *both*.
DSC and Concurrency are computed on the CT's own grid against the exact phantom body mask.
Genant: every body of each *none* phantom is segmented (``segment_many``, with the phantom's
centroids naming the bodies), and the grade compared with the phantom's exact one for bodies
with at least 20 % height loss (and, as a check, that normal bodies stay normal).
Writes ``DIR/vertebral_body_eval.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from SpineAILib.errors import InputError
from SpineAILib.metrics import concurrency, dice
from SpineAILib.training.real_ct import default_data_root
from SpineAILib.vertebra_body.data import phantom_body_case, real_body_cases
from SpineAILib.vertebra_body.genant import genant
from SpineAILib.vertebra_body.predict import grade_results, segment

CONDITIONS = ("none", "translated", "resampled", "both")
TRANSLATE_MM = np.array([8.0, 8.0, 5.0])


def _condition_case(seed: int, condition: str):
    rng = np.random.default_rng(seed + 7919)
    spacing = (1.0, 1.0, 1.0)
    if condition in ("resampled", "both"):
        spacing = tuple(float(s) for s in rng.uniform(1.0, 2.0, 3))
    return phantom_body_case(seed, spacing=spacing), rng


def evaluate_conditions(n_phantoms: int, seed0: int, device: str = "auto", models_dir=None, log=print) -> dict:
    out = {}
    for cond in CONDITIONS:
        rows = []
        for i in range(n_phantoms):
            case, rng = _condition_case(seed0 + i, cond)
            for lab, centre in sorted(case.centers.items()):
                click = np.asarray(centre, float)
                if cond in ("translated", "both"):
                    click = click + rng.uniform(-1, 1, 3) * TRANSLATE_MM
                ref = case.bodies.array == lab
                try:
                    r = segment(case.image, click, space="LPS", device=device, models_dir=models_dir)
                    pred = r.mask
                except Exception as exc:  # noqa: BLE001 - a failed click counts as an empty mask
                    log(f"  {case.name} {lab}: {exc}")
                    pred = np.zeros_like(ref)
                rows.append({"case": case.name, "label": int(lab), "dsc": dice(pred, ref),
                             "concurrency": concurrency(pred, ref)})
        d = np.array([r["dsc"] for r in rows])
        c = np.array([r["concurrency"] for r in rows])
        out[cond] = {"n": len(rows), "dsc_mean": float(d.mean()), "dsc_std": float(d.std()),
                     "dsc_min": float(d.min()), "concurrency_mean": float(c.mean()),
                     "concurrency_std": float(c.std()), "rows": rows}
        log(f"{cond}: DSC {d.mean():.4f} +- {d.std():.4f} (min {d.min():.3f}), concurrency {c.mean():.4f} "
            f"({len(rows)} bodies)")
    return out


def evaluate_genant(n_phantoms: int, seed0: int, device: str = "auto", models_dir=None, log=print) -> dict:
    rows = []
    for i in range(n_phantoms):
        case = phantom_body_case(seed0 + i)
        labs = sorted(case.centers)
        # segment_many body by body: a body not found at its centre (seen: a thin crushed one)
        # counts as ungraded, and the others are graded together without it
        results, notes = {}, {}
        for lab in labs:
            try:
                results[lab] = segment(case.image, case.centers[lab], "LPS", case.centers, device, models_dir,
                                       index=len(results) + 1)
            except InputError as exc:
                notes[lab] = str(exc)
        grade_results(list(results.values()))
        for k, lab in enumerate(labs):
            h = case.heights[lab]
            neigh = [case.heights[labs[j]]["posterior"] for j in (k - 1, k + 1) if 0 <= j < len(labs)]
            truth = genant(h["anterior"], h["middle"], h["posterior"], neigh)
            r = results.get(lab)
            g = None if r is None else r.genant
            rows.append({"case": case.name, "label": int(lab), "true_grade": truth.grade,
                         "true_loss": round(truth.height_loss, 4), "true_type": case.deformity.get(lab, ("none", 0))[0],
                         "pred_grade": None if g is None else g.grade,
                         "pred_loss": None if g is None else round(g.height_loss, 4),
                         "height_errors_mm": None if r is None else [round(r.heights[key] - h[key], 2)
                                                                     for key in ("anterior", "middle", "posterior")],
                         **({"note": notes[lab]} if lab in notes else {})})
            if lab in notes:
                log(f"{case.name} {lab}: {notes[lab]}")
    frac = [r for r in rows if r["true_loss"] >= 0.20]
    normal = [r for r in rows if r["true_loss"] < 0.15]
    errs = np.abs(np.array([r["height_errors_mm"] for r in rows if r["height_errors_mm"] is not None]))
    out = {"n": len(rows), "n_fractured": len(frac), "not_found": sum("note" in r for r in rows),
           "grade_correct_fractured": float(np.mean([r["pred_grade"] == r["true_grade"] for r in frac])) if frac
           else None,
           "fracture_detected": float(np.mean([(r["pred_grade"] or 0) >= 1 for r in frac])) if frac else None,
           "normal_kept_normal": float(np.mean([r["pred_grade"] == 0 for r in normal])) if normal else None,
           "height_abs_error_mm": {"mean": float(errs.mean()), "median": float(np.median(errs)),
                                   "p90": float(np.percentile(errs, 90))},
           "rows": rows}
    log(f"Genant: grade correct for {out['grade_correct_fractured']} of {len(frac)} bodies with >= 20 % loss; "
        f"normal kept normal {out['normal_kept_normal']}; height error mean {errs.mean():.2f} mm")
    return out


def evaluate_real(data_root, device: str = "auto", models_dir=None, log=print) -> list[dict]:
    rows = []
    for case in real_body_cases(data_root):
        for lab, centre in sorted(case.centers.items()):
            ref = case.bodies.array == lab
            try:
                r = segment(case.image, centre, space="LPS", device=device, models_dir=models_dir)
                pred, note = r.mask, ""
            except Exception as exc:  # noqa: BLE001
                pred, note = np.zeros_like(ref), str(exc)
            rows.append({"case": case.name, "label": int(lab), "dsc": dice(pred, ref),
                         "concurrency": concurrency(pred, ref), "note": note})
            log(f"{case.name} {lab}: DSC {rows[-1]['dsc']:.3f} concurrency {rows[-1]['concurrency']:.3f} {note}")
    return rows


def to_markdown(report: dict) -> str:
    lines = ["# Vertebral body segmentation", "", "| condition | bodies | DSC mean +- std (min) | Concurrency |",
             "|---|---|---|---|"]
    for cond, s in report.get("conditions", {}).items():
        lines.append(f"| {cond} | {s['n']} | {s['dsc_mean']:.4f} +- {s['dsc_std']:.4f} ({s['dsc_min']:.3f}) | "
                     f"{s['concurrency_mean']:.4f} |")
    g = report.get("genant")
    if g:
        lines += ["", f"Genant: {g['n']} bodies, {g['n_fractured']} with >= 20 % height loss; grade correct "
                      f"{g['grade_correct_fractured']}, fracture detected {g['fracture_detected']}, normal kept "
                      f"normal {g['normal_kept_normal']}; |height error| mean "
                      f"{g['height_abs_error_mm']['mean']:.2f} mm, p90 {g['height_abs_error_mm']['p90']:.2f} mm; "
                      f"bodies not found at their centre: {g.get('not_found', 0)}."]
    if report.get("real"):
        lines += ["", "| real case | vertebra | DSC | Concurrency |", "|---|---|---|---|"]
        for r in report["real"]:
            lines.append(f"| {r['case']} | {r['label']} | {r['dsc']:.3f} | {r['concurrency']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="spineai evaluate vertebral-body", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--phantoms", type=int, default=8)
    p.add_argument("--phantom-seed", type=int, default=6000, help="held out: training uses seeds 2000+")
    p.add_argument("--genant-phantoms", type=int, default=12)
    p.add_argument("--shared", action="store_true", help="also the real crops in $SPINEAI_DATA/ct")
    p.add_argument("--output", default="spineai-eval-vertebral-body")
    p.add_argument("--device", default="auto")
    p.add_argument("--models-dir", default=None)
    a = p.parse_args(argv)
    report = {}
    if a.phantoms:
        report["conditions"] = evaluate_conditions(a.phantoms, a.phantom_seed, a.device, a.models_dir)
    if a.genant_phantoms:
        report["genant"] = evaluate_genant(a.genant_phantoms, a.phantom_seed + 500, a.device, a.models_dir)
    if a.shared:
        root = default_data_root()
        report["real"] = evaluate_real(root, a.device, a.models_dir)
    out = Path(a.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "vertebral_body_eval.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    (out / "vertebral_body_eval.md").write_text(to_markdown(report), encoding="utf-8")
    print(f"Wrote {out}/vertebral_body_eval.json and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
