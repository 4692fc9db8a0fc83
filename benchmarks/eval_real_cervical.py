"""Cervical localisation on real lateral radiographs with expert endplate corners (COCO
keypoints): by default the validation images of the seeded split of ``$SPINEAI_DATA/xray_lateral``
(``io.lateral_keypoints.default_split``; the lateral labelling was trained on the other images),
``--split all`` for a collection nothing was trained on. The C3-C7 reference region is drawn from
the expert corners (``cervical.data.c3_c7_region``).

Views: each whole-spine radiograph; ``--views`` lateral cervical views cut from each (top of the
image to below T2, about square, fixed framings: what an emergency-room neck radiograph shows);
and views with no cervical spine: the thorax/lumbar part of each image, the lumbar-only
radiograph, ``--n-ap`` AP radiographs of the Cobb validation split. Per view, at the original
resolution: Dice, sensitivity, specificity, predicted regions, found or not, seconds.

Methods: ``pipeline`` (``spineai cervical``: the region drawn from the lateral labelling's
corners, the FCN where too few of C3-C7 are named) and ``fcn`` (``cervical.localize``: the
region-aware FCN alone on the whole view).

    python benchmarks/eval_real_cervical.py [--coco DIR] [--split val|all] [--views 5] [--n-ap 20]
        [--models-dir DIR]

Writes docs/benchmarks/cervical_real/cervical_real.json, .md and per_view.csv.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DOCS, machine, write_report  # noqa: E402

from SpineAILib.cervical import localize  # noqa: E402
from SpineAILib.cervical.data import has_neck, lateral_views  # noqa: E402
from SpineAILib.io import Image, read_image  # noqa: E402
from SpineAILib.io.lateral_keypoints import default_split, load_coco_keypoints  # noqa: E402
from SpineAILib.metrics import binary_metrics  # noqa: E402
from SpineAILib.tasks import localize_cervical  # noqa: E402
from SpineAILib.training.real_ct import default_data_root  # noqa: E402

METHODS = ("pipeline", "fcn")


def views(coco: Path, split: str, n_views: int, aasce: Path | None, n_ap: int
          ) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """(kind, name, image, reference mask) of every view (kinds: whole, neck, none)."""
    cases = load_coco_keypoints(coco)
    keep = set(default_split(cases)["val"]) if split == "val" else {c.name for c in cases}
    rng = np.random.default_rng(20_000)  # fixed framings
    out = []
    for case in cases:
        if case.name not in keep:
            continue
        if not has_neck(case):  # e.g. a lumbar-only radiograph: no cervical spine in view
            img = read_image(case.image_path, expect_ndim=2).array
            out.append(("none", case.name, img, np.zeros(img.shape, bool)))
            continue
        for name, img, mask in lateral_views(case, n_views, rng, whole=True, lower_views=1):
            kind = "whole" if name == case.name else "neck" if "-neck" in name else "none"
            out.append((kind, name, img, mask))
    if aasce is not None and n_ap:
        from SpineAILib.cobb.data import split_cases

        files = sorted((aasce / "images").glob("*.jpg"))
        for stem in split_cases([f.stem for f in files])["val"][:n_ap]:
            img = read_image(aasce / "images" / f"{stem}.jpg", expect_ndim=2).array
            out.append(("none", f"AP {stem}", img, np.zeros(img.shape, bool)))
    return out


def run_method(method: str, img: np.ndarray, models_dir) -> np.ndarray:
    image = Image(img, spacing=(1.0, 1.0))
    if method == "pipeline":
        return localize_cervical(image, device="cpu", models_dir=models_dir).region
    return localize(image, device="cpu", models_dir=models_dir).region


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--coco", default=str(default_data_root() / "xray_lateral"),
                   help="lateral radiographs: images/ and annotations.json (COCO keypoints, endplate corners)")
    p.add_argument("--split", choices=("val", "all"), default="val",
                   help="the validation images of the seeded split, or every image (a collection not trained on)")
    p.add_argument("--views", type=int, default=5, help="cervical views cut from each image")
    p.add_argument("--aasce", default=str(default_data_root() / "aasce"), help="AP radiographs ('' for none)")
    p.add_argument("--n-ap", type=int, default=20, help="AP radiographs (Cobb validation split) as negatives")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--models-dir", default=None, help="a folder with other model cards and weights")
    p.add_argument("--output", default=str(DOCS / "cervical_real"))
    a = p.parse_args()
    methods = a.methods.split(",")
    rows = []
    from scipy import ndimage

    for kind, name, img, ref in views(Path(a.coco), a.split, a.views, Path(a.aasce) if a.aasce else None, a.n_ap):
        for method in methods:
            t = time.perf_counter()
            region = run_method(method, img, a.models_dir)
            secs = time.perf_counter() - t
            row = {"kind": kind, "view": name, "method": method, "found": bool(region.any()),
                   "regions": int(ndimage.label(region)[1]), "seconds": round(secs, 3)}
            if kind != "none":
                m = binary_metrics(region, ref)
                row.update({k: round(float(m[k]), 4) for k in ("dice", "sensitivity", "specificity")})
            rows.append(row)
        print(f"{kind:5s} {name:28s} " + "  ".join(
            f"{r['method']} " + (f"D {r['dice']:.2f} S {r['sensitivity']:.2f}" if kind != "none" else
                                 ("FOUND" if r["found"] else "-")) for r in rows[-len(methods):]), flush=True)
    summary = {}
    for method in methods:
        for kind in ("neck", "whole", "none"):
            sel = [r for r in rows if r["method"] == method and r["kind"] == kind]
            if not sel:
                continue
            s = {"views": len(sel), "found": sum(r["found"] for r in sel),
                 "median_seconds": float(np.median([r["seconds"] for r in sel]))}
            if kind != "none":
                for k in ("dice", "sensitivity", "specificity"):
                    s[k] = round(float(np.mean([r[k] for r in sel])), 4)
                s["one_region"] = sum(r["regions"] == 1 for r in sel)
            summary[f"{method}/{kind}"] = s
    report = {"machine": machine(), "coco": a.coco, "split": a.split, "views_per_image": a.views, "n_ap": a.n_ap,
              "summary": summary}
    out = Path(a.output)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "per_view.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["kind", "view", "method", "found", "regions", "dice", "sensitivity",
                                          "specificity", "seconds"])
        w.writeheader()
        w.writerows(rows)
    lines = ["| Method | Views | Found | Dice | Sensitivity | Specificity | One region | Median s |",
             "|---|---|---|---|---|---|---|---|"]
    for key, s in summary.items():
        lines.append(f"| {key} | {s['views']} | {s['found']} | {s.get('dice', '-')} | {s.get('sensitivity', '-')} "
                     f"| {s.get('specificity', '-')} | {s.get('one_region', '-')} | {s['median_seconds']:.2f} |")
    # per radiograph: the whole-spine view, and the mean over the neck views cut from it
    lines += ["", "Per radiograph (`pipeline`): whole-spine view; mean of its neck views (lowest specificity).", "",
              "| Image | Whole-spine Dice / sens. / spec. | Neck views Dice / sens. / spec. (min) |", "|---|---|---|"]
    for r in rows:
        if r["method"] != "pipeline" or r["kind"] != "whole":
            continue
        necks = [n for n in rows if n["method"] == "pipeline" and n["kind"] == "neck"
                 and n["view"].startswith(f"{r['view']}-neck")]
        neck = (f"{np.mean([n['dice'] for n in necks]):.2f} / {np.mean([n['sensitivity'] for n in necks]):.2f} / "
                f"{min(n['specificity'] for n in necks):.3f}") if necks else "-"
        lines.append(f"| {r['view']} | {r['dice']:.2f} / {r['sensitivity']:.2f} / {r['specificity']:.3f} | {neck} |")
    print(write_report(out, "cervical_real", report, "Cervical localisation on real lateral radiographs",
                       "Validation images of the seeded split; `none` views have no cervical spine (found = "
                       "a false positive).", lines).read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
