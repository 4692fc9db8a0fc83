"""Evaluate radiograph vertebra labelling end to end (file -> named vertebrae -> alignment).

    spineai evaluate xray-vertebrae --data $SPINEAI_DATA/xray_lateral [--aasce $SPINEAI_DATA/aasce] \
        [--subset val] [--output report.json] [--csv per_image.csv]

Lateral (COCO keypoints): the paper's metrics (Bayat et al.): identification rate (a reference
vertebra counts when the closest reported vertebra carries its name) over C3-L5 and over C2-S1,
mean localisation error of the vertebrae named right (pixels and % of the image height), for the
shipped decoding ("full": level map + identity maps + residual corrector), the paper's U-Net + RC
("unet_rc") and the paper's U-Net alone ("unet"); the absolute error of each sagittal alignment
angle; the view chosen by ``view="auto"``. AP (AASCE layout, optional): identification rate over
T1-L5, whole-spine level shifts (every vertebra named one level off), and the auto view. Timings
per image.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from SpineAILib.anatomy import AASCE_VERTEBRAE, LATERAL_VERTEBRAE
from SpineAILib.io import read_image
from SpineAILib.io.lateral_keypoints import default_split, load_coco_keypoints
from SpineAILib.xray_vertebrae import predict as _predict
from SpineAILib.xray_vertebrae.alignment import ALIGNMENT_COLUMNS, sagittal_alignment
from SpineAILib.xray_vertebrae.model import DECODINGS
from SpineAILib.xray_vertebrae.predict import label

REPO = Path(__file__).resolve().parents[2]
AASCE_SPLIT = REPO / "Resources" / "Splits" / "aasce_split.json"
C3_L5 = LATERAL_VERTEBRAE[1:-1]


def identify(result, truth: dict[str, np.ndarray], names: list[str]) -> tuple[int, int, list[float], int]:
    """(identified, total, distances of the vertebrae named right, shift) over ``names`` in
    ``truth``; shift: the most common (predicted - true) level offset of the closest predictions."""
    pred = np.array([v.centroid for v in result.vertebrae], float).reshape(-1, 2)
    pnames = result.names()
    ok = total = 0
    dists: list[float] = []
    offsets = []
    order = AASCE_VERTEBRAE if result.view == "ap" else LATERAL_VERTEBRAE
    for n in names:
        if n not in truth:
            continue
        total += 1
        if len(pred) == 0:
            continue
        k = int(np.argmin(np.linalg.norm(pred - truth[n], axis=1)))
        if pnames[k] == n:
            ok += 1
            dists.append(float(np.linalg.norm(pred[k] - truth[n])))
        if pnames[k] in order and n in order:
            offsets.append(order.index(pnames[k]) - order.index(n))
    shift = int(np.bincount(np.abs(offsets)).argmax()) if offsets else 0
    return ok, total, dists, shift


def evaluate_lateral(data: str, subset: str = "val", split: str | Path = "", device: str = "auto",
                     models_dir: str | None = None, rows: list | None = None) -> dict:
    cases = load_coco_keypoints(data)
    if subset != "all":
        names = set(json.loads(Path(split).read_text(encoding="utf-8"))[subset] if split else
                    default_split(cases)[subset])
        cases = [c for c in cases if c.name in names]
    out: dict = {"cases": len(cases), "subset": subset}
    shipped = _predict.DECODING
    for decoding in DECODINGS:
        prior = decoding == shipped  # the shipped decoding also gets the auto view and the CSV rows
        _predict.DECODING = decoding
        ok = {"c3_l5": [0, 0], "c2_s1": [0, 0]}
        dist_px, dist_pct, shifts, errs, secs, auto_ok = [], [], [], {k: [] for k in ALIGNMENT_COLUMNS}, [], 0
        for c in cases:
            img = read_image(c.image_path)
            t0 = time.perf_counter()
            r = label(img, view="lateral", device=device, models_dir=models_dir)
            secs.append(time.perf_counter() - t0)
            truth = {n: p for n, p in zip(LATERAL_VERTEBRAE, c.centroids, strict=True) if not np.isnan(p[0])}
            height = img.array.shape[0]
            for key, names in (("c3_l5", C3_L5), ("c2_s1", LATERAL_VERTEBRAE)):
                o, t, d, s = identify(r, truth, names)
                ok[key][0] += o
                ok[key][1] += t
                if key == "c2_s1":
                    dist_px += d
                    dist_pct += [100 * x / height for x in d]
                    shifts.append(s)
            gt = sagittal_alignment(c.corners).angles()
            got = r.alignment.angles() if r.alignment else {}
            for k in ALIGNMENT_COLUMNS:
                if gt[k] is not None and got.get(k) is not None:
                    errs[k].append(abs(got[k] - gt[k]))
            if prior:
                auto = label(img, view="auto", device=device, models_dir=models_dir)
                auto_ok += auto.view == "lateral"
                if rows is not None:
                    o, t, _, _ = identify(r, truth, C3_L5)
                    rows.append([c.name, "lateral", f"{o}/{t}", len(r.vertebrae),
                                 *("" if got.get(k) is None else f"{got[k]:.2f}" for k in ALIGNMENT_COLUMNS),
                                 *("" if gt[k] is None else f"{gt[k]:.2f}" for k in ALIGNMENT_COLUMNS),
                                 auto.view, " | ".join(r.warnings)])
        out[decoding] = {
            "id_rate_c3_l5": ok["c3_l5"][0] / max(ok["c3_l5"][1], 1),
            "id_rate_c2_s1": ok["c2_s1"][0] / max(ok["c2_s1"][1], 1),
            "identified_c3_l5": ok["c3_l5"], "mean_distance_px": float(np.mean(dist_px)) if dist_px else None,
            "mean_distance_percent_height": float(np.mean(dist_pct)) if dist_pct else None,
            "images_with_level_shift": int(sum(s != 0 for s in shifts)),
            "angle_mae_deg": {k: (float(np.mean(v)) if v else None) for k, v in errs.items()},
            "angle_pairs": {k: len(v) for k, v in errs.items()},
            "seconds_per_image": float(np.mean(secs)) if secs else None}
        if prior:
            out["auto_view_lateral"] = auto_ok
    _predict.DECODING = shipped
    out["shipped_decoding"] = shipped
    return out


def evaluate_ap(data: str, subset: str = "val", split: str | Path = AASCE_SPLIT, device: str = "auto",
                models_dir: str | None = None, rows: list | None = None, limit: int = 0) -> dict:
    from SpineAILib.cobb.data import load_aasce

    cases = load_aasce(data)
    if subset != "all":
        names = set(json.loads(Path(split).read_text(encoding="utf-8"))[subset] if split else
                    default_split(cases)[subset])
        cases = [c for c in cases if c.name in names]
    cases = cases[:limit or None]
    ok = total = shifted = auto_ok = 0
    dists, secs = [], []
    for c in cases:
        img = read_image(c.image_path)
        t0 = time.perf_counter()
        r = label(img, view="auto", device=device, models_dir=models_dir)
        secs.append(time.perf_counter() - t0)
        auto_view = r.view
        auto_ok += auto_view == "ap"
        if r.view != "ap":
            r = label(img, view="ap", device=device, models_dir=models_dir)
        truth = dict(zip(AASCE_VERTEBRAE, c.landmarks.reshape(17, 4, 2).mean(1), strict=True))
        o, t, d, s = identify(r, truth, AASCE_VERTEBRAE)
        ok, total, shifted = ok + o, total + t, shifted + (s != 0)
        dists += [100 * x / img.array.shape[0] for x in d]
        if rows is not None:
            rows.append([c.name, "ap", f"{o}/{t}", len(r.vertebrae), *([""] * 8), auto_view, ""])
    return {"cases": len(cases), "subset": subset, "id_rate_t1_l5": ok / max(total, 1),
            "images_with_level_shift": shifted,
            "mean_distance_percent_height": float(np.mean(dists)) if dists else None,
            "auto_view_ap": auto_ok, "seconds_per_image_auto": float(np.mean(secs)) if secs else None}


CSV_HEADER = ["image", "view", "identified_c3_l5", "found", *[f"pred_{k}" for k in ALIGNMENT_COLUMNS],
              *[f"ref_{k}" for k in ALIGNMENT_COLUMNS], "auto_view", "warnings"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="spineai evaluate xray-vertebrae", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="folder with images/ and annotations.json (COCO keypoints)")
    p.add_argument("--aasce", default="", help="AASCE-layout folder: also evaluate the AP view")
    p.add_argument("--subset", default="val", help="split subset (train, val) or all")
    p.add_argument("--split", default="", help="split JSON ('': the seeded split derived from the image names)")
    p.add_argument("--aasce-limit", type=int, default=0, help="first N AASCE cases only (0: all of the subset)")
    p.add_argument("--device", default="auto")
    p.add_argument("--models-dir", default=None)
    p.add_argument("--output", default="", help="report JSON path")
    p.add_argument("--csv", default="", help="per-image CSV path")
    a = p.parse_args(argv)
    rows: list = []
    report = {"lateral": evaluate_lateral(a.data, a.subset, a.split, a.device, a.models_dir, rows)}
    if a.aasce:
        report["ap"] = evaluate_ap(a.aasce, a.subset, AASCE_SPLIT, a.device, a.models_dir, rows, a.aasce_limit)
    text = json.dumps(report, indent=2)
    print(text)
    if a.output:
        Path(a.output).parent.mkdir(parents=True, exist_ok=True)
        Path(a.output).write_text(text + "\n", encoding="utf-8")
    if a.csv:
        with open(a.csv, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(CSV_HEADER)
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
