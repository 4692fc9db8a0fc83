"""Accuracy of the CT tasks with the shipped models, written to docs/benchmarks/:

* vertebra labelling on 100 held-out phantoms (seeds 5000-5099) and on every real sample in
  $SPINEAI_DATA/ct (centroids from their masks): ``vertebrae_eval.json`` / ``.md``;
* click-to-segment under the four validation conditions, Genant grading (12 phantoms), real
  crops: ``vertebral_body/vertebral_body_eval.json`` / ``.md``; Genant grading on 48 phantoms
  (seeds 6500-6547, the 12 included): ``vertebral_body_genant48/``;
* fracture detection ROC/AUC on held-out phantoms: ``fracture_eval.json`` / ``.md``.

    python benchmarks/eval_ct.py [--phantoms 100] [--only vertebrae,vertebral-body,fracture]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DOCS, machine  # noqa: E402

from SpineAILib.tasks import get_task  # noqa: E402


def _stamp(path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    data = {"machine": machine(), **data}
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--phantoms", type=int, default=100)
    p.add_argument("--body-phantoms", type=int, default=6)
    p.add_argument("--fracture-phantoms", type=int, default=16)
    p.add_argument("--only", default="vertebrae,vertebral-body,fracture")
    p.add_argument("--device", default="auto")
    a = p.parse_args()
    only = set(a.only.split(","))
    DOCS.mkdir(parents=True, exist_ok=True)
    if "vertebrae" in only:
        ev = get_task("vertebrae").entry("evaluator")
        ev(["--phantoms", str(a.phantoms), "--output", str(DOCS / "vertebrae_phantoms"), "--device", a.device])
        ev(["--shared", "--output", str(DOCS / "vertebrae_real"), "--device", a.device])
        for d in ("vertebrae_phantoms", "vertebrae_real"):
            _stamp(DOCS / d / "vertebrae_eval.json")
    if "vertebral-body" in only:
        ev = get_task("vertebral-body").entry("evaluator")
        ev(["--phantoms", str(a.body_phantoms), "--genant-phantoms", str(2 * a.body_phantoms), "--shared",
            "--output", str(DOCS / "vertebral_body"), "--device", a.device])
        _stamp(DOCS / "vertebral_body" / "vertebral_body_eval.json")
        # the grade boundaries make 16 fractured bodies a coarse measure: also 48 phantoms
        ev(["--phantoms", "0", "--genant-phantoms", "48", "--output", str(DOCS / "vertebral_body_genant48"),
            "--device", a.device])
        _stamp(DOCS / "vertebral_body_genant48" / "vertebral_body_eval.json")
    if "fracture" in only:
        ev = get_task("fracture").entry("evaluator")
        ev(["--phantoms", str(a.fracture_phantoms), "--output", str(DOCS / "fracture"), "--device", a.device])
        _stamp(DOCS / "fracture" / "fracture_eval.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
