"""Landmark network for AP radiographs: vertebra-focused centre heatmap + corner offsets.

Following the vertebra-focused design (Yi et al., MICCAI 2020): one heatmap of vertebra centres
at stride 4, a sub-pixel centre offset, and for every centre the offsets to its four corners.
Decoding takes the 17 strongest peaks, orders them top to bottom (T1..L5) and adds the corner
offsets. The network is a small U-Net-style encoder-decoder (five stride-2 stages, so the
deepest features see the whole canvas) sized to train and run on a CPU.

Tensor layout: input (N, 1, H, W), H = rows of the canvas; outputs at (H/4, W/4):
channel 0 heatmap logit, 1-2 centre offset (x, y), 3-10 corner offsets (TL, TR, BL, BR; x, y),
in output pixels; with ``levels`` a twelfth channel, the level map (around each vertebra centre
its index, T1 = 0 .. L5 = 16, C7 = -1, S1 = 17), trained as an auxiliary target. Decoding does
not use it: read at the peaks it follows their order along the column rather than anatomy, and
naming by it slipped more spines than the order does (docs/history/cobb.md).
"""

from __future__ import annotations

from SpineAILib.networks import register_architecture
from SpineAILib.networks.heatmap import build_heatmap_net

STRIDE = 4
N_OUT = 11  # heatmap + offsets; the level map, when present, is channel LEVEL
LEVEL = N_OUT


def build_landmark_net(widths: tuple[int, ...] = (16, 32, 64, 96, 128), head_width: int = 64, levels: bool = False):
    """Encoder (strides 2, 4, 8, 16, 32) and a decoder back to stride 4 with skip connections;
    the heatmap channel starts near 0.01 (CenterNet prior) so the focal loss is stable; the level
    channel (``levels``) starts at the middle of the column (8)."""
    bias = {0: -4.6, LEVEL: 8.0} if levels else {0: -4.6}
    return build_heatmap_net(N_OUT + int(levels), widths, head_width, out_stride=STRIDE, head_bias=bias)


@register_architecture("spineai.CobbLandmarkNet")
def _cobb_landmark_net(**kwargs):
    widths = tuple(kwargs.get("widths", (16, 32, 64, 96, 128)))
    return build_landmark_net(widths, int(kwargs.get("head_width", 64)), bool(kwargs.get("levels", False)))


def decode(output, n_vertebrae: int = 17):
    """Network output (N, 11 or 12, h, w) -> (landmarks (N, 68, 2) in canvas pixels, peak scores (N, 17)).

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
    channels = output.shape[1]
    flat = output.reshape(n, channels, -1)
    gidx = (ys * w + xs)[:, None, :].expand(n, channels, n_vertebrae)
    vals = flat.gather(2, gidx)  # (n, channels, 17)
    cx = xs.float() + vals[:, 1]
    cy = ys.float() + vals[:, 2]
    corners = torch.stack([torch.stack([cx + vals[:, 3 + 2 * c], cy + vals[:, 4 + 2 * c]], -1) for c in range(4)], 2)
    # (n, 17, 4, 2) in output pixels -> canvas pixels (pixel centres: out = (canvas - (s-1)/2) / s)
    canvas = corners * STRIDE + (STRIDE - 1) / 2
    return canvas.reshape(n, n_vertebrae * 4, 2), scores
