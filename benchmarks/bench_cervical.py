"""Speed of cervical localisation: network forward at 100 x 100 (FCN, DeConvNet, UNet; batch 1)
and the whole localize() call on a 512 x 512 lateral phantom.

    python benchmarks/bench_cervical.py [--device auto]

Writes docs/benchmarks/cervical_<device>.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, save  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="auto")
    p.add_argument("--repeats", type=int, default=20)
    a = p.parse_args()

    import torch

    from SpineAILib.cervical import localize
    from SpineAILib.cervical.networks import build
    from SpineAILib.device import resolve_device, set_cpu_threads
    from SpineAILib.phantoms import lateral_cervical_phantom

    dev = resolve_device(a.device)
    if dev.type == "cpu":
        set_cpu_threads()
    out = {"machine": machine(), "device": str(dev), "network_ms_batch1": {}}
    x = torch.rand(1, 1, 100, 100, device=dev).to(memory_format=torch.channels_last)
    from SpineAILib.cervical.predict import _for_inference

    for name in ("FCN", "DeConvNet", "UNet"):
        net = _for_inference(build(name).to(dev).eval())  # as localize() runs it
        with torch.no_grad():
            for _ in range(3):
                net(x)
            times = []
            for _ in range(a.repeats):
                t0 = time.perf_counter()
                net(x)
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
        out["network_ms_batch1"][name] = 1000 * float(np.median(times))
    img = lateral_cervical_phantom().image
    localize(img, device=str(dev))
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        localize(img, device=str(dev))
        times.append(time.perf_counter() - t0)
    out["localize_512px_ms_median"] = 1000 * float(np.median(times))
    save(f"cervical_{dev.type}", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
