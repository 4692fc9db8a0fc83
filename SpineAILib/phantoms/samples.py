"""Phantom images offered as Slicer sample data (Sample Data module, category "SpineAI"), one per
module, so a new user can try each module without their own images. Built on request (a few
seconds, no download); they are synthetic and only show how each module works."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from SpineAILib.io.image import Image


@dataclass(frozen=True)
class PhantomSample:
    name: str            # node name and Sample Data button text
    module: str          # the SpineAI module it is meant for
    description: str
    build: Callable[[], Image]


def _ct() -> Image:
    from SpineAILib.phantoms import CTPhantomConfig, ct_spine_phantom

    return ct_spine_phantom(CTPhantomConfig(first="T11", last="L4", spacing=(1.2, 1.2, 1.5),
                                            height_loss={"L1": ("wedge", 0.3)})).image


def _ap() -> Image:
    from SpineAILib.phantoms import ap_radiograph_phantom

    return ap_radiograph_phantom().image


def _cervical() -> Image:
    from SpineAILib.phantoms import lateral_cervical_phantom

    return lateral_cervical_phantom().image


def _lateral() -> Image:
    from SpineAILib.phantoms import lateral_spine_phantom

    return lateral_spine_phantom().image


SAMPLES: tuple[PhantomSample, ...] = (
    PhantomSample("SpineAI CT phantom", "VertebraLabeling",
                  "Synthetic CT T11-L4 with a wedge-shaped L1 (Vertebra Labeling, Vertebral Body)", _ct),
    PhantomSample("SpineAI AP radiograph phantom", "CobbAngle", "Synthetic AP spine radiograph (Cobb Angle)", _ap),
    PhantomSample("SpineAI lateral cervical phantom", "CervicalLocalization",
                  "Synthetic lateral neck radiograph (Cervical Localization)", _cervical),
    PhantomSample("SpineAI lateral spine phantom", "XrayVertebrae",
                  "Synthetic lateral whole-spine radiograph (X-ray Vertebrae)", _lateral),
)
