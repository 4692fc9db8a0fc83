"""Train the fracture voxel classifier (Nicolaes et al.: dual-pathway 3D CNN, 3 classes),
headless and resumable.

    spineai train fracture --output runs/fracture [--phantoms 40] [--steps 1500]

Data: random CT phantoms (4-6 vertebrae, 40 % of them with a wedge/biconcave/crush height loss
of 10-50 %, lesions, noise), acquired at a random 1-2 mm spacing and resampled to the 2 mm
working grid exactly as at inference. Targets from the centroids (``data.body_ellipsoids``,
flattened for fractured bodies). Samples: output blocks of 9^3 voxels (normal input 25^3, low
input 19^3 on the 3x subsampled volume), centred on fractured bodies (1/3), normal bodies (1/3)
or anywhere (1/3); flips and intensity noise; cross entropy; RMSprop, as in the paper. With ``--real``, real CTs
with vertebra masks join the phantoms (their vertebrae as normal bodies) and ``--init`` starts
from trained weights (fine-tuning).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from SpineAILib import anatomy
from SpineAILib.networks import build_network
from SpineAILib.phantoms.ct_spine import DEFORMITIES, ct_spine_phantom
from SpineAILib.preprocessing import resample_to_canonical
from SpineAILib.preprocessing.intensity import scale_hu
from SpineAILib.training import save_config
from SpineAILib.training.config import option, parse_config
from SpineAILib.training.loop import LoopSpec, run_training, step_decay
from SpineAILib.vertebra_body import networks as _networks  # noqa: F401  (registers the architecture)
from SpineAILib.vertebra_body.data import random_body_config
from SpineAILib.vertebra_body.fracture_data import SPACING, body_ellipsoids, pathway_inputs
from SpineAILib.vertebra_body.genant import genant

OUT_BLOCK = 9


@dataclass
class FractureTrainConfig:
    output: str = option("runs/fracture", "run folder (config, cache, log, checkpoint, models/)")
    phantoms: int = option(40, "number of training phantoms")
    phantom_seed: int = option(3000, "seed of the first phantom")
    steps: int = option(1500, "optimizer steps")
    batch: int = option(24, "output blocks per step")
    lr: float = option(5e-4, "RMSprop learning rate (x0.3 at 60 %% and 85 %% of the steps)")
    seed: int = option(0, "random seed")
    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps")
    threads: int = option(0, "CPU threads (0: every core)")
    real: str = option("", "real CTs of $SPINEAI_DATA/ct with vertebra masks (comma-separated case names): their "
                           "vertebrae as normal bodies")
    real_repeat: int = option(4, "how many times each real CT is listed among the phantoms (sampling weight)")
    init: str = option("", "start from this model's weights (a card name or folder, e.g. fracture_classifier): "
                           "fine-tuning")
    data: str = option("", "shared data folder (default: $SPINEAI_DATA or ../shared/data)")


def fracture_phantom(seed: int, spacing=None):
    """A phantom for the fracture task (more deformities than the segmentation phantoms)."""
    from dataclasses import replace

    rng = np.random.default_rng(seed + 123)
    cfg = random_body_config(np.random.default_rng(seed))
    names = [n for n in (cfg.first, cfg.last)]

    order = [anatomy.VERTEBRAE[i] for i in anatomy.ORDER]
    levels = order[order.index(names[0]): order.index(names[1]) + 1]
    loss = {v: (str(rng.choice(DEFORMITIES)), float(rng.uniform(0.1, 0.5))) for v in levels if rng.random() < 0.4}
    sp = tuple(float(s) for s in (rng.uniform(1.0, 2.0, 3) if spacing is None else spacing))
    return ct_spine_phantom(replace(cfg, height_loss=loss, spacing=sp))


def phantom_losses(ph) -> dict[int, float]:
    """Height loss per vertebra by the Genant rule applied to the phantom's exact heights."""

    labs = sorted(ph.heights)
    out = {}
    for k, lab in enumerate(labs):
        h = ph.heights[lab]
        neigh = [ph.heights[labs[j]]["posterior"] for j in (k - 1, k + 1) if 0 <= j < len(labs)]
        out[lab] = genant(h["anterior"], h["middle"], h["posterior"], neigh).height_loss
    return out


def _case_arrays(seed: int, cache: Path) -> dict:
    p = cache / f"fracture_{seed}.npz"
    if not p.is_file():
        ph = fracture_phantom(seed)
        canon, _ = resample_to_canonical(ph.image, SPACING, "linear", default_value=-1000.0)
        target = body_ellipsoids(canon, ph.body_centers, phantom_losses(ph))
        np.savez_compressed(p, x=scale_hu(canon.array).astype(np.float16), y=target)
    with np.load(p) as z:
        return {"x": z["x"].astype(np.float32), "y": z["y"]}


def _real_arrays(case, cache: Path) -> dict:
    """A real CT on the working grid with every vertebra of its masks as a normal body (the
    ellipsoid at the mask's body centre, as for the phantoms). None of the real CTs here shows
    a fractured body: they teach the classifier real bone's appearance as normal."""
    p = cache / f"real_{case.name}.npz"
    if not p.is_file():
        canon, _ = resample_to_canonical(case.image, SPACING, "linear", default_value=-1000.0)
        target = body_ellipsoids(canon, case.centroids, {})
        np.savez_compressed(p, x=scale_hu(canon.array).astype(np.float16), y=target)
    with np.load(p) as z:
        return {"x": z["x"].astype(np.float32), "y": z["y"]}


def real_cases(names: str, data: str = "") -> list:
    """The named real CTs (``SpineAILib.training.real_ct.named_ct_cases``) with their centroids;
    InputError naming the ones that are not there."""
    from SpineAILib.errors import InputError
    from SpineAILib.training.real_ct import default_data_root, named_ct_cases

    wanted = [n for n in names.split(",") if n]
    root = data or default_data_root()
    cases = {c.name: c for c in named_ct_cases(root, names) if c.centroids}
    missing = [n for n in wanted if n not in cases]
    if missing:
        raise InputError(f"Real CT cases not found (or without vertebra masks) in {root}/ct: {', '.join(missing)}.")
    return [cases[n] for n in wanted]


def fracture_batch(cases, rng, batch: int):
    na, nb, ys = [], [], []
    while len(ys) < batch:
        c = cases[rng.integers(len(cases))]
        kind = len(ys) % 3
        pool = np.argwhere(c["y"] == 2) if kind == 0 else (np.argwhere(c["y"] == 1) if kind == 1 else None)
        if pool is not None and not len(pool):
            continue
        centre = pool[rng.integers(len(pool))] if pool is not None else np.array([rng.integers(0, s)
                                                                                   for s in c["x"].shape])
        a, b = pathway_inputs(c["x"], centre, OUT_BLOCK)
        start = centre - OUT_BLOCK // 2
        y = np.zeros((OUT_BLOCK,) * 3, np.int64)
        src = tuple(slice(max(0, s), min(n, s + OUT_BLOCK)) for s, n in zip(start, c["y"].shape, strict=True))
        dst = tuple(slice(sl.start - s, sl.stop - s) for sl, s in zip(src, start, strict=True))
        y[dst] = c["y"][src]
        noise = rng.uniform(0, 0.03)
        a = a + rng.normal(0, noise, a.shape).astype(np.float32)
        b = b + rng.normal(0, noise / 3, b.shape).astype(np.float32)
        for ax in (1, 2):  # flips: left-right and (z) head-feet; AP stays (anterior wedge is meaningful)
            if rng.random() < 0.5:
                a, b, y = np.flip(a, ax), np.flip(b, ax), np.flip(y, ax)
        na.append(a.copy())
        nb.append(b.copy())
        ys.append(y.copy())
    return np.stack(na)[:, None], np.stack(nb)[:, None], np.stack(ys)


def train(cfg: FractureTrainConfig, log=print) -> dict:
    import torch

    out = Path(cfg.output)
    (out / "cache").mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.json")
    t0 = time.time()
    cases = [_case_arrays(cfg.phantom_seed + i, out / "cache") for i in range(cfg.phantoms)]
    real = [_real_arrays(c, out / "cache") for c in real_cases(cfg.real, cfg.data)] if cfg.real else []
    counts = np.sum([np.bincount(c["y"].ravel(), minlength=3) for c in cases + real], 0)
    cases += real * max(1, cfg.real_repeat)
    log(f"{cfg.phantoms} phantoms and {len(real)} real CTs ready ({time.time() - t0:.0f} s); voxels per class "
        f"{counts.tolist()}")

    def step(net, _, rng, device):
        a, b, y = (torch.as_tensor(v).to(device) for v in fracture_batch(cases, rng, cfg.batch))
        return torch.nn.functional.cross_entropy(net(a, b).float(), y), {}

    spec = LoopSpec(output=cfg.output, steps=cfg.steps, torch_seed=cfg.seed, rng_seed=cfg.seed, device=cfg.device,
                    threads=cfg.threads, log_every=50, checkpoint_every=250,
                    final_weights="models/fracture_classifier.pt")
    def build():
        if not cfg.init:
            return build_network("spineai.DualPathway3D")
        from SpineAILib.models import load_model

        return load_model(cfg.init)[0].train()

    result = run_training(spec, build,
                          lambda net: torch.optim.RMSprop(net.parameters(), lr=cfg.lr), step,
                          step_decay((0.6, 0.85), 0.3), log=log)
    summary = {"config": asdict(cfg), "steps": cfg.steps, "seconds": result.seconds,
               "device": str(result.device), "class_voxels": counts.tolist()}
    if cfg.init:  # what the fine-tuning started from (the card may be replaced by this run's export)
        from SpineAILib.models import load_card

        base = load_card(cfg.init)
        summary["initialised_from"] = {"model": base.name, "sha256": base.sha256,
                                       "steps": base.training.get("steps"), "data": base.training.get("data")}
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary


def main(argv=None) -> int:
    train(parse_config(FractureTrainConfig, argv, "spineai train fracture", __doc__))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
