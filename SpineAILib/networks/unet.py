"""A plain U-Net for 2D or 3D (conv + batch norm + ReLU, two per level, max-pool down,
transposed conv up, skip concatenation), shared by the CT tasks. Built lazily (torch imported
inside), fully convolutional: any input whose size is a multiple of 2**(levels-1) works."""

from __future__ import annotations


def _block(nn, dims: int, cin: int, cout: int, kernel=3):
    conv = nn.Conv3d if dims == 3 else nn.Conv2d
    bn = nn.BatchNorm3d if dims == 3 else nn.BatchNorm2d
    return nn.Sequential(conv(cin, cout, kernel, padding="same", bias=False), bn(cout), nn.ReLU(inplace=True),
                         conv(cout, cout, kernel, padding="same", bias=False), bn(cout), nn.ReLU(inplace=True))


def build_unet(dims: int, in_channels: int, out_channels: int, channels=(8, 16, 32, 64), bottom_kernel=None):
    """A plain U-Net with ``len(channels) - 1`` poolings; ``bottom_kernel`` overrides the kernel
    of the lowest level (the identification network's 5 x 20)."""
    import torch
    import torch.nn as nn

    pool = nn.MaxPool3d if dims == 3 else nn.MaxPool2d
    up = nn.ConvTranspose3d if dims == 3 else nn.ConvTranspose2d
    conv = nn.Conv3d if dims == 3 else nn.Conv2d

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            chans = list(channels)
            self.down = nn.ModuleList()
            cin = in_channels
            for c in chans[:-1]:
                self.down.append(_block(nn, dims, cin, c))
                cin = c
            self.bottom = _block(nn, dims, cin, chans[-1], tuple(bottom_kernel) if bottom_kernel else 3)
            self.pool = pool(2)
            self.ups = nn.ModuleList()
            self.dec = nn.ModuleList()
            for c_skip, c_low in zip(reversed(chans[:-1]), reversed(chans[1:]), strict=True):
                self.ups.append(up(c_low, c_skip, 2, stride=2))
                self.dec.append(_block(nn, dims, 2 * c_skip, c_skip))
            self.head = conv(chans[0], out_channels, 1)

        def forward(self, x):
            skips = []
            for blk in self.down:
                x = blk(x)
                skips.append(x)
                x = self.pool(x)
            x = self.bottom(x)
            for upc, dec, skip in zip(self.ups, self.dec, reversed(skips), strict=True):
                x = dec(torch.cat([upc(x), skip], 1))
            return self.head(x)

    return UNet()
