"""The shared training loop and config-as-command-line, on a tiny linear model (exact answers)."""

from __future__ import annotations

import csv
from dataclasses import dataclass

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from SpineAILib.training.config import config_from_args, config_parser, option  # noqa: E402
from SpineAILib.training.loop import LoopSpec, one_cycle, run_training, step_decay  # noqa: E402


@dataclass
class _Cfg:
    data: str = option("", "input folder", required=True)
    steps: int = option(10, "optimizer steps")
    lr: float = option(0.1, "learning rate")
    names: list[str] = option(["a", "b"], "some names")
    shape: tuple[float, ...] = option((1.0, 2.0), "a shape")
    flip: bool = option(True, "flip")
    stage: str = option("both", "stage", choices=("one", "both"))
    hidden: int = option(3, cli=False)


def test_config_command_line_from_the_dataclass():
    p = config_parser(_Cfg, "prog", "doc")
    cfg = config_from_args(_Cfg, p.parse_args(["--data", "D"]))
    assert cfg == _Cfg(data="D")
    cfg = config_from_args(_Cfg, p.parse_args(["--data", "D", "--steps", "3", "--names", "x,y", "--names", "z",
                                               "--shape", "4,5.5", "--no-flip", "--stage", "one"]))
    assert cfg == _Cfg(data="D", steps=3, names=["x", "y", "z"], shape=(4.0, 5.5), flip=False, stage="one")
    assert _Cfg().names is not _Cfg().names  # a list default is copied per instance
    with pytest.raises(SystemExit):
        p.parse_args([])  # --data is required
    with pytest.raises(SystemExit):
        p.parse_args(["--data", "D", "--stage", "three"])
    with pytest.raises(SystemExit):
        p.parse_args(["--data", "D", "--shape", "1,x"])
    assert "--hidden" not in p.format_help() and "optimizer steps (default: 10)" in p.format_help()


def _problem():
    """y = 2 x on fixed inputs: the step ignores the generator, so a resumed run equals a straight one."""
    x = torch.linspace(-1, 1, 8)[:, None]

    def step(net, k, rng, device):
        pred = net(x.to(device))
        return ((pred - 2 * x.to(device)) ** 2).mean(), {"k": float(k)}

    return step


def _run(tmp_path, steps, stop_at=None):
    spec = LoopSpec(output=str(tmp_path), steps=steps, device="cpu", log_every=2, checkpoint_every=2,
                    final_weights="w.pt")
    problem = _problem()

    def step(net, k, rng, device):
        if k == stop_at:
            raise KeyboardInterrupt  # the run is killed here (after the checkpoint of step k)
        return problem(net, k, rng, device)

    return run_training(spec, lambda: torch.nn.Linear(1, 1),
                        lambda net: torch.optim.SGD(net.parameters(), lr=0.1), step, one_cycle(0.1),
                        log=lambda m: None)


def test_loop_trains_logs_checkpoints_and_resumes_exactly(tmp_path):
    straight = _run(tmp_path / "a", 6)
    assert straight.steps == 6 and straight.start == 0
    rows = list(csv.DictReader(open(tmp_path / "a" / "log.csv", encoding="utf-8")))
    assert [r["step"] for r in rows] == ["2", "4", "6"]
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])  # it learns
    assert (tmp_path / "a" / "w.pt").is_file() and (tmp_path / "a" / "checkpoint.pt").is_file()
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "b", 6, stop_at=4)
    resumed = _run(tmp_path / "b", 6)  # the same command again: continues at step 4, schedule and all
    assert resumed.start == 4
    torch.testing.assert_close(resumed.net.weight, straight.net.weight, rtol=0, atol=0)
    torch.testing.assert_close(resumed.net.bias, straight.net.bias, rtol=0, atol=0)
    longer = _run(tmp_path / "b", 8)  # more steps than before: continues from the last checkpoint (6)
    assert longer.start == 6 and longer.steps == 8


def test_loop_validation_keeps_the_best_weights_and_epochs(tmp_path):
    scores = iter([3.0, 1.0, 2.0])

    def validate(net, device):
        net.eval()  # as a real validation does
        return {"score": next(scores)}

    spec = LoopSpec(output=str(tmp_path), steps=6, device="cpu", log_every=2, checkpoint=None, validate_every=2,
                    best_key="score", best_weights="best.pt", steps_per_epoch=2,
                    log_fields=["step", "epoch", "loss", "score"])
    seen = []

    def step(net, k, rng, device):
        seen.append(net.training)  # the loop puts the network back in training mode after validation
        return _problem()(net, k, rng, device)

    r = run_training(spec, lambda: torch.nn.Linear(1, 1), lambda net: torch.optim.SGD(net.parameters(), lr=0.1),
                     step, validate=validate, log=lambda m: None)
    assert r.best == {"score": 1.0, "step": 4} and (tmp_path / "best.pt").is_file() and all(seen)
    rows = list(csv.DictReader(open(tmp_path / "log.csv", encoding="utf-8")))
    assert [(r["step"], r["epoch"], r["score"]) for r in rows] == [("2", "0", "3.0"), ("4", "1", "1.0"),
                                                                   ("6", "2", "2.0")]
    assert not (tmp_path / "checkpoint.pt").exists()


def test_loop_generator_is_seeded_and_reseeded_on_resume(tmp_path):
    drawn = []

    def step(net, k, rng, device):
        drawn.append(float(rng.random()))
        return _problem()(net, k, rng, device)

    spec = LoopSpec(output=str(tmp_path), steps=2, device="cpu", rng_seed=7, checkpoint_every=1)
    run_training(spec, lambda: torch.nn.Linear(1, 1), lambda net: torch.optim.SGD(net.parameters(), lr=0.1), step,
                 log=lambda m: None)
    assert drawn == list(np.random.default_rng(7).random(2))
    spec.steps = 3
    run_training(spec, lambda: torch.nn.Linear(1, 1), lambda net: torch.optim.SGD(net.parameters(), lr=0.1), step,
                 log=lambda m: None)
    assert drawn[2] == np.random.default_rng(7 + 100 + 2).random()


def test_step_decay_schedule():
    net = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    sched = step_decay((0.5, 0.75), 0.1)(opt, 8, 0)
    lrs = []
    for _ in range(8):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    np.testing.assert_allclose(lrs, [1, 1, 1, 1, 0.1, 0.1, 0.01, 0.01])
