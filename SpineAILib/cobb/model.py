"""Landmark network for AP radiographs: vertebra-focused centre heatmap + corner offsets.

Following the vertebra-focused design (Yi et al., MICCAI 2020): one heatmap of vertebra centres
at stride 4, a sub-pixel centre offset, and for every centre the offsets to its four corners.
Decoding takes the 17 strongest peaks, orders them top to bottom (T1..L5) and adds the corner
offsets. The network is a small U-Net-style encoder-decoder (five stride-2 stages, so the
deepest features see the whole canvas) sized to train and run on a CPU.

Tensor layout: input (N, 1, H, W), H = rows of the canvas; outputs at (H/4, W/4):
channel 0 heatmap logit, 1-2 centre offset (x, y), 3-10 corner offsets (TL, TR, BL, BR; x, y),
in output pixels.
"""

from __future__ import annotations

from SpineAILib.networks import register_architecture

STRIDE = 4
N_OUT = 11


def _block(cin: int, cout: int, stride: int = 1):
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


def build_landmark_net(widths: tuple[int, ...] = (16, 32, 64, 96, 128), head_width: int = 64):
    """Encoder (strides 2, 4, 8, 16, 32) and a decoder back to stride 4 with skip connections."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class LandmarkNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            w = list(widths)
            self.enc = nn.ModuleList([_block(1, w[0], 2)] + [_block(w[i - 1], w[i], 2) for i in range(1, len(w))])
            # decoder: from the deepest stage up to stride 4 (encoder index 1)
            self.up = nn.ModuleList()
            for i in range(len(w) - 1, 1, -1):
                self.up.append(_block(w[i] + w[i - 1], w[i - 1]))
            self.head = nn.Sequential(nn.Conv2d(w[1], head_width, 3, padding=1), nn.ReLU(inplace=True),
                                      nn.Conv2d(head_width, N_OUT, 1))
            # CenterNet-style prior: heatmap starts near 0.01 so the focal loss is stable.
            nn.init.constant_(self.head[-1].bias, 0.0)
            with torch.no_grad():
                self.head[-1].bias[0] = -4.6

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

    return LandmarkNet()


@register_architecture("spineai.CobbLandmarkNet")
def _cobb_landmark_net(**kwargs):
    widths = tuple(kwargs.get("widths", (16, 32, 64, 96, 128)))
    return build_landmark_net(widths, int(kwargs.get("head_width", 64)))


def decode(output, n_vertebrae: int = 17):
    """Network output (N, 11, h, w) -> (landmarks (N, 68, 2) in canvas pixels, peak scores (N, 17)).

    Peaks: 3x3 max-pool non-maximum suppression on the sigmoid heatmap, the 17 highest kept and
    sorted by row (top to bottom = T1..L5)."""
    import torch
    import torch.nn.functional as F

    heat = torch.sigmoid(output[:, 0])
    n, h, w = heat.shape
    peaks = heat * (F.max_pool2d(heat[:, None], 3, 1, 1)[:, 0] == heat)
    scores, idx = peaks.view(n, -1).topk(n_vertebrae, dim=1)
    ys = torch.div(idx, w, rounding_mode="floor")
    xs = idx % w
    order = torch.argsort(ys.float() + xs.float() * 1e-4, dim=1)
    ys, xs, scores = ys.gather(1, order), xs.gather(1, order), scores.gather(1, order)
    flat = output.view(n, N_OUT, -1)
    gidx = (ys * w + xs)[:, None, :].expand(n, N_OUT, n_vertebrae)
    vals = flat.gather(2, gidx)  # (n, 11, 17)
    cx = xs.float() + vals[:, 1]
    cy = ys.float() + vals[:, 2]
    corners = torch.stack([torch.stack([cx + vals[:, 3 + 2 * c], cy + vals[:, 4 + 2 * c]], -1) for c in range(4)], 2)
    # (n, 17, 4, 2) in output pixels -> canvas pixels (pixel centres: out = (canvas - (s-1)/2) / s)
    canvas = corners * STRIDE + (STRIDE - 1) / 2
    return canvas.reshape(n, n_vertebrae * 4, 2), scores
