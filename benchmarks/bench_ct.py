"""Speed and peak memory of the CT tasks on a 512 x 512 x 400 CT at 0.8 mm (the issue's size):
vertebra labelling end to end (``locate``), one click to a vertebral body segment, and the
fracture voxel classifier (``assess`` with known centroids, classifier only and with Genant).

    python benchmarks/bench_ct.py [--device auto]

The CT is a T1-S1 phantom built at 2 mm over a 410 x 410 mm field of view and resampled to the
0.8 mm grid. Each measurement runs in a fresh process that reads the CT from disk, so "peak
memory" is that process's maximum resident set size (and, on CUDA, the peak allocated GPU memory).
Writes docs/benchmarks/ct_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, save  # noqa: E402

CHILD = r"""
import json, resource, sys, time
import numpy as np
from SpineAILib.io import read_image
from SpineAILib.device import resolve_device
task, path, device, extra = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
dev = resolve_device(device)
img = read_image(path)
cents = {int(k): np.array(v) for k, v in extra.get("centroids", {}).items()}
def run():
    if task == "vertebrae":
        from SpineAILib.vertebrae import locate
        r = locate(img, device=device)
        return {"stages_s": r.seconds, "found": r.names()}
    if task == "click":
        from SpineAILib.vertebra_body import segment
        r = segment(img, extra["point"], space="LPS", device=device)
        return {"volume_ml": r.volume_ml}
    from SpineAILib.vertebra_body import assess_fractures
    r = assess_fractures(img, cents, device=device, genant=task == "fracture_genant")
    return {"stages_s": r.seconds}
if extra.get("warmup"):
    run()  # models loaded and (CUDA) kernels compiled once, as in a Slicer session
t0 = time.perf_counter()
info = run()
if dev.type == "cuda":
    import torch
    torch.cuda.synchronize()
    info["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
info["seconds"] = time.perf_counter() - t0
info["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("@@" + json.dumps(info))
"""


def child(task: str, path: str, device: str, extra: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, task, path, device, json.dumps(extra)], capture_output=True,
                         text=True, check=False)
    for line in out.stdout.splitlines():
        if line.startswith("@@"):
            return json.loads(line[2:])
    raise RuntimeError(f"{task} failed:\n{out.stderr[-3000:]}")


def make_ct(path: Path) -> dict[int, list[float]]:
    import SimpleITK as sitk

    from SpineAILib.io import Image, write_image
    from SpineAILib.phantoms import CTPhantomConfig, ct_spine_phantom

    ph = ct_spine_phantom(CTPhantomConfig(first="T1", last="S1", spacing=(2.0, 2.0, 2.0), lateral_fov_mm=400,
                                          ap_fov_mm=400, margin_mm=0.0, seed=3))
    img = ph.image
    # the 512 x 512 x 400 grid at 0.8 mm, centred on the phantom
    centre = img.index_to_physical((np.array(img.size) - 1) / 2)
    size = np.array([512, 512, 400])
    origin = centre - (size - 1) / 2 * 0.8
    ref = sitk.Image([int(s) for s in size], sitk.sitkFloat32)
    ref.SetSpacing((0.8, 0.8, 0.8))
    ref.SetOrigin(tuple(float(v) for v in origin))
    out = sitk.Resample(img.to_sitk(), ref, sitk.Transform(), sitk.sitkLinear, -1000.0, sitk.sitkFloat32)
    ct = Image.from_sitk(out)
    write_image(ct.with_array(np.clip(ct.array, -1024, 3071).astype(np.int16)), path)
    return {int(k): [float(x) for x in v] for k, v in ph.body_centers.items() if ct.physical_to_index(v)[2] >= 0
            and ct.physical_to_index(v)[2] <= 399}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="auto")
    p.add_argument("--clicks", type=int, default=5)
    a = p.parse_args()
    from SpineAILib.device import resolve_device

    dev = resolve_device(a.device)
    tmp = Path(tempfile.mkdtemp(prefix="spineai-bench-ct-"))
    path = tmp / "ct_512x512x400.nii.gz"
    cents = make_ct(path)
    out = {"machine": machine(), "device": str(dev), "ct": "512 x 512 x 400 at 0.8 mm (T1-S1 phantom)",
           "vertebrae_in_fov": len(cents)}
    dev_name = a.device if a.device != "auto" else dev.type
    out["vertebrae_locate"] = child("vertebrae", str(path), dev_name, {})
    out["vertebrae_locate_warm"] = child("vertebrae", str(path), dev_name, {"warmup": True})
    labs = sorted(cents)
    clicks = []
    for lab in labs[:: max(1, len(labs) // a.clicks)][: a.clicks]:
        clicks.append(child("click", str(path), dev_name, {"point": cents[lab], "warmup": True})["seconds"])
    out["click_to_segment_s"] = {"median": float(np.median(clicks)), "max": float(np.max(clicks)),
                                 "n": len(clicks), "note": "per click, model already loaded"}
    out["fracture_classifier"] = child("fracture", str(path), dev_name, {"centroids": cents})
    out["fracture_with_genant"] = child("fracture_genant", str(path), dev_name, {"centroids": cents})
    save(f"ct_{dev.type}", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
