"""Click-to-segment network (after Klein et al.): a 3D U-Net on a 1 mm crop around the click.

The paper's U-Net has 6 levels and 32 base filters (about 1.2 G multiply-adds per voxel block at
128 x 128 x 64, several seconds per click on a CPU). Ours is sized to answer a click in well
under 2 s on a 2-core CPU: 4 levels, 8-16-32-64 filters. Input channels: scaled HU and a
Gaussian of the click (so a smaller receptive field still knows which body was clicked);
output: one logit per voxel (vertebral body of the clicked vertebra)."""

from __future__ import annotations

from SpineAILib.networks import register_architecture
from SpineAILib.networks.unet import build_unet

BODY_KWARGS = {"channels": [8, 16, 32, 64]}


@register_architecture("spineai.BodySegmentation3D")
def _body(channels=(8, 16, 32, 64)):
    return build_unet(3, 2, 1, tuple(channels))
