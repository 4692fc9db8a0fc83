"""The one training loop every trainer runs (nnU-Net style: the trainer says what a step computes,
the loop does the rest).

Stages, in order: seed torch (``torch_seed``), build the network and move it to the device
(CUDA, then MPS, then CPU with ``device="auto"``; all CPU threads unless ``threads``), the
optimizer, resume from the checkpoint when one exists, the schedule at the resumed step, then
``steps`` optimizer steps. A step: ``step_fn(net, step, rng, device)`` computes the loss (and
metrics to log) (under
mixed precision on CUDA, with gradient scaling), backward, optimizer and scheduler step. Every
``log_every`` steps one history row (mean loss and metrics since the last row, validation
metrics when ``validate`` ran, the seconds since the previous row); every ``checkpoint_every`` steps and at the
end a resumable checkpoint (written atomically); on a validation improvement the fp16 weights
``best_weights``; at the end the fp16 weights ``final_weights``.

Random numbers: ``step_fn`` draws from the numpy generator the loop hands it, seeded with
``rng_seed`` on a fresh run and with ``rng_seed + 100 + step`` when resuming, so a fresh run is
reproducible (torch and numpy seeded before the network is built).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from SpineAILib.device import autocast, describe_device, resolve_device, set_cpu_threads
from SpineAILib.training.common import (
    TrainingLog,
    load_fp16_weights,
    resume,
    save_checkpoint,
    save_fp16_weights,
    seed_everything,
)

StepFn = Callable[[Any, int, np.random.Generator, Any], tuple[Any, dict[str, float]]]


@dataclass
class LoopSpec:
    """What the loop needs besides the network, optimizer and step. Paths are relative to ``output``."""

    output: str
    steps: int
    torch_seed: int = 0
    rng_seed: int = 0
    device: str = "auto"
    threads: int = 0  # CPU threads (0: every core)
    init: str = ""  # fp16 weights to start from (fine-tuning, training longer)
    log_file: str = "log.csv"
    log_fields: list[str] = field(default_factory=lambda: ["step", "loss", "seconds"])
    log_every: int = 25
    checkpoint: str | None = "checkpoint.pt"  # None: no checkpoints, no resume
    checkpoint_every: int = 100
    final_weights: str | None = None  # fp16 weights written at the end
    validate_every: int = 0  # 0: no validation
    best_key: str = ""  # validation metric, lower is better; its best epoch's weights go to best_weights
    best_weights: str | None = None
    steps_per_epoch: int = 0  # > 0: history rows also carry the (0-based) epoch of their last step
    amp: bool = True  # mixed precision on CUDA


@dataclass
class LoopResult:
    net: Any
    device: Any
    steps: int  # steps done in total (this run and the ones it resumed)
    start: int  # the step this run started from
    seconds: float  # this run
    best: dict[str, float] = field(default_factory=dict)


def run_training(spec: LoopSpec, build_net: Callable[[], Any], make_optimizer: Callable[[Any], Any],
                 step_fn: StepFn, make_scheduler: Callable[[Any, int, int], Any] | None = None,
                 validate: Callable[[Any, Any], dict[str, float]] | None = None,
                 log: Callable[[str], None] = print) -> LoopResult:
    """Train (see the module docstring). ``make_optimizer(net)``; ``make_scheduler(optimizer,
    total_steps, last_step)`` builds a per-step schedule positioned after ``last_step`` steps
    (``last_epoch=last_step - 1`` for torch schedulers), so a resumed run continues it even when
    ``steps`` was raised; ``validate(net, device)`` returns metrics (the loop puts the network
    back in training mode)."""
    import torch

    out = Path(spec.output)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(spec.torch_seed)
    device = resolve_device(spec.device)
    if device.type == "cpu":
        set_cpu_threads(spec.threads or None)
    net = build_net()
    if spec.init:
        load_fp16_weights(net, spec.init)
        log(f"initialised from {spec.init}")
    net = net.to(device)
    optimizer = make_optimizer(net)
    start, best = 0, {}
    ck = resume(out / spec.checkpoint, net, optimizer) if spec.checkpoint else None
    if ck:
        start, best = int(ck["step"]), dict(ck.get("best", {}))
        log(f"resumed at step {start}")
    scheduler = make_scheduler(optimizer, spec.steps, start) if make_scheduler else None
    rng = np.random.default_rng(spec.rng_seed if start == 0 else spec.rng_seed + 100 + start)
    use_amp = spec.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    history = TrainingLog(out / spec.log_file, spec.log_fields)
    log(f"device: {describe_device(device)}; steps {start}..{spec.steps}")
    sums: dict[str, float] = {}
    n_summed = 0
    t0 = t_row = time.time()
    net.train()
    for step in range(start, spec.steps):
        with autocast(device, use_amp):
            loss, metrics = step_fn(net, step, rng, device)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if scheduler is not None:
            scheduler.step()
        for k, v in {"loss": float(loss.detach()), **metrics}.items():
            sums[k] = sums.get(k, 0.0) + float(v)
        n_summed += 1
        done = step + 1
        last = done == spec.steps
        row: dict[str, Any] = {}
        if validate is not None and spec.validate_every and (done % spec.validate_every == 0 or last):
            row = dict(validate(net, device))
            net.train()
            if spec.best_key and row[spec.best_key] < best.get(spec.best_key, float("inf")):
                best = {**row, "step": done}
                if spec.best_weights:
                    save_fp16_weights(net.state_dict(), out / spec.best_weights)
        if done % spec.log_every == 0 or last:
            epoch = {"epoch": step // spec.steps_per_epoch} if spec.steps_per_epoch else {}
            history.write(step=done, **epoch, **{k: v / n_summed for k, v in sums.items()}, **row,
                          seconds=round(time.time() - t_row, 1))
            sums, n_summed, t_row = {}, 0, time.time()
        if spec.checkpoint and (done % spec.checkpoint_every == 0 or last):
            save_checkpoint(out / spec.checkpoint, model=net.state_dict(), optimizer=optimizer.state_dict(),
                            step=done, best=best)
    if spec.final_weights:
        (out / spec.final_weights).parent.mkdir(parents=True, exist_ok=True)
        save_fp16_weights(net.state_dict(), out / spec.final_weights)
    return LoopResult(net, device, max(start, spec.steps), start, round(time.time() - t0, 1), best)


def one_cycle(max_lr: float, pct_start: float = 0.1) -> Callable[[Any, int, int], Any]:
    """``make_scheduler`` for a one-cycle schedule over the run's steps."""

    def make(optimizer, total_steps: int, last_step: int):
        import torch

        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=max(total_steps, 1),
                                                   pct_start=pct_start, last_epoch=last_step - 1)

    return make


def step_decay(milestones: tuple[float, ...] = (0.6, 0.85), factor: float = 0.3) -> Callable[[Any, int, int], Any]:
    """``make_scheduler`` multiplying the learning rate by ``factor`` at each fraction of the run's
    steps in ``milestones``."""

    def make(optimizer, total_steps: int, last_step: int):
        import torch

        def scale(step: int) -> float:
            return factor ** sum(step >= m * total_steps for m in milestones)

        return torch.optim.lr_scheduler.LambdaLR(optimizer, scale, last_epoch=last_step - 1)

    return make
