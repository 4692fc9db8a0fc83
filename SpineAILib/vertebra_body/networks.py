"""The two networks of this capability, registered by name for the model cards.

**Click-to-segment** (after Klein et al.): a 3D U-Net on a 1 mm crop around the click.

The paper's U-Net has 6 levels and 32 base filters (about 1.2 G multiply-adds per voxel block at
128 x 128 x 64, several seconds per click on a CPU). Ours is sized to answer a click in well
under 2 s on a 2-core CPU: 4 levels, 8-16-32-64 filters. Input channels: scaled HU and a
Gaussian of the click (so a smaller receptive field still knows which body was clicked);
output: one logit per voxel (vertebral body of the clicked vertebra).

**Fracture voxel classifier**: the dual-pathway 3D CNN of Nicolaes et al. ("Detection of
vertebral fractures in CT using 3D CNNs", after DeepMedic): an 11-layer voxel classifier with a
normal-resolution pathway and a pathway on the input subsampled by 3, both of eight 3x3x3 valid
convolutions (receptive fields 17^3 and 3 x 17 = 51^3 voxels), the low-resolution features
upsampled by 3 and concatenated, then three 1x1x1 layers to 3 classes (background, normal vertebra, fractured vertebra).

Widths below give 228,119 parameters (the paper: about 230 K).
"""

from __future__ import annotations

from SpineAILib.networks import register_architecture
from SpineAILib.networks.unet import build_unet

BODY_KWARGS = {"channels": [8, 16, 32, 64]}


@register_architecture("spineai.BodySegmentation3D")
def _body(channels=(8, 16, 32, 64)):
    return build_unet(3, 2, 1, tuple(channels))


CONV_WIDTHS = (14, 14, 22, 22, 24, 24, 30, 30)
FC_WIDTHS = (128, 128)
N_CLASSES = 3
RF_NORMAL = 1 + 2 * len(CONV_WIDTHS)  # 17
RF_SUBSAMPLED = 3 * RF_NORMAL  # 51


def build_dual_pathway(conv_widths=CONV_WIDTHS, fc_widths=FC_WIDTHS, n_classes: int = N_CLASSES):
    """Inputs: ``normal`` (N, 1, a, a, a) at full resolution and ``low`` (N, 1, b, b, b) the
    surroundings subsampled by 3, with b - 16 = (a - 16) / 3; output (N, 3, a - 16, a - 16, a - 16)."""
    import torch
    import torch.nn as nn

    def pathway():
        layers, cin = [], 1
        for w in conv_widths:
            layers += [nn.Conv3d(cin, w, 3), nn.BatchNorm3d(w), nn.PReLU(w)]
            cin = w
        return nn.Sequential(*layers)

    class DualPathway(nn.Module):
        def __init__(self):
            super().__init__()
            self.normal = pathway()
            self.low = pathway()
            cin, fc = 2 * conv_widths[-1], []
            for w in fc_widths:
                fc += [nn.Conv3d(cin, w, 1), nn.BatchNorm3d(w), nn.PReLU(w)]
                cin = w
            fc.append(nn.Conv3d(cin, n_classes, 1))
            self.fc = nn.Sequential(*fc)

        def forward(self, normal, low):
            a = self.normal(normal)
            b = nn.functional.interpolate(self.low(low), scale_factor=3, mode="nearest")
            if b.shape[2:] != a.shape[2:]:
                raise ValueError(f"pathway outputs differ: {tuple(a.shape[2:])} vs upsampled {tuple(b.shape[2:])}")
            return self.fc(torch.cat([a, b], 1))

    return DualPathway()


@register_architecture("spineai.DualPathway3D")
def _dual(**kwargs):
    return build_dual_pathway(tuple(kwargs.get("conv_widths", CONV_WIDTHS)), tuple(kwargs.get("fc_widths", FC_WIDTHS)))
