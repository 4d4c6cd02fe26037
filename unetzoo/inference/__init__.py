"""Inference: probabilities from a model with test-time augmentation and sliding windows, 2D and 3D."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..models import mask_logits
from .prepare import default_batch, fold_batchnorm, inference_model
from .tta import TTA_MODES, View, run_views, tta_views
from .window import BLENDS, importance_map, sliding_window, window_starts

__all__ = [
    "BLENDS",
    "TTA_MODES",
    "View",
    "default_batch",
    "fold_batchnorm",
    "importance_map",
    "inference_model",
    "predict",
    "probabilities",
    "run_views",
    "sliding_window",
    "tta_views",
    "window_starts",
]


def probabilities(logits: Tensor, activation: str = "auto") -> Tensor:
    """Logits ``(N, C, *S)`` as probabilities: ``sigmoid`` (``auto`` with one channel), ``softmax``
    (``auto`` with several) or ``none``; a deep-supervision list or ``(masks, classes)`` pair
    gives its final mask output."""
    logits = mask_logits(logits).float()
    if activation == "auto":
        activation = "sigmoid" if logits.shape[1] == 1 else "softmax"
    if activation == "sigmoid":
        return torch.sigmoid(logits)
    if activation == "softmax":
        return torch.softmax(logits, dim=1)
    if activation == "none":
        return logits
    raise ValueError(f"unknown activation {activation!r}; choose auto, sigmoid, softmax or none")


@torch.no_grad()
def predict(
    model: nn.Module,
    x: Tensor,
    *,
    tta: str = "none",
    window: Sequence[int] | None = None,
    overlap: float = 0.5,
    blend: str = "gaussian",
    max_batch: int | None = None,
    activation: str = "auto",
) -> Tensor:
    """Probabilities ``(N, C, *S)`` of ``model`` for ``x`` ``(N, C_in, *S)``, 2D or 3D.

    ``tta``: ``none``, ``flips`` or ``d4`` (2D): the views of each input (or window) run in
    one batch and are averaged as probabilities after mapping back. ``window``: run
    overlapping windows of that size (``overlap`` of their size, ``gaussian`` or
    ``constant`` blending) instead of the whole input; both compose. ``max_batch`` bounds
    the samples (windows × views) of one forward pass (default: :func:`default_batch`, 8 on a
    GPU and 2 on a CPU). The model runs as it is: put it in eval mode (or pass
    :func:`inference_model`'s copy, which is faster) and wrap the call in ``torch.autocast``
    for mixed precision.
    """
    views = tta_views(tta, x.dim() - 2)
    if max_batch is None:
        max_batch = default_batch(x.device)

    def forward(batch: Tensor) -> Tensor:
        return probabilities(model(batch), activation)

    def augmented(batch: Tensor) -> Tensor:
        return run_views(forward, batch, views, max_batch)

    if window is None:
        return torch.cat([augmented(chunk) for chunk in torch.split(x, max(1, max_batch // len(views)))])
    return sliding_window(augmented, x, window, overlap=overlap, blend=blend,
                          max_batch=max(1, max_batch // len(views)))  # fmt: skip
