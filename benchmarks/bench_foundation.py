"""Speed of the shared layers on this machine: phantoms, resampling a clinical-size CT,
sliding-window inference, and the whole demo.

    python benchmarks/bench_foundation.py [--device auto]

Writes docs/benchmarks/foundation_<device>.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, save  # noqa: E402


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="auto")
    a = p.parse_args()

    import torch

    from SpineAILib.demo import run_demo
    from SpineAILib.device import resolve_device, set_cpu_threads
    from SpineAILib.inference import tile_predict
    from SpineAILib.io import Image
    from SpineAILib.networks import build_network
    from SpineAILib.phantoms import CTPhantomConfig, ap_radiograph_phantom, ct_spine_phantom
    from SpineAILib.preprocessing import resample_to_spacing

    dev = resolve_device(a.device)
    if dev.type == "cpu":
        set_cpu_threads()
    res = {"machine": machine(), "device": str(dev), "seconds": {}}
    s = res["seconds"]
    _, s["ct_phantom_T11_L4_1mm"] = timed(ct_spine_phantom, CTPhantomConfig())
    _, s["ap_phantom_1024x512"] = timed(ap_radiograph_phantom)
    ct = Image(np.random.default_rng(0).normal(0, 100, (400, 512, 512)).astype(np.float32), (0.8, 0.8, 0.8))
    (iso, rec), s["resample_512x512x400_0.8mm_to_1mm"] = timed(resample_to_spacing, ct, 1.0)
    _, s["restore_to_original_grid_nearest"] = timed(rec.restore, iso, "nearest")
    net = build_network("monai.UNet", spatial_dims=3, in_channels=1, out_channels=2, channels=(16, 32, 64),
                        strides=(2, 2)).to(dev).eval()
    x = np.random.default_rng(1).random((128, 128, 128), dtype=np.float32)

    def predictor(patches):
        with torch.no_grad():
            return net(torch.as_tensor(patches)[:, None].to(dev)).cpu().numpy()

    _, s["tile_predict_unet16_128cube_core64"] = timed(tile_predict, x, predictor, (64, 64, 64), batch=2, n_out=2)
    with tempfile.TemporaryDirectory() as d:
        _, s["spineai_demo_total"] = timed(run_demo, d, device=str(dev))
    save(f"foundation_{dev.type}", res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
