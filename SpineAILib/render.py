"""PNG overviews rendered with matplotlib (Agg, no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from SpineAILib import anatomy


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def ct_coronal(ax, image, labels=None, centroids=None, title="CT"):
    """Draw the coronal slice (array axis 1 = y) through the centroids' mean, superior up."""
    arr = image.array
    if centroids:
        j = int(np.clip(np.mean([image.physical_to_index(p)[1] for p in centroids.values()]), 0, arr.shape[1] - 1))
    else:
        j = arr.shape[1] // 2
    sl = arr[:, j, :]
    sx, _, sz = image.spacing
    ax.imshow(sl, cmap="gray", vmin=-250, vmax=1000, origin="lower", aspect=sz / sx)
    if labels is not None:
        ax.contour(labels.array[:, j, :] > 0, levels=[0.5], colors="orange", linewidths=0.6, origin="lower")
    for lab, p in (centroids or {}).items():
        i, _, k = image.physical_to_index(p)
        ax.plot(i, k, "c+", ms=6)
        ax.text(i + 4, k, anatomy.vertebra_name(lab), color="cyan", fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def radiograph(ax, image, points=None, lines=(), text=None, region=None, title="X-ray"):
    ax.imshow(image.array, cmap="gray")
    if region is not None:
        ax.contour(region, levels=[0.5], colors="lime", linewidths=0.8)
    if points is not None:
        ax.plot(points[:, 0], points[:, 1], "r.", ms=2.5)
    for (x0, y0), (x1, y1) in lines:
        ax.plot([x0, x1], [y0, y1], "-", color="deepskyblue", lw=1.2)
    if text:
        ax.text(5, 25, text, color="yellow", fontsize=8, va="top")
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def save_figure(fig, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return p


def figure(ncols: int, width_per_panel: float = 4.0, height: float = 6.0):
    plt = _plt()
    return plt.subplots(1, ncols, figsize=(width_per_panel * ncols, height))
