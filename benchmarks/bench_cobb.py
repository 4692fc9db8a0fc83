"""Speed of the Cobb pipeline, end to end (file -> angles), on real AASCE images.

    python benchmarks/bench_cobb.py [--data $SPINEAI_DATA/aasce] [--n 20] [--device auto]

CPU: median seconds per image for one image at a time (read + preprocess + network + angles).
GPU (when CUDA is available): milliseconds per image with batching (batch 16), images already
read, and the single-image latency. Writes docs/benchmarks/cobb_<device>.json.
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
    p.add_argument("--data", default=str(default_data / "aasce"))
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--device", default="auto")
    a = p.parse_args()

    import torch

    from SpineAILib.cobb.predict import _forward, _prepare, estimate, estimate_batch
    from SpineAILib.device import resolve_device, set_cpu_threads
    from SpineAILib.io import read_image

    dev = resolve_device(a.device)
    if dev.type == "cpu":
        set_cpu_threads()
    files = sorted((Path(a.data) / "images").glob("*.jpg"))[: a.n]
    estimate(files[0], device=str(dev))  # warm-up: model load, allocator
    stages = {"read": [], "preprocess": [], "network": [], "end_to_end": []}
    for f in files:
        t0 = time.perf_counter()
        img = read_image(f, expect_ndim=2)
        t1 = time.perf_counter()
        _, canvas, _ = _prepare(img)
        t2 = time.perf_counter()
        _forward([canvas], dev, None)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t3 = time.perf_counter()
        estimate(f, device=str(dev))
        t4 = time.perf_counter()
        stages["read"].append(t1 - t0)
        stages["preprocess"].append(t2 - t1)
        stages["network"].append(t3 - t2)
        stages["end_to_end"].append(t4 - t3)
    out = {"machine": machine(), "device": str(dev), "images": len(files),
           "seconds_per_image_median": {k: float(np.median(v)) for k, v in stages.items()}}
    images = [read_image(f, expect_ndim=2) for f in files]
    for bs in (1, 16):
        estimate_batch(images[:bs], device=str(dev), batch_size=bs)
        t0 = time.perf_counter()
        estimate_batch(images, device=str(dev), batch_size=bs)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        out[f"batched_ms_per_image_bs{bs}_images_in_memory"] = 1000 * (time.perf_counter() - t0) / len(images)
    save(f"cobb_{dev.type}", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
