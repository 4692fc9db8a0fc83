"""Train and compare the six localisation variants (FCN, DeConvNet, UNet, each with and without
the region-aware term "-R") on phantoms or on a folder of real radiographs with masks.

    spineai train cervical --output runs/cervical [--variants FCN-R,UNet] [--data FOLDER]
    spineai train cervical --output runs/cervical_real --coco $SPINEAI_DATA/xray_lateral \
        [--negatives $SPINEAI_DATA/aasce] [--n-train 200]

With ``--coco`` (lateral radiographs with endplate corners, ``io.lateral_keypoints``) the
training images of the seeded split (``default_split``) give lateral cervical views cut at random
framings (top to below T2, about square) and views below the neck (empty targets), mixed with
``--n-train`` phantoms and ``--n-negatives`` radiographs of other views; the test set is
``--test-views`` fixed framings of each validation image.

As in the paper: rigid rotations from 5 to 355 degrees in 5 degree steps, RMSprop, batch 10,
from scratch or from a model card (``--init``), equal weights of the two loss terms
(configurable). Writes per variant the fp16 weights, its config and history, and ``table.json``
/ ``table.md``: the six-row comparison
(pixel accuracy, Dice, sensitivity, specificity at 100 x 100; sensitivity/specificity at the
original resolution against the vertebra masks; predicted regions per image), mean +- std.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from SpineAILib.cervical.data import Sample, folder_samples, lateral_samples, negative_samples, phantom_samples
from SpineAILib.cervical.losses import localisation_loss
from SpineAILib.cervical.networks import build, count_parameters
from SpineAILib.io.readers import list_images
from SpineAILib.metrics import binary_metrics, n_regions, summarize
from SpineAILib.preprocessing import map_from_canvas
from SpineAILib.training import save_config
from SpineAILib.training.config import option, parse_config
from SpineAILib.training.loop import LoopSpec, run_training

VARIANTS = ("FCN", "FCN-R", "DeConvNet", "DeConvNet-R", "UNet", "UNet-R")


@dataclass
class CervicalTrainConfig:
    output: str = option("runs/cervical", "run folder (config, histories, weights, table.json/.md)")
    data: str = option("", "folder with images/ and masks/ (default: phantoms)")
    coco: str = option("", "folder with images/ and annotations.json (lateral endplate corners, COCO keypoints)")
    views: int = option(40, "with --coco: lateral cervical views (top to below T2) per training radiograph")
    lower_views: int = option(4, "with --coco: views below the neck per training radiograph (empty targets)")
    test_views: int = option(5, "with --coco: fixed cervical views of each validation radiograph")
    negatives: str = option("", "folder of radiographs of other views (e.g. AP), shown with empty targets")
    n_negatives: int = option(100, "with --negatives: how many")
    variants: list[str] = option(list(VARIANTS), "variants to train (comma-separated)")
    n_train: int = option(400, "training phantoms")
    n_test: int = option(60, "test phantoms")
    steps: int = option(100, "optimizer steps per variant")
    batch_size: int = option(10, "images per step")
    lr: float = option(1e-3, "RMSprop learning rate")
    region_weight: float = option(1.0, "weight of L_r in the -R variants (the log loss weight is 1)")
    n_t: int = option(1, "the region term's n_t")
    init: str = option("", "start the variants of this model card's architecture from its weights (e.g. "
                           "cervical_fcn); the others start from scratch")
    seed: int = option(0, "random seed")
    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps")
    threads: int = option(0, "CPU threads (0: every core)")


def rotate_batch(x, y, rng):
    """Rigid rotation of images (N,1,H,W) and targets (N,H,W) by a random angle from
    {0, 5, ..., 355} degrees (nearest neighbour for the targets)."""
    import torch
    import torch.nn.functional as F

    n = x.shape[0]
    ang = np.radians(rng.integers(0, 72, n) * 5.0)
    c, s = np.cos(ang), np.sin(ang)
    theta = torch.tensor(np.stack([np.stack([c, -s, np.zeros(n)], 1), np.stack([s, c, np.zeros(n)], 1)], 1),
                         dtype=torch.float32)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    xr = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    yr = F.grid_sample(y[:, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return xr, yr[:, 0].long()


def predict_maps(net, canvases: np.ndarray, device, batch: int = 20) -> np.ndarray:
    """Spine probabilities (N, 100, 100)."""
    import torch

    net.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(canvases), batch):
            x = torch.as_tensor(canvases[s:s + batch], dtype=torch.float32)[:, None].to(device)
            out.append(torch.softmax(net(x), 1)[:, 1].cpu().numpy())
    return np.concatenate(out)


def evaluate_samples(probs: np.ndarray, samples: list[Sample]) -> dict:
    rows = []
    for p, s in zip(probs, samples, strict=True):
        pred = p > 0.5
        m = binary_metrics(pred, s.target > 0)
        row = {**m, "regions": float(n_regions(pred))}
        if s.mask is not None:
            full = map_from_canvas(p, s.record, "linear") > 0.5
            mo = binary_metrics(full, s.mask)
            row["sensitivity_original"] = mo["sensitivity"]
            row["specificity_original"] = mo["specificity"]
        rows.append(row)
    return summarize(rows)


def train_variant(variant: str, train: list[Sample], test: list[Sample], cfg: CervicalTrainConfig, out: Path) -> dict:
    """Train one variant from scratch (the shared loop, no checkpoints: a variant trains in minutes)
    and evaluate it on ``test``; writes ``<variant>_fp16.pt`` and ``<variant>_history.csv``."""
    import torch

    arch = variant.removesuffix("-R")
    region_weight = cfg.region_weight if variant.endswith("-R") else 0.0
    X = torch.as_tensor(np.stack([s.canvas for s in train]))[:, None]
    Y = torch.as_tensor(np.stack([s.target for s in train]).astype(np.int64))

    def step(net, _, rng, device):
        idx = rng.integers(0, len(train), cfg.batch_size)
        x, y = rotate_batch(X[idx], Y[idx], rng)
        loss, ce, lr_term = localisation_loss(net(x.to(device)).float(), y.to(device), region_weight, 1.0, cfg.n_t)
        return loss, {"log_loss": ce.item(), "region_term": lr_term.item()}

    spec = LoopSpec(output=str(out), steps=cfg.steps, torch_seed=cfg.seed, rng_seed=cfg.seed, device=cfg.device,
                    threads=cfg.threads, log_file=f"{variant}_history.csv",
                    log_fields=["step", "loss", "log_loss", "region_term", "seconds"], log_every=50, checkpoint=None,
                    final_weights=f"{variant}_fp16.pt")
    def make():
        net = build(arch)
        if cfg.init:
            from SpineAILib.models import load_card
            from SpineAILib.models.registry import read_state_dict, verify_weights

            card = load_card(cfg.init)
            if card.architecture_kwargs.get("variant") == arch:
                net.load_state_dict(read_state_dict(verify_weights(card)))
                print(f"{variant}: starting from {card.name}", flush=True)
        return net

    result = run_training(spec, make, lambda net: torch.optim.RMSprop(net.parameters(), lr=cfg.lr),
                          step)
    probs = predict_maps(result.net, np.stack([s.canvas for s in test]), result.device)
    return {"variant": variant, "parameters": count_parameters(result.net), "train_seconds": result.seconds,
            "steps": cfg.steps, "test_samples": len(test), "metrics": evaluate_samples(probs, test)}


def format_table(results: list[dict]) -> str:
    cols = [("accuracy", "Pixel acc."), ("dice", "Dice"), ("sensitivity", "Sens."), ("specificity", "Spec."),
            ("sensitivity_original", "Sens. (orig.)"), ("specificity_original", "Spec. (orig.)"),
            ("regions", "Regions/image")]
    lines = ["| Variant | Params | " + " | ".join(c[1] for c in cols) + " |",
             "|---|---|" + "---|" * len(cols)]
    for r in results:
        m = r["metrics"]
        cells = [f"{m[k]['mean']:.3f} ± {m[k]['std']:.3f}" if k in m else "-" for k, _ in cols]
        lines.append(f"| {r['variant']} | {r['parameters']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def coco_split(cfg: CervicalTrainConfig) -> tuple[list[Sample], list[Sample]]:
    """(training, test) samples from a COCO-keypoint lateral collection (see the module doc)."""
    from SpineAILib.io.lateral_keypoints import default_split, load_coco_keypoints

    cases = load_coco_keypoints(cfg.coco)
    split = default_split(cases)
    rng = np.random.default_rng(cfg.seed)
    train = lateral_samples([c for c in cases if c.name in split["train"]], cfg.views, rng,
                            lower_views=cfg.lower_views)
    if cfg.n_train:
        train += phantom_samples(cfg.n_train, seed=cfg.seed)
    if cfg.negatives and cfg.n_negatives:
        root = Path(cfg.negatives)
        files = list_images(root / "images" if (root / "images").is_dir() else root)
        pick = [files[i] for i in rng.choice(len(files), min(cfg.n_negatives, len(files)), replace=False)]
        train += negative_samples(pick, cfg.n_negatives, rng)
    # fixed framings of the validation images, the same for every run and seed
    test = lateral_samples([c for c in cases if c.name in split["val"]], cfg.test_views,
                           np.random.default_rng(10_000), keep_masks=True)
    return train, test


def run(cfg: CervicalTrainConfig) -> list[dict]:
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.json")
    if cfg.coco:
        # cached, so that variants trained in separate runs see the same samples
        cache = out / (f"coco_{cfg.views}_{cfg.lower_views}_{cfg.test_views}_{cfg.n_train}_"
                       f"{cfg.n_negatives if cfg.negatives else 0}_{cfg.seed}.pkl")
        if cache.is_file():
            train, test = pickle.loads(cache.read_bytes())
        else:
            train, test = coco_split(cfg)
            cache.write_bytes(pickle.dumps((train, test)))
    elif cfg.data:
        samples = folder_samples(cfg.data)
        rng = np.random.default_rng(cfg.seed)
        order = rng.permutation(len(samples))
        n_test = max(1, len(samples) // 5)
        test = [samples[i] for i in order[:n_test]]
        train = [samples[i] for i in order[n_test:]]
    else:
        # Disjoint seeds: training phantoms 0.., test phantoms from 100000 on. Cached, so that
        # variants trained in separate runs see the same phantoms.
        cache = out / f"phantoms_{cfg.n_train}_{cfg.n_test}_{cfg.seed}.pkl"
        if cache.is_file():
            train, test = pickle.loads(cache.read_bytes())
        else:
            train = phantom_samples(cfg.n_train, seed=cfg.seed)
            test = phantom_samples(cfg.n_test, seed=100_000 + cfg.seed, keep_masks=True)
            cache.write_bytes(pickle.dumps((train, test)))
    table = out / "table.json"
    done = {r["variant"]: r for r in json.loads(table.read_text(encoding="utf-8"))} if table.is_file() else {}
    for v in cfg.variants:
        if v not in VARIANTS:
            raise ValueError(f"Unknown variant {v}; expected one of {', '.join(VARIANTS)}")
        print(f"== {v}", flush=True)
        done[v] = train_variant(v, train, test, cfg, out)
        results = [done[k] for k in VARIANTS if k in done]
        table.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        (out / "table.md").write_text(format_table(results), encoding="utf-8")
    results = [done[k] for k in VARIANTS if k in done]
    print(format_table(results))
    return results


def main(argv=None) -> int:
    run(parse_config(CervicalTrainConfig, argv, "spineai train cervical", __doc__))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
