"""The three localisation networks of Al Arif et al. (region-aware localisation of the cervical
spine), re-implemented from the paper's description: 100 x 100 input, two-class output.

The paper gives parameter counts (FCN 1,199,042; DeConvNet 4,104,194; UNet 6,003,842) but its
figure with layer widths is not available. We fix the layer structure the text describes and
chose the widths (below) so that each count lands within 1 % of the paper's
(FCN 1,209,522 = +0.87 %; DeConvNet 4,082,234 = -0.54 %; UNet 6,002,450 = -0.02 %):

* FCN: six 3x3 conv layers (two per stage) with two 2x2 max-poolings (100 -> 50 -> 25), then a
  single learned deconvolution (kernel 8, stride 4) from 25 x 25 back to 100 x 100, 2 classes.
* DeConvNet: the same encoder with pooling switches; a mirrored decoder of 3x3 deconvolutions with
  max-unpooling by the stored switches; a final 1x1 layer to 2 classes.
* UNet: three levels (100, 50, 25), 2x2 transposed-conv upsampling and skip concatenation.
"""

from __future__ import annotations

from SpineAILib.errors import InputError
from SpineAILib.networks import register_architecture

PAPER_PARAMS = {"FCN": 1_199_042, "DeConvNet": 4_104_194, "UNet": 6_003_842}
WIDTHS = {"FCN": (80, 160, 224), "DeConvNet": (96, 192, 312), "UNet": (120, 240, 432)}
INPUT_SIZE = 100


def _conv(cin, cout, k=3):
    import torch.nn as nn

    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _deconv(cin, cout, k=3):
    import torch.nn as nn

    return nn.Sequential(nn.ConvTranspose2d(cin, cout, k, padding=k // 2), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def build(name: str, widths: tuple[int, int, int] | None = None):
    """Build "FCN", "DeConvNet" or "UNet" (N, 1, 100, 100) -> (N, 2, 100, 100) logits."""
    import torch
    import torch.nn as nn

    a, b, c = widths or WIDTHS[name]

    class FCN(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(_conv(1, a), _conv(a, a), nn.MaxPool2d(2), _conv(a, b), _conv(b, b),
                                          nn.MaxPool2d(2), _conv(b, c), _conv(c, c))
            self.up = nn.ConvTranspose2d(c, 2, kernel_size=8, stride=4, padding=2)

        def forward(self, x):
            return self.up(self.features(x))

    class DeConvNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.e1 = nn.Sequential(_conv(1, a), _conv(a, a))
            self.e2 = nn.Sequential(_conv(a, b), _conv(b, b))
            self.e3 = nn.Sequential(_conv(b, c), _conv(c, c))
            self.pool = nn.MaxPool2d(2, return_indices=True)
            self.unpool = nn.MaxUnpool2d(2)
            self.d3 = nn.Sequential(_deconv(c, c), _deconv(c, b))
            self.d2 = nn.Sequential(_deconv(b, b), _deconv(b, a))
            self.d1 = nn.Sequential(_deconv(a, a), _deconv(a, a))
            self.out = nn.Conv2d(a, 2, 1)

        def forward(self, x):
            x1 = self.e1(x)
            p1, i1 = self.pool(x1)
            x2 = self.e2(p1)
            p2, i2 = self.pool(x2)
            y = self.d3(self.e3(p2))
            y = self.d2(self.unpool(y, i2, output_size=x2.shape[-2:]))
            y = self.d1(self.unpool(y, i1, output_size=x1.shape[-2:]))
            return self.out(y)

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.e1 = nn.Sequential(_conv(1, a), _conv(a, a))
            self.e2 = nn.Sequential(_conv(a, b), _conv(b, b))
            self.e3 = nn.Sequential(_conv(b, c), _conv(c, c))
            self.pool = nn.MaxPool2d(2)
            self.up2 = nn.ConvTranspose2d(c, b, 2, stride=2)
            self.d2 = nn.Sequential(_conv(2 * b, b), _conv(b, b))
            self.up1 = nn.ConvTranspose2d(b, a, 2, stride=2)
            self.d1 = nn.Sequential(_conv(2 * a, a), _conv(a, a))
            self.out = nn.Conv2d(a, 2, 1)

        def forward(self, x):
            x1 = self.e1(x)
            x2 = self.e2(self.pool(x1))
            x3 = self.e3(self.pool(x2))
            y = self.d2(torch.cat([self.up2(x3), x2], 1))
            y = self.d1(torch.cat([self.up1(y), x1], 1))
            return self.out(y)

    classes = {"FCN": FCN, "DeConvNet": DeConvNet, "UNet": UNet}
    if name not in classes:
        raise InputError(f"Unknown cervical network '{name}'; expected one of {', '.join(classes)}.")
    return classes[name]()


def count_parameters(net) -> int:
    return sum(p.numel() for p in net.parameters())


@register_architecture("spineai.CervicalLocalizer")
def _cervical(**kwargs):
    return build(kwargs["variant"], tuple(kwargs["widths"]) if kwargs.get("widths") else None)
