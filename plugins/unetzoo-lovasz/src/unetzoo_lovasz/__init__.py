"""Lovász hinge loss: a convex surrogate of 1 - IoU for binary segmentation."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["LovaszHingeLoss", "lovasz_hinge_flat"]


def _lovasz_gradient(sorted_truth: Tensor) -> Tensor:
    """Jaccard loss increments along errors sorted in decreasing order (Berman et al. 2018, Alg. 1)."""
    positives = sorted_truth.sum()
    intersection = positives - sorted_truth.cumsum(0)
    union = positives + (1 - sorted_truth).cumsum(0)
    jaccard = 1 - intersection / union
    return torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])


def lovasz_hinge_flat(logits: Tensor, truth: Tensor) -> Tensor:
    """Lovász hinge of flat logits and {0, 1} truth of one image (or of a whole batch)."""
    if logits.numel() == 0:
        return logits.sum() * 0
    signs = 2 * truth.float() - 1
    errors = 1 - logits * signs
    errors_sorted, order = errors.sort(descending=True)
    return torch.dot(torch.relu(errors_sorted), _lovasz_gradient(truth.float()[order]))


class LovaszHingeLoss(nn.Module):
    """Lovász hinge loss for binary logits ``(N, 1, *S)`` and targets ``(N, *S)`` in {0, 1}.

    ``per_image`` averages the loss of each image; otherwise the batch is one set of pixels.
    Pixels equal to ``ignore_index`` do not count.
    """

    def __init__(
        self, mode: str = "binary", *, per_image: bool = False, ignore_index: int | None = None
    ) -> None:
        super().__init__()
        if mode != "binary":
            raise ValueError("lovasz_hinge is for binary mode")
        self.per_image, self.ignore_index = per_image, ignore_index

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        if logits.dim() == target.dim() + 1:
            logits = logits.squeeze(1)
        pairs = zip(logits, target, strict=True) if self.per_image else [(logits, target)]
        losses = []
        for lg, tg in pairs:
            lg, tg = lg.reshape(-1), tg.reshape(-1)
            if self.ignore_index is not None:
                keep = tg != self.ignore_index
                lg, tg = lg[keep], tg[keep]
            losses.append(lovasz_hinge_flat(lg, tg))
        return torch.stack(losses).mean()
