"""Speed of radiograph vertebra labelling, end to end (file -> names, corners, alignment), on the
real whole-spine lateral radiographs (about 1160 x 2750 px) and on AASCE AP radiographs.

    python benchmarks/bench_xray_vertebrae.py [--data $SPINEAI_DATA] [--n 10] [--device auto]

Median seconds per image, one image at a time, model loaded (the first call is reported apart:
it loads the model). Lateral: view="lateral" and view="auto" (the same work plus nothing when the
lateral network finds the spine). AP: view="auto" (the lateral network first, then the AP
landmarks). Writes docs/benchmarks/xray_vertebrae_<device>.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, save  # noqa: E402

from SpineAILib.training.real_ct import default_data_root  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    default_data = default_data_root()
    p.add_argument("--data", default=str(default_data))
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--device", default="auto")
    a = p.parse_args()

    from SpineAILib.device import resolve_device, set_cpu_threads
    from SpineAILib.xray_vertebrae import label

    dev = resolve_device(a.device)
    if dev.type == "cpu":
        set_cpu_threads()
    lateral = sorted((Path(a.data) / "xray_lateral" / "images").glob("*.png"))[: a.n]
    ap = sorted((Path(a.data) / "aasce" / "images").glob("*.jpg"))[: a.n]
    t0 = time.perf_counter()
    label(lateral[0], view="lateral", device=str(dev))
    first = time.perf_counter() - t0
    out = {"machine": machine(), "device": str(dev), "first_call_seconds_with_model_load": first}
    for key, files, view in (("lateral_view_lateral", lateral, "lateral"), ("lateral_view_auto", lateral, "auto"),
                             ("ap_view_auto", ap, "auto")):
        secs = []
        for f in files:
            t0 = time.perf_counter()
            label(f, view=view, device=str(dev))
            secs.append(time.perf_counter() - t0)
        out[key] = {"images": len(files), "median_seconds": float(np.median(secs)), "max_seconds": float(max(secs))}
    save(f"xray_vertebrae_{dev.type}", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
