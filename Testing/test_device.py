"""Device parsing, resolution with fallback, autocast policy."""

from __future__ import annotations

import contextlib

import pytest
import torch

from SpineAILib.device import autocast, parse_device, resolve_device, set_cpu_threads
from SpineAILib.errors import InputError


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("auto", ("auto", None)), (None, ("auto", None)), ("CPU", ("cpu", None)), ("cuda", ("cuda", None)),
     ("cuda:1", ("cuda", 1)), (" mps ", ("mps", None))],
)
def test_parse_valid(spec, expected):
    assert parse_device(spec) == expected


@pytest.mark.parametrize("spec", ["gpu", "cuda:", "cuda:x", "cpu:0", "mps:1", "", "tpu"])
def test_parse_invalid_lists_choices(spec):
    with pytest.raises(InputError, match=r"Unknown device .*expected one of auto, cpu, cuda, cuda:N, mps"):
        parse_device(spec)


def test_resolve_cpu_and_auto():
    assert resolve_device("cpu") == torch.device("cpu")
    dev = resolve_device("auto")
    assert dev.type == ("cuda" if torch.cuda.is_available() else dev.type)


@pytest.mark.skipif(torch.cuda.is_available(), reason="fallback only happens without CUDA")
def test_cuda_fallback_and_strict():
    with pytest.warns(RuntimeWarning, match="falling back to CPU"):
        assert resolve_device("cuda:0") == torch.device("cpu")
    with pytest.raises(InputError, match="CUDA is not available"):
        resolve_device("cuda", strict=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_index_out_of_range():
    with pytest.raises(InputError, match="does not exist"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_autocast_is_noop_on_cpu():
    ctx = autocast(torch.device("cpu"))
    assert isinstance(ctx, contextlib.nullcontext)
    with ctx:
        y = torch.nn.Linear(3, 2)(torch.ones(1, 3))
    assert y.dtype == torch.float32


def test_set_cpu_threads(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert set_cpu_threads(1) == 1
        monkeypatch.setenv("SPINEAI_NUM_THREADS", "2")
        assert set_cpu_threads() == 2
    finally:
        torch.set_num_threads(before)
