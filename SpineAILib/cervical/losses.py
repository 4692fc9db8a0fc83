"""Pixel-wise log loss plus the region-aware term of Al Arif et al.

The cervical spine is one connected region, so every predicted spine region other than the
largest is a mistake. With the connected components of the current prediction (computed without
gradient), N_r regions, the largest of area A_max, each pixel i of a smaller region q gets the
penalty weight

    E_i = max(N_r - N_t, 0) * (A_max - A_q) / A_max        (N_t = 1; E_i = 0 elsewhere)

and the region-aware term is

    L_r = 1/2 * sum_i sum_j y_i^j * E_i * P_i^j ** 2,

where y_i^j is the one-hot ground truth. We read P_i^j as the error of the predicted probability
of class j, 1 - p_i^j, so L_r is a region-weighted squared error whose gradient moves the pixels of
spurious regions towards their true class (the literal "probability squared" would push the true
class down). The gradient flows only through P; E is a constant weight map.
"""

from __future__ import annotations

import numpy as np


def region_weights(pred_mask: np.ndarray, n_t: int = 1) -> np.ndarray:
    """E (float32, same shape) for one binary prediction (H, W): the penalty weight of every
    pixel in a predicted spine region smaller than the n_t largest."""
    from scipy import ndimage

    labels, n_r = ndimage.label(pred_mask)
    E = np.zeros(pred_mask.shape, np.float32)
    if n_r <= n_t:
        return E
    areas = np.bincount(labels.ravel())[1:]
    order = np.argsort(-areas, kind="stable")
    a_max = float(areas[order[0]])
    factor = max(n_r - n_t, 0)
    for q in order[n_t:]:
        E[labels == q + 1] = factor * (a_max - areas[q]) / a_max
    return E


def region_aware_term(probs, target, weights):
    """L_r for a batch: probs (N, 2, H, W) softmax, target (N, H, W) int64 in {0, 1},
    weights (N, H, W) = E. Summed over pixels and classes, averaged over the batch."""
    import torch

    onehot = torch.nn.functional.one_hot(target, 2).permute(0, 3, 1, 2).to(probs.dtype)
    err = 1.0 - probs
    return 0.5 * (onehot * weights[:, None] * err ** 2).sum(dim=(1, 2, 3)).mean()


def localisation_loss(logits, target, region_weight: float = 1.0, log_weight: float = 1.0, n_t: int = 1):
    """Pixel-wise log loss (mean over pixels) + region_weight * L_r (per image, normalised by
    the number of pixels so both terms have comparable scale). region_weight 0 = plain network."""
    import torch
    import torch.nn.functional as F

    ce = F.cross_entropy(logits, target)
    if region_weight == 0:
        return ce, ce.detach(), torch.zeros((), device=logits.device)
    probs = torch.softmax(logits, 1)
    with torch.no_grad():
        pred = (probs[:, 1] > 0.5).cpu().numpy()
        E = torch.as_tensor(np.stack([region_weights(m, n_t) for m in pred]), device=logits.device)
    lr = region_aware_term(probs, target, E) / float(target[0].numel())
    return log_weight * ce + region_weight * lr, ce.detach(), lr.detach()
