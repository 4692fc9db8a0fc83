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

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from SpineAILib.preprocessing.patches import crop_with_fill
from SpineAILib.vertebra_body.networks import BODY_KWARGS

TRAIN_CROP = (32, 64, 64)  # z, y, x at 1 mm


@dataclass
class BodyTrainConfig:
    output: str = "runs/vertebral_body"
    phantoms: int = 40
    phantom_seed: int = 2000
    steps: int = 500
    batch: int = 4
    lr: float = 3e-3
    translate_mm: tuple[float, float, float] = (8.0, 8.0, 5.0)  # x, y, z: max click offset
    resample_prob: float = 0.5
    seed: int = 0
    threads: int = 0
    bce_weight: float = 1.0  # 0 = the paper's Dice-only loss
    real_train: tuple[str, ...] = ()  # $SPINEAI_DATA/ct samples with whole-vertebra pseudo labels
    real_fraction: float = 0.5  # share of samples drawn from them
    init: str = ""  # start from these weights (fine-tuning)


def _phantom_arrays(seed: int, cache: Path) -> dict:
    p = cache / f"body_{seed}.npz"
    if not p.is_file():
        from SpineAILib.vertebra_body.data import phantom_body_case

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
    import os

    p = cache / f"real_{name}.npz"
    if not p.is_file():
        from SpineAILib.io import read_image
        from SpineAILib.vertebra_body.data import pseudo_body_arrays
        from SpineAILib.vertebrae.data import TOTALSEG_TO_VERSE

        root = Path(os.environ.get("SPINEAI_DATA", str(Path(__file__).resolve().parents[2].parent / "shared" / "data")))
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
    from SpineAILib.vertebra_body.crop import CropRecord, click_channel
    from SpineAILib.vertebrae.networks import scale_hu

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

    from SpineAILib.networks import build_network
    from SpineAILib.training import (
        TrainingLog,
        load_fp16_weights,
        resume,
        save_checkpoint,
        save_config,
        save_fp16_weights,
        seed_everything,
    )

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
    seed_everything(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    net = build_network("spineai.BodySegmentation3D", **BODY_KWARGS)
    if cfg.init:
        load_fp16_weights(net, cfg.init)
        log(f"initialised from {cfg.init}")
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(cfg.steps, 1), pct_start=0.1)
    start = 0
    ck = resume(out / "checkpoint.pt", net, opt, sched)
    if ck:
        start = ck["step"]
        rng = np.random.default_rng(cfg.seed + 100 + start)
        log(f"resumed at step {start}")
    tlog = TrainingLog(out / "log.csv", ["step", "dice", "seconds"])
    net.train()
    running, t1 = [], time.time()
    for step in range(start, cfg.steps):
        x, y = body_batch(real if real and rng.random() < cfg.real_fraction else cases, rng, cfg)
        logits = net(torch.as_tensor(x))
        loss = body_loss(logits, torch.as_tensor(y), cfg.bce_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        running.append(-float(soft_dice_loss(logits.detach(), torch.as_tensor(y))))
        if (step + 1) % 25 == 0 or step + 1 == cfg.steps:
            tlog.write(step=step + 1, dice=float(np.mean(running)), seconds=round(time.time() - t1, 1))
            running = []
        if (step + 1) % 100 == 0 or step + 1 == cfg.steps:
            save_checkpoint(out / "checkpoint.pt", model=net.state_dict(), optimizer=opt.state_dict(),
                            scheduler=sched.state_dict(), step=step + 1)
    (out / "models").mkdir(exist_ok=True)
    save_fp16_weights(net.state_dict(), out / "models" / "vertebral_body.pt")
    summary = {"config": asdict(cfg), "steps": cfg.steps, "seconds": round(time.time() - t1, 1)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="spineai train vertebral-body", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    d = BodyTrainConfig()
    p.add_argument("--output", default=d.output)
    p.add_argument("--phantoms", type=int, default=d.phantoms)
    p.add_argument("--phantom-seed", type=int, default=d.phantom_seed)
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--bce-weight", type=float, default=1.0, help="weight of the cross-entropy term (0: Dice only)")
    p.add_argument("--real-train", default="", help="comma-separated $SPINEAI_DATA/ct samples with pseudo labels")
    p.add_argument("--real-fraction", type=float, default=0.5)
    p.add_argument("--init", default="", help="initial weights (.pt), e.g. to fine-tune")
    a = p.parse_args(argv)
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    train(BodyTrainConfig(output=a.output, phantoms=a.phantoms, phantom_seed=a.phantom_seed, steps=a.steps,
                          batch=a.batch, lr=a.lr, seed=a.seed, threads=a.threads, bce_weight=a.bce_weight,
                          real_train=tuple(x for x in a.real_train.split(",") if x), real_fraction=a.real_fraction,
                          init=a.init))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
