"""A small encoder-decoder for 2D heatmap/offset landmark networks (radiographs), shared by the
X-ray tasks. Five stride-2 encoder stages (the deepest features see the whole canvas), a decoder
with skip connections back up to ``out_stride`` (4 or 2), and a 3x3 + 1x1 head. Sized to train
and run on a CPU. Built lazily (torch imported inside).

Tensor layout: input (N, in_channels, H, W); output (N, n_out, H / out_stride, W / out_stride).
"""

from __future__ import annotations


def conv_block(cin: int, cout: int, stride: int = 1):
    """Two 3x3 conv + batch norm + ReLU; the first with ``stride``."""
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


def build_heatmap_net(n_out: int, widths: tuple[int, ...] = (16, 32, 64, 96, 128), head_width: int = 64,
                      out_stride: int = 4, in_channels: int = 1, head_bias: dict[int, float] | None = None):
    """Encoder (strides 2, 4, ..., 2**len(widths)) and a decoder back to ``out_stride``.

    ``head_bias``: initial bias of some output channels (e.g. -4.6 so a focal-loss heatmap
    starts near 0.01); the others start at 0."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    if out_stride not in (2, 4):
        raise ValueError(f"out_stride must be 2 or 4, got {out_stride}")
    last = 1 if out_stride == 4 else 0  # encoder index the decoder ends at

    class HeatmapNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            w = list(widths)
            self.enc = nn.ModuleList([conv_block(in_channels, w[0], 2)]
                                     + [conv_block(w[i - 1], w[i], 2) for i in range(1, len(w))])
            self.up = nn.ModuleList(conv_block(w[i] + w[i - 1], w[i - 1]) for i in range(len(w) - 1, last, -1))
            self.head = nn.Sequential(nn.Conv2d(w[last], head_width, 3, padding=1), nn.ReLU(inplace=True),
                                      nn.Conv2d(head_width, n_out, 1))
            nn.init.constant_(self.head[-1].bias, 0.0)
            with torch.no_grad():
                for ch, value in (head_bias or {}).items():
                    self.head[-1].bias[ch] = value

        def forward(self, x):
            feats = []
            for enc in self.enc:
                x = enc(x)
                feats.append(x)
            y = feats[-1]
            for k, up in enumerate(self.up):
                skip = feats[len(feats) - 2 - k]
                y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
                y = up(torch.cat([y, skip], 1))
            return self.head(y)

    return HeatmapNet()
