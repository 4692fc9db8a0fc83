"""Network architectures by name, so a model card can say which one to build (config as data).

Standard networks come from MONAI; task packages register their own with
:func:`register_architecture`. Nothing here imports torch until a network is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from SpineAILib.errors import ModelError

_REGISTRY: dict[str, Callable[..., Any]] = {}


def register_architecture(name: str) -> Callable:
    """Decorator: register a builder ``f(**kwargs) -> torch.nn.Module`` under ``name``."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        _REGISTRY[name] = fn
        return fn

    return deco


@register_architecture("monai.UNet")
def _monai_unet(**kwargs: Any):
    from monai.networks.nets import UNet

    return UNet(**kwargs)


@register_architecture("monai.BasicUNet")
def _monai_basic_unet(**kwargs: Any):
    from monai.networks.nets import BasicUNet

    return BasicUNet(**kwargs)


@register_architecture("monai.DynUNet")
def _monai_dynunet(**kwargs: Any):
    from monai.networks.nets import DynUNet

    return DynUNet(**kwargs)


def available_architectures() -> list[str]:
    return sorted(_REGISTRY)


def build_network(architecture: str, **kwargs: Any):
    """Instantiate a registered architecture with ``kwargs`` (from the model card)."""
    if architecture not in _REGISTRY:
        raise ModelError(
            f"Unknown architecture '{architecture}'; registered: {', '.join(available_architectures())}."
        )
    try:
        return _REGISTRY[architecture](**kwargs)
    except TypeError as exc:
        raise ModelError(
            f"Architecture '{architecture}' does not accept the card's arguments {kwargs}: {exc}"
        ) from None
