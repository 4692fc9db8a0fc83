"""Train the click-to-segment vertebral body network (Klein et al.), headless and resumable.

    spineai train vertebral-body --output runs/vertebral_body [--phantoms 40] [--steps 600]

Data: random CT phantoms at 1 mm (see ``vertebra_body.data.random_body_config``), cached under
``OUTPUT/cache``. Each sample is a crop around one body's centre plus a random *translation*
of the click (the user never clicks the exact centre), the paper's *resampling* augmentation
(the crop degraded to a random 1-2 mm resolution and interpolated back to 1 mm), and *shape*
variation from the phantoms themselves (body size, wedge/biconcave/crush, lesions) plus random
flips. Loss: negative soft Dice (the paper) plus binary cross entropy (see ``body_loss``).
The network sees the crop and the click as a
Gaussian channel; it trains on 32 x 64 x 64 crops (fully convolutional, run on the full
64 x 128 x 128 at inference) to fit a CPU budget.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from SpineAILib.anatomy import TOTALSEG_TO_VERSE
from SpineAILib.io import read_image
from SpineAILib.networks import build_network
from SpineAILib.preprocessing.intensity import scale_hu
from SpineAILib.preprocessing.patches import crop_with_fill
from SpineAILib.training import save_config
from SpineAILib.training.config import option, parse_config
from SpineAILib.training.loop import LoopSpec, one_cycle, run_training
from SpineAILib.training.real_ct import default_data_root
from SpineAILib.vertebra_body.crop import CropRecord, click_channel
from SpineAILib.vertebra_body.data import phantom_body_case, pseudo_body_arrays
from SpineAILib.vertebra_body.networks import BODY_KWARGS

TRAIN_CROP = (32, 64, 64)  # z, y, x at 1 mm


@dataclass
class BodyTrainConfig:
    output: str = option("runs/vertebral_body", "run folder (config, cache, log, checkpoint, models/)")
    phantoms: int = option(40, "number of training phantoms")
    phantom_seed: int = option(2000, "seed of the first phantom")
    steps: int = option(500, "optimizer steps")
    batch: int = option(4, "crops per step")
    lr: float = option(3e-3, "Adam one-cycle maximum learning rate")
    translate_mm: tuple[float, ...] = option((8.0, 8.0, 5.0), "largest click offset x,y,z (mm)")
    resample_prob: float = option(0.5, "share of crops degraded to a random 1-2 mm resolution and back")
    seed: int = option(0, "random seed")
    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps")
    threads: int = option(0, "CPU threads (0: every core)")
    bce_weight: float = option(1.0, "weight of the cross-entropy term (0: the paper's Dice-only loss)")
    real_train: tuple[str, ...] = option((), "$SPINEAI_DATA/ct samples with whole-vertebra pseudo labels")
    real_fraction: float = option(0.5, "share of samples drawn from the real samples")
    init: str = option("", "initial weights (.pt), e.g. to fine-tune")


def _phantom_arrays(seed: int, cache: Path) -> dict:
    p = cache / f"body_{seed}.npz"
    if not p.is_file():
        c = phantom_body_case(seed)
        labs = sorted(c.centers)
        # identity direction at 1 mm: array index of a centre = (p - origin) / 1 mm
        idx = np.array([c.image.physical_to_index(c.centers[lab]) for lab in labs])[:, ::-1]
        np.savez_compressed(p, hu=np.clip(c.image.array, -1024, 3071).astype(np.int16),
                            bodies=c.bodies.array.astype(np.uint8), labels=np.array(labs), centers_zyx=idx)
    with np.load(p) as z:
        return {k: z[k] for k in z.files}


def _crop(arr, centre_zyx, size, fill):
    """The patch of ``size`` centred (rounded) on ``centre_zyx``."""
    return crop_with_fill(arr, np.round(np.asarray(centre_zyx)).astype(int) - np.array(size) // 2, size, fill)


def _real_arrays(name: str, cache: Path) -> dict:
    """Pseudo-label body arrays of a real sample (see ``data.pseudo_body_arrays``), cached."""

    p = cache / f"real_{name}.npz"
    if not p.is_file():
        root = default_data_root()
        d = root / "ct" / name
        mask = next(f for f in ("vertebrae_pseudo.nii.gz", "structures_pseudo.nii.gz") if (d / f).is_file())
        np.savez_compressed(p, **pseudo_body_arrays(read_image(d / "ct.nii.gz"), read_image(d / mask),
                                                    TOTALSEG_TO_VERSE))
    with np.load(p) as z:
        return {k: z[k] for k in z.files}


def degrade_resolution(x: np.ndarray, spacing_mm) -> np.ndarray:
    """Down-sample a 1 mm crop to ``spacing_mm`` (z, y, x) and interpolate back (linear)."""
    import torch
    import torch.nn.functional as F

    t = torch.as_tensor(x, dtype=torch.float32)[None, None]
    small = [max(2, int(round(n / s))) for n, s in zip(x.shape, spacing_mm, strict=True)]
    low = F.interpolate(t, size=small, mode="trilinear", align_corners=False, antialias=False)
    return F.interpolate(low, size=x.shape, mode="trilinear", align_corners=False)[0, 0].numpy()


def body_batch(cases, rng, cfg: BodyTrainConfig, size=TRAIN_CROP):
    xs, ys = [], []
    for _ in range(cfg.batch):
        c = cases[rng.integers(len(cases))]
        k = rng.integers(len(c["labels"]))
        lab = int(c["labels"][k])
        centre = c["centers_zyx"][k]
        tx, ty, tz = cfg.translate_mm
        click = centre + rng.uniform(-1, 1, 3) * np.array([tz, ty, tx])
        hu = _crop(c["hu"], click, size, -1000).astype(np.float32)
        target = (_crop(c["bodies"], click, size, 0) == lab).astype(np.float32)
        if rng.random() < cfg.resample_prob:
            hu = degrade_resolution(hu, rng.uniform(1.0, 2.0, 3))
        hu = hu * rng.uniform(0.9, 1.1) + rng.uniform(-40, 40)
        if rng.random() < 0.5:
            hu, target = hu[..., ::-1], target[..., ::-1]
        # the click lies at the crop's centre voxel (rounded), as at inference
        rec = CropRecord((0.0, 0.0, 0.0), (size[2], size[1], size[0]), 1.0, (0.0, 0.0, 0.0))
        xs.append(np.stack([scale_hu(hu), click_channel(rec)]))
        ys.append(target[None])
    return np.stack(xs).astype(np.float32), np.stack(ys).astype(np.float32)


def soft_dice_loss(logits, target, eps: float = 1.0):
    """Negative soft Dice of sigmoid(logits) against a binary target (per sample, averaged)."""
    import torch

    p = torch.sigmoid(logits)
    dims = tuple(range(1, p.ndim))
    inter = (p * target).sum(dims)
    return -((2 * inter + eps) / (p.sum(dims) + target.sum(dims) + eps)).mean()


def body_loss(logits, target, bce_weight: float = 1.0):
    """Negative soft Dice plus binary cross entropy. The paper trains with the Dice term alone;
    from scratch on our CPU budget that stalled (soft Dice 0.16 after 125 steps), the usual
    nnU-Net-style Dice + cross entropy does not."""
    import torch.nn.functional as F

    return soft_dice_loss(logits, target) + bce_weight * F.binary_cross_entropy_with_logits(logits, target)


def train(cfg: BodyTrainConfig, log=print) -> dict:
    import torch

    out = Path(cfg.output)
    (out / "cache").mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.json")
    t0 = time.time()
    cases = [_phantom_arrays(cfg.phantom_seed + i, out / "cache") for i in range(cfg.phantoms)]
    log(f"{len(cases)} phantoms ready ({time.time() - t0:.0f} s), {sum(len(c['labels']) for c in cases)} bodies")
    real = [_real_arrays(name, out / "cache") for name in cfg.real_train]
    if real:
        n_real = sum(len(c["labels"]) for c in real)
        log(f"real CT with pseudo-label bodies: {', '.join(cfg.real_train)} ({n_real} bodies)")

    def step(net, _, rng, device):
        x, y = (torch.as_tensor(v).to(device) for v in
                body_batch(real if real and rng.random() < cfg.real_fraction else cases, rng, cfg))
        logits = net(x).float()
        return body_loss(logits, y, cfg.bce_weight), {"dice": -float(soft_dice_loss(logits.detach(), y))}

    spec = LoopSpec(output=cfg.output, steps=cfg.steps, torch_seed=cfg.seed, rng_seed=cfg.seed, device=cfg.device,
                    threads=cfg.threads, init=cfg.init, log_fields=["step", "dice", "seconds"], log_every=25,
                    checkpoint_every=100, final_weights="models/vertebral_body.pt")
    result = run_training(spec, lambda: build_network("spineai.BodySegmentation3D", **BODY_KWARGS),
                          lambda net: torch.optim.Adam(net.parameters(), lr=cfg.lr), step, one_cycle(cfg.lr), log=log)
    summary = {"config": asdict(cfg), "steps": cfg.steps, "seconds": result.seconds, "device": str(result.device)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary


def main(argv=None) -> int:
    train(parse_config(BodyTrainConfig, argv, "spineai train vertebral-body", __doc__))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
