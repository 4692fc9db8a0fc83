"""Model cards and loading.

A model is two files in the models folder (``Resources/Models`` by default, or
``$SPINEAI_MODELS``):

* ``<name>.json``: the card (task, architecture and its kwargs, input spacing/size,
  intensity normalisation, label map, training data, split, seed, metrics, commit, date, and
  the weights file's sha256);
* the weights file it names (a torch state dict, fp16 allowed).

:func:`load_model` refuses a file whose sha256 differs from the card's. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from SpineAILib.errors import ModelError
from SpineAILib.networks import build_network

CARD_FIELDS_REQUIRED = ("name", "task", "architecture", "weights", "sha256")


def default_models_dir() -> Path:
    """``$SPINEAI_MODELS`` if set; else the models installed with the package (a wheel carries
    them in ``SpineAILib/_models``); else the nearest ``Resources/Models`` above this package (the
    source tree, or the Slicer extension's install tree, which has the same layout)."""
    env = os.environ.get("SPINEAI_MODELS")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    packaged = here.parents[1] / "_models"
    if packaged.is_dir():
        return packaged
    for parent in here.parents:
        cand = parent / "Resources" / "Models"
        if cand.is_dir():
            return cand
    return here.parents[2] / "Resources" / "Models"


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class ModelCard:
    """Everything needed to rebuild, feed and judge a model (see module docstring)."""

    name: str
    task: str
    architecture: str
    weights: str
    sha256: str
    architecture_kwargs: dict[str, Any] = field(default_factory=dict)
    input: dict[str, Any] = field(default_factory=dict)  # spacing_mm, patch/canvas size, channels
    intensity: dict[str, Any] = field(default_factory=lambda: {"type": "none"})
    labels: dict[str, Any] = field(default_factory=dict)  # class names; or index_offset
    training: dict[str, Any] = field(default_factory=dict)  # data, split, seed, epochs, hardware, time
    metrics: dict[str, Any] = field(default_factory=dict)
    # small models fitted on this network's outputs (e.g. the Cobb confidence and cut-off flags)
    calibration: dict[str, Any] = field(default_factory=dict)
    commit: str = ""
    date: str = ""
    description: str = ""
    path: str = ""  # where the card was read from (not saved)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("path")
        return d


def load_card(name_or_path: str | os.PathLike, models_dir: str | os.PathLike | None = None) -> ModelCard:
    """Read a model card by model name (looked up in ``models_dir``) or by path to its JSON."""
    p = Path(name_or_path)
    if p.suffix != ".json":
        p = Path(models_dir or default_models_dir()) / f"{name_or_path}.json"
    if not p.is_file():
        known = ", ".join(c.name for c in list_models(p.parent)) or "none"
        raise ModelError(f"Model card not found: {p}. Models available there: {known}. Set SPINEAI_MODELS to "
                         "the folder that holds the SpineAI models (Resources/Models of a source checkout).")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelError(f"Model card {p} is not valid JSON: {exc}") from None
    missing = [k for k in CARD_FIELDS_REQUIRED if not data.get(k)]
    if missing:
        raise ModelError(f"Model card {p} lacks required field(s): {', '.join(missing)}.")
    known_fields = set(ModelCard.__dataclass_fields__)
    card = ModelCard(**{k: v for k, v in data.items() if k in known_fields and k != "path"})
    card.path = str(p)
    return card


def check_models(models_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Every card in the folder with its state: {"file", "name", "task", "architecture", "ok",
    "problem"}; ``ok`` means the card is valid and its weights exist with the card's sha256."""
    d = Path(models_dir or default_models_dir())
    out = []
    for p in sorted(d.glob("*.json")) if d.is_dir() else []:
        row: dict[str, Any] = {"file": p.name, "name": p.stem, "task": "", "architecture": "", "ok": False,
                               "problem": ""}
        try:
            card = load_card(p)
            row.update(name=card.name, task=card.task, architecture=card.architecture, metrics=card.metrics)
            verify_weights(card)
            row["ok"] = True
        except ModelError as exc:
            row["problem"] = str(exc)
        out.append(row)
    return out


def list_models(models_dir: str | os.PathLike | None = None) -> list[ModelCard]:
    """All readable cards in the folder (unreadable ones are skipped here; load_card explains)."""
    d = Path(models_dir or default_models_dir())
    cards = []
    for p in sorted(d.glob("*.json")) if d.is_dir() else []:
        try:
            cards.append(load_card(p))
        except ModelError:
            continue
    return cards


def write_card(card: ModelCard, models_dir: str | os.PathLike) -> Path:
    """Write ``card`` next to its weights, filling in the sha256 from the weights file."""
    d = Path(models_dir)
    weights = d / card.weights
    if not weights.is_file():
        raise ModelError(f"Weights file {weights} does not exist; save the weights before the card.")
    card.sha256 = sha256_file(weights)
    out = d / f"{card.name}.json"
    out.write_text(json.dumps(card.to_dict(), indent=2) + "\n", encoding="utf-8")
    return out


def verify_weights(card: ModelCard) -> Path:
    """Path of the card's weights after checking existence and sha256."""
    weights = Path(card.path).parent / card.weights
    if not weights.is_file():
        raise ModelError(f"Weights file for model '{card.name}' is missing: {weights}. Reinstall SpineAI.")
    digest = sha256_file(weights)
    if digest != card.sha256:
        raise ModelError(
            f"Weights file {weights.name} of model '{card.name}' is corrupt or was replaced: sha256 {digest[:12]}... "
            f"does not match the card's {card.sha256[:12]}.... Reinstall SpineAI or retrain the model."
        )
    return weights


def read_state_dict(path: str | os.PathLike) -> dict:
    """A saved state dict (fp16 as shipped, or fp32) on the CPU with its floating-point tensors as
    fp32 (integer buffers, e.g. batch norm's step count, as saved)."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def load_model(name: str | os.PathLike, device: Any = "cpu", models_dir: str | os.PathLike | None = None):
    """Build the card's network, load its verified weights (fp32), move to ``device``, eval mode.

    Returns (module, card).
    """
    import torch

    card = load_card(name, models_dir)
    weights = verify_weights(card)
    net = build_network(card.architecture, **card.architecture_kwargs)
    try:
        state = read_state_dict(weights)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means an unusable file
        raise ModelError(f"Could not read weights {weights.name} of model '{card.name}': {exc}") from None
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(f"Weights of model '{card.name}' do not fit architecture {card.architecture}: {exc}") from None
    dev = torch.device(device) if isinstance(device, str) else device
    return net.to(dev).eval(), card


_CACHE: dict[tuple[str, str, str], tuple] = {}


def cached_model(name: str, device: Any = "cpu", models_dir: str | os.PathLike | None = None, prepare=None):
    """:func:`load_model` once per process and (name, device, folder): batch and Slicer-console
    use call a task many times. ``prepare(net) -> net`` (e.g. inference-only fusing) runs once,
    before caching. Returns (module, card)."""
    key = (str(models_dir or ""), str(name), str(device))
    if key not in _CACHE:
        net, card = load_model(name, device, models_dir)
        _CACHE[key] = (prepare(net) if prepare else net, card)
    return _CACHE[key]
