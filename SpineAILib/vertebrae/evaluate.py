"""Evaluate vertebra localisation and identification with the standard metrics (Glocker et al.,
used by McCouat & Glocker): a vertebra is *identified* when the prediction carrying its label lies
within 20 mm of its reference centroid and that reference is the closest one to the prediction;
the *localisation error* is the distance (mm) between the prediction and the reference of the
same label. Both are reported over all vertebrae and per region (cervical, thoracic, lumbar).

    spineai evaluate vertebrae --data VERSE_FOLDER [--data ...] [--output DIR]
    spineai evaluate vertebrae --phantoms 20 [--phantom-seed 5000]
    spineai evaluate vertebrae --shared      # the real samples in $SPINEAI_DATA/ct

Reference vertebrae cut by the field of view (mask-derived centroids) or whose centroid lies
outside the image are not counted. Writes ``DIR/vertebrae_eval.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from SpineAILib import anatomy
from SpineAILib.io import Image
from SpineAILib.io.image import point_inside
from SpineAILib.training.real_ct import default_data_root
from SpineAILib.vertebrae.data import folder_cases, phantom_case, shared_ct_cases
from SpineAILib.vertebrae.predict import locate

ID_RADIUS_MM = 20.0


def match(pred: dict[int, np.ndarray], ref: dict[int, np.ndarray], radius: float = ID_RADIUS_MM) -> list[dict]:
    """One row per reference vertebra: label, region, identified (bool), error_mm (None when the
    label was not predicted)."""
    rows = []
    ref_labels = list(ref)
    ref_pts = np.array([ref[k] for k in ref_labels]).reshape(-1, 3)
    for lab in ref_labels:
        row = {"label": int(lab), "name": anatomy.vertebra_name(lab), "region": anatomy.region(lab),
               "identified": False, "error_mm": None}
        if lab in pred:
            p = np.asarray(pred[lab], float)
            d = np.linalg.norm(ref_pts - p, axis=1)
            err = float(np.linalg.norm(p - ref[lab]))
            row["error_mm"] = round(err, 3)
            row["identified"] = bool(err <= radius and ref_labels[int(np.argmin(d))] == lab)
        rows.append(row)
    return rows


def summarize(rows: list[dict]) -> dict:
    """Identification rate and localisation error (mean, std, median) overall and per region."""
    out = {}
    for region in ("all", "cervical", "thoracic", "lumbar", "sacral"):
        sel = [r for r in rows if region == "all" or r["region"] == region]
        if not sel:
            continue
        errs = [r["error_mm"] for r in sel if r["error_mm"] is not None]
        out[region] = {"n": len(sel), "id_rate": float(np.mean([r["identified"] for r in sel])),
                       "detected": len(errs),
                       "error_mean_mm": float(np.mean(errs)) if errs else None,
                       "error_std_mm": float(np.std(errs)) if errs else None,
                       "error_median_mm": float(np.median(errs)) if errs else None}
    return out


# Rib transitions: where one is in view, the fusion's rib pattern fixes the numbering
# (vertebrae.column); without one, only the identification network's per-scan offset does.
ANCHOR_PAIRS = (("C7", "T1"), ("T12", "L1"))


def has_anchor(names: list[str]) -> bool:
    """Whether reference vertebrae ``names`` (e.g. ["C6", "C7", "T1"]) include a rib transition."""
    return any(a in names and b in names for a, b in ANCHOR_PAIRS)


def _grouped(per_case: list[dict], keys: tuple[str, ...], key_of) -> dict:
    """Overall summary (:func:`summarize` "all") and scan count per group (``key_of(case)``),
    in the order of ``keys``; empty groups left out."""
    out = {}
    for key in keys:
        cases = [c for c in per_case if key_of(c) == key]
        rows = [r for c in cases for r in c["rows"]]
        if rows:
            out[key] = {"scans": len(cases), **summarize(rows)["all"]}
    return out


def by_anchor(per_case: list[dict]) -> dict:
    """The scans with a rib transition in view and those without one, summarised apart: the
    errors of the fusion concentrate in the latter."""
    keys = ("rib transition in view", "no rib transition in view")
    return _grouped(per_case, keys, lambda c: keys[0] if has_anchor(c["reference"]) else keys[1])


def by_numbering(per_case: list[dict]) -> dict:
    """The scans summarised per what fixed their numbering in the prediction
    (``VertebraResult.numbering``: "ribs", "C1", "S1", "L5"; "none" = the network alone, the
    scans ``locate`` warns about), in that order."""
    return _grouped(per_case, ("ribs", "C1", "S1", "L5", "none"), lambda c: c.get("numbering") or "none")


def mask_label_at(reference: Image, point_lps: np.ndarray) -> int:
    """The reference label map's value at a point (nearest voxel; 0 outside the image)."""
    idx = np.round(reference.physical_to_index(np.asarray(point_lps, float))).astype(int)
    if np.any(idx < 0) or np.any(idx >= np.array(reference.size)):
        return 0
    return int(reference.array[idx[2], idx[1], idx[0]])


def score_masks(pred: dict[int, np.ndarray], reference: Image, complete: set[int],
                body_centres: dict[int, np.ndarray] | None = None) -> dict:
    """Predicted centroids ({VerSe label: LPS mm}) scored by the reference masks they lie in.

    Each prediction is "correct" (inside the mask of the vertebra it names), "wrong" (inside
    another vertebra's mask) or "outside" (in no vertebra's mask: beside the spine, or in a
    vertebra the reference does not hold). A ``complete`` reference vertebra (one not cut by the
    field of view) is identified when a prediction naming it lies inside its mask; ``found_as``
    gives, per complete vertebra, the label of the prediction inside its mask (None: none there).
    Distances are from correct predictions to ``body_centres`` (mm)."""
    rows, found_as = [], {}
    for lab, p in pred.items():
        inside = mask_label_at(reference, p)
        kind = "correct" if inside == lab else ("outside" if inside == 0 else "wrong")
        dist = None
        if kind == "correct" and body_centres and lab in body_centres:
            dist = float(np.linalg.norm(np.asarray(p, float) - np.asarray(body_centres[lab], float)))
        rows.append({"label": int(lab), "name": anatomy.vertebra_name(lab), "inside": inside, "kind": kind,
                     "distance_mm": dist})
        if inside in complete:
            found_as.setdefault(inside, int(lab))
    identified = sorted((r["label"] for r in rows if r["kind"] == "correct" and r["label"] in complete),
                        key=anatomy.ORDER.index)
    dists = [r["distance_mm"] for r in rows if r["distance_mm"] is not None]
    return {"complete": [anatomy.vertebra_name(v) for v in sorted(complete, key=anatomy.ORDER.index)],
            "identified": [anatomy.vertebra_name(v) for v in identified],
            "id_rate": len(identified) / len(complete) if complete else None,
            "correct": sum(r["kind"] == "correct" for r in rows), "wrong": sum(r["kind"] == "wrong" for r in rows),
            "outside": sum(r["kind"] == "outside" for r in rows),
            "distance_mean_mm": float(np.mean(dists)) if dists else None,
            "found_as": {anatomy.vertebra_name(v): (None if v not in found_as else anatomy.vertebra_name(found_as[v]))
                         for v in sorted(complete, key=anatomy.ORDER.index)},
            "rows": rows}


def evaluate_cases(cases, device: str = "auto", models_dir=None, log=print) -> dict:
    per_case, all_rows = [], []
    for case in cases:
        t = time.perf_counter()
        res = locate(case.image, device=device, models_dir=models_dir)
        secs = time.perf_counter() - t
        ref = {k: case.centroids[k] for k in sorted(case.centroids, key=anatomy.ORDER.index)
               if k not in case.partial and point_inside(case.image, case.centroids[k])}
        rows = match(res.centroids, ref)
        all_rows += rows
        s = summarize(rows)
        extra = sorted(set(res.centroids) - set(case.centroids))
        per_case.append({"case": case.name, "source": case.source, "reference": [anatomy.vertebra_name(k) for k in ref],
                         "predicted": res.names(), "numbering": res.numbering,
                         "extra_predictions": [anatomy.vertebra_name(k) for k in extra],
                         "seconds": round(secs, 2), "summary": s, "rows": rows})
        a = s.get("all", {})
        log(f"{case.name}: id rate {a.get('id_rate', float('nan')):.3f} of {a.get('n', 0)}, "
            f"error {a.get('error_mean_mm') or float('nan'):.2f} mm, predicted {' '.join(res.names()) or '-'} "
            f"({secs:.1f} s)")
    return {"summary": summarize(all_rows), "by_anchor": by_anchor(per_case), "by_numbering": by_numbering(per_case),
            "cases": per_case}


def to_markdown(report: dict, title: str) -> str:
    lines = [f"# {title}", "", "| region | vertebrae | id rate | detected | error mean +- std (mm) | median (mm) |",
             "|---|---|---|---|---|---|"]
    for region, s in report["summary"].items():
        err = "-" if s["error_mean_mm"] is None else f"{s['error_mean_mm']:.2f} +- {s['error_std_mm']:.2f}"
        med = "-" if s["error_median_mm"] is None else f"{s['error_median_mm']:.2f}"
        lines.append(f"| {region} | {s['n']} | {100 * s['id_rate']:.1f}% | {s['detected']} | {err} | {med} |")
    for group, heading in (("by_anchor", "field of view"), ("by_numbering", "numbered by (prediction)")):
        if report.get(group):
            lines += ["", f"| {heading} | scans | vertebrae | id rate | error mean (mm) |", "|---|---|---|---|---|"]
            for key, s in report[group].items():
                err = "-" if s["error_mean_mm"] is None else f"{s['error_mean_mm']:.2f}"
                lines.append(f"| {key} | {s['scans']} | {s['n']} | {100 * s['id_rate']:.1f}% | {err} |")
    lines += ["", "| case | reference | predicted | numbered by | id rate | error mean (mm) | seconds |",
              "|---|---|---|---|---|---|---|"]
    for c in report["cases"]:
        a = c["summary"].get("all", {"id_rate": float("nan"), "error_mean_mm": None})
        ref = f"{c['reference'][0]}..{c['reference'][-1]} ({len(c['reference'])})" if c["reference"] else "-"
        pred = f"{' '.join(c['predicted'])}" if c["predicted"] else "-"
        err = "-" if a.get("error_mean_mm") is None else f"{a['error_mean_mm']:.2f}"
        lines.append(f"| {c['case']} | {ref} | {pred} | {c.get('numbering') or 'none'} | {100 * a['id_rate']:.1f}% "
                     f"| {err} | {c['seconds']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="spineai evaluate vertebrae", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", action="append", default=[], help="VerSe-layout folder (repeatable)")
    p.add_argument("--phantoms", type=int, default=0, help="number of held-out random phantoms")
    p.add_argument("--phantom-seed", type=int, default=5000, help="first held-out phantom seed (training uses 1000+)")
    p.add_argument("--shared", action="store_true", help="the real samples in $SPINEAI_DATA/ct")
    p.add_argument("--output", default="spineai-eval-vertebrae")
    p.add_argument("--device", default="auto")
    p.add_argument("--models-dir", default=None)
    a = p.parse_args(argv)

    cases = []
    for folder in a.data:
        cases += folder_cases(folder)
    cases += [phantom_case(a.phantom_seed + i) for i in range(a.phantoms)]
    if a.shared:
        root = default_data_root()
        cases += shared_ct_cases(root)
    if not cases:
        p.error("nothing to evaluate: give --data, --phantoms or --shared")
    report = evaluate_cases(cases, a.device, a.models_dir)
    out = Path(a.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "vertebrae_eval.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    (out / "vertebrae_eval.md").write_text(to_markdown(report, "Vertebra localisation and identification"),
                                           encoding="utf-8")
    s = report["summary"].get("all", {})
    print(f"Wrote {out}/vertebrae_eval.json and .md: id rate {100 * s.get('id_rate', 0):.1f}% of {s.get('n', 0)}, "
          f"error {s.get('error_mean_mm') or float('nan'):.2f} mm")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
