"""Click-to-segment on every complete vertebra of the real CTs in $SPINEAI_DATA/ct with masks, no
centroids given (a user's first click): at the centre of the vertebra's body (the reference
body centroid) and, with ``--offsets``, 5 mm off it in each of the 6 directions. Per click:
precision against the clicked vertebra's whole mask (the fraction of the segment inside it;
"stays inside" = precision >= 0.85), volume, grade; and, with ``--compare``, the same clicks
without the disc planes the column gives (the network's region alone).

    python benchmarks/eval_real_body_clicks.py [--offsets] [--compare] [--cases a,b]

Writes docs/benchmarks/vertebral_body_real/clicks.json and .md and prints the table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DOCS, machine, write_report  # noqa: E402

from SpineAILib import anatomy  # noqa: E402
from SpineAILib.errors import InputError  # noqa: E402
from SpineAILib.io.image import lps_to_ras  # noqa: E402
from SpineAILib.training.real_ct import default_data_root, named_ct_cases  # noqa: E402
from SpineAILib.vertebra_body import predict as body  # noqa: E402

OFFSETS = [np.zeros(3)] + [s * 5.0 * e for e in np.eye(3) for s in (1.0, -1.0)]


def click(case, label: int, point_lps: np.ndarray) -> dict:
    t = time.perf_counter()
    try:
        r = body.segment(case.image, lps_to_ras(point_lps), device="cpu")
    except InputError as exc:
        return {"error": str(exc), "seconds": round(time.perf_counter() - t, 2)}
    inside = case.reference.array == label
    seg = r.mask
    n = int(seg.sum())
    precision = float((seg & inside).sum() / n) if n else 0.0
    return {"precision": round(precision, 3), "volume_ml": round(r.volume_ml, 1),
            "grade": None if r.genant is None else r.genant.grade, "warnings": r.warnings,
            "seconds": round(time.perf_counter() - t, 2)}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=str(default_data_root()))
    p.add_argument("--cases", default="")
    p.add_argument("--offsets", action="store_true", help="also 5 mm off the centre in 6 directions")
    p.add_argument("--compare", action="store_true", help="also without the column's disc planes")
    p.add_argument("--output", default=str(DOCS / "vertebral_body_real"))
    a = p.parse_args()
    cases = named_ct_cases(a.data, a.cases)
    rows = []
    original = body.disc_planes
    for case in cases:
        for label in sorted((v for v in case.centroids if v not in case.partial), key=anatomy.ORDER.index):
            centre = np.asarray(case.centroids[label], float)
            row = {"case": case.name, "vertebra": anatomy.vertebra_name(label), "clicks": []}
            for off in (OFFSETS if a.offsets else OFFSETS[:1]):
                row["clicks"].append(click(case, label, centre + off))
            if a.compare:
                body.disc_planes = lambda *args, **kw: None
                try:
                    row["without_planes"] = click(case, label, centre)
                finally:
                    body.disc_planes = original
            rows.append(row)
            c = row["clicks"][0]
            old = row.get("without_planes", {})
            print(f"{case.name:18s} {row['vertebra']:4s} precision {c.get('precision', '-')} "
                  f"(without planes {old.get('precision', '-')}), {c.get('volume_ml', '-')} ml, grade "
                  f"{c.get('grade', '-')}, stable over offsets: "
                  f"{len({k.get('grade') for k in row['clicks']}) == 1}", flush=True)
    def share(pick):
        vals = [pick(r) for r in rows]
        vals = [v for v in vals if v is not None]
        return (sum(v >= 0.85 for v in vals), len(vals))
    summary = {
        "centre_inside": share(lambda r: r["clicks"][0].get("precision", 0.0)),
        "all_clicks_inside": (sum(k.get("precision", 0.0) >= 0.85 for r in rows for k in r["clicks"]),
                              sum(len(r["clicks"]) for r in rows)),
        "grade_stable": (sum(len({k.get("grade") for k in r["clicks"]}) == 1 for r in rows), len(rows)),
    }
    if a.compare:
        summary["centre_inside_without_planes"] = share(lambda r: r["without_planes"].get("precision", 0.0))
    report = {"machine": machine(), "summary": summary, "rows": rows}
    md = ["| case | vertebra | precision (centre click) | without disc planes | volume (ml) | grade | "
          "precision over the 7 clicks | grade stable |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        c = r["clicks"][0]
        pr = [k.get("precision", 0.0) for k in r["clicks"]]
        md.append(f"| {r['case']} | {r['vertebra']} | {c.get('precision', 'error')} | "
                  f"{r.get('without_planes', {}).get('precision', '-')} | {c.get('volume_ml', '-')} | "
                  f"{c.get('grade', '-')} | {min(pr):.2f}-{max(pr):.2f} | "
                  f"{'yes' if len({k.get('grade') for k in r['clicks']}) == 1 else 'no'} |")
    md += ["", "Summary: " + "; ".join(f"{k} {v[0]}/{v[1]}" for k, v in summary.items())]
    write_report(a.output, "clicks", report, "Click-to-segment on real CT (no centroids given)",
                 "Precision: fraction of the segment inside the clicked vertebra's mask; inside = precision >= 0.85.",
                 md)
    print(md[-1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
