"""The two networks of McCouat & Glocker, rebuilt in PyTorch from the paper's description.

* Detection: a 3D U-Net (conv 3^3 + batch norm + ReLU, two per level, max-pool / transposed
  conv), 1 input channel (scaled HU), 2 output channels (background, vertebra).
* Identification: a 2D U-Net whose input channels are 8 adjacent sagittal slices and whose
  lowest level uses large anisotropic kernels (5 x 20 on (AP, SI)) for a receptive field that
  spans most of the column; one output channel: the continuous vertebra index.

Array layouts: detection (N, 1, z, y, x); identification (N, 8, y, z) = (slices, AP, SI). Both
are fully convolutional: any size that is a multiple of 2**levels works at test time.
"""

from __future__ import annotations

from SpineAILib.networks import register_architecture
from SpineAILib.networks.unet import build_unet

DETECTION_KWARGS = {"channels": [8, 16, 32, 64]}
IDENTIFICATION_KWARGS = {"channels": [16, 32, 48, 64, 64], "bottom_kernel": [5, 20], "in_channels": 8}


@register_architecture("spineai.VertebraDetection3D")
def _detection(channels=(8, 16, 32, 64)):
    return build_unet(3, 1, 2, tuple(channels))


@register_architecture("spineai.VertebraIdentification2D")
def _identification(channels=(16, 32, 48, 64, 64), bottom_kernel=(5, 20), in_channels: int = 8):
    return build_unet(2, in_channels, 1, tuple(channels), tuple(bottom_kernel))
