"""One device resolver for every task: validation, fallback, autocast policy, CPU threads."""

from __future__ import annotations

import contextlib
import os
import re
import warnings

from SpineAILib.errors import InputError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
_PATTERN = re.compile(r"^(auto|cpu|mps|cuda)(?::(\d+))?$")


def parse_device(spec: str | None) -> tuple[str, int | None]:
    """Validate a device string without importing torch: returns (kind, index).

    Accepted: "auto", "cpu", "cuda", "cuda:N", "mps" (case-insensitive); None means "auto".
    """
    s = "auto" if spec is None else str(spec).strip().lower()
    m = _PATTERN.match(s)
    if not m or (m.group(2) is not None and m.group(1) != "cuda"):
        raise InputError(f"Unknown device '{spec}'; expected one of {', '.join(DEVICE_CHOICES)}.")
    return m.group(1), (int(m.group(2)) if m.group(2) is not None else None)


def set_cpu_threads(n: int | None = None) -> int:
    """Use all cores (or SPINEAI_NUM_THREADS / ``n``) for intra-op CPU parallelism."""
    import torch

    if n is None:
        n = int(os.environ.get("SPINEAI_NUM_THREADS", "0")) or (os.cpu_count() or 1)
    torch.set_num_threads(max(1, int(n)))
    return torch.get_num_threads()


def resolve_device(spec: str | None = "auto", strict: bool = False):
    """Return a ``torch.device`` for ``spec``.

    "auto" picks CUDA, then MPS, then CPU. An explicit "cuda"/"mps" that is not available
    falls back to CPU with a warning, unless ``strict`` (then InputError). "cuda:N" beyond the
    number of GPUs is an error.
    """
    kind, index = parse_device(spec)
    import torch

    cuda_ok = torch.cuda.is_available()
    mps_ok = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if kind == "auto":
        if cuda_ok:
            return torch.device("cuda", 0)
        return torch.device("mps") if mps_ok else torch.device("cpu")
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "cuda":
        if not cuda_ok:
            msg = f"Device '{spec}' requested but CUDA is not available on this machine"
            if strict:
                raise InputError(msg + "; use --device cpu or auto.")
            warnings.warn(msg + "; falling back to CPU.", RuntimeWarning, stacklevel=2)
            return torch.device("cpu")
        n = torch.cuda.device_count()
        if index is not None and index >= n:
            raise InputError(
                f"Device '{spec}' does not exist: this machine has {n} CUDA device(s) (cuda:0..cuda:{n - 1})."
            )
        return torch.device("cuda", index or 0)
    # mps
    if not mps_ok:
        msg = f"Device '{spec}' requested but Apple MPS is not available"
        if strict:
            raise InputError(msg + "; use --device cpu or auto.")
        warnings.warn(msg + "; falling back to CPU.", RuntimeWarning, stacklevel=2)
        return torch.device("cpu")
    return torch.device("mps")


def autocast(device, enabled: bool = True):
    """Mixed precision only on CUDA (bf16 where supported, e.g. Hopper; else fp16).
    On CPU/MPS a no-op context, because CPU autocast is slower for our conv nets."""
    import torch

    if not enabled or getattr(device, "type", str(device)) != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def describe_device(device) -> str:
    """Human-readable device description for reports."""
    import torch

    if device.type == "cuda":
        return f"cuda:{device.index or 0} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    return str(device)
