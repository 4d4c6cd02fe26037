"""Sliding-window inference: overlapping windows, blended with Gaussian or constant weights.

The window grid and the Gaussian weights follow the common definition (MONAI's
``sliding_window_inference``, nnU-Net's predictor): windows start every
``int(window × (1 − overlap))`` pixels and the last one is moved back to end at the border;
an input smaller than the window is zero-padded around (half before, half after); the
Gaussian has a standard deviation of ``window / 8`` per axis and the value 1 at the centre
(not rescaled, so an even-sized window peaks a little below 1), weights under 1e-3 raised to it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

BLENDS = ("gaussian", "constant")


def window_starts(size: int, window: int, overlap: float) -> list[int]:
    """Start offsets along one axis of length ``size`` (``size >= window``)."""
    if window >= size:
        return [0]
    step = max(1, int(window * (1 - overlap)))
    count = math.ceil((size - window) / step) + 1
    return [min(i * step, size - window) for i in range(count)]


def importance_map(window: Sequence[int], blend: str, sigma_scale: float = 0.125) -> Tensor:
    """Weights ``(*window)`` of each window pixel: constant ones, or a Gaussian of value 1 at the centre."""
    if blend not in BLENDS:
        raise ValueError(f"unknown blend {blend!r}; choose one of {', '.join(BLENDS)}")
    if blend == "constant":
        return torch.ones(tuple(window))
    weights = torch.ones(())
    for size in window:
        x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
        g = torch.exp(-(x**2) / (2 * (size * sigma_scale) ** 2))
        weights = weights.unsqueeze(-1) * g
    return weights.clamp_min(max(float(weights[weights > 0].min()), 1e-3))


def sliding_window(
    fn: Callable[[Tensor], Tensor],
    x: Tensor,
    window: Sequence[int],
    *,
    overlap: float = 0.5,
    blend: str = "gaussian",
    max_batch: int = 4,
) -> Tensor:
    """Run ``fn`` on overlapping windows of ``x`` ``(N, C_in, *S)`` and blend the outputs to ``(N, C, *S)``.

    ``fn`` sees batches of at most ``max_batch`` windows ``(B, C_in, *window)``; only one batch
    of windows and the blended output are in memory at a time, so a whole volume fits.
    """
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap={overlap}: give a fraction in [0, 1)")
    dims = x.dim() - 2
    window = tuple(int(w) for w in window)
    if len(window) != dims or min(window) < 1:
        raise ValueError(f"window {window}: give {dims} positive sizes for a {dims}D input")
    size = tuple(x.shape[2:])
    pad = [max(w - s, 0) for w, s in zip(window, size, strict=True)]
    if any(pad):
        widths: list[int] = []
        for p in reversed(pad):
            widths += [p // 2, p - p // 2]
        x = F.pad(x, widths)
    padded = tuple(x.shape[2:])
    weights = importance_map(window, blend).to(x.device)
    starts = list(itertools.product(*(window_starts(s, w, overlap) for s, w in zip(padded, window, strict=True))))
    out: Tensor | None = None
    count = torch.zeros(padded, device=x.device)
    for start in starts:
        region = tuple(slice(a, a + w) for a, w in zip(start, window, strict=True))
        count[region] += weights
    jobs = [(n, start) for n in range(x.shape[0]) for start in starts]
    for first in range(0, len(jobs), max(1, max_batch)):
        batch = jobs[first : first + max(1, max_batch)]
        regions = [tuple(slice(a, a + w) for a, w in zip(start, window, strict=True)) for _, start in batch]
        pred = fn(torch.stack([x[(n, slice(None), *r)] for (n, _), r in zip(batch, regions, strict=True)])).float()
        if out is None:
            out = torch.zeros((x.shape[0], pred.shape[1], *padded), device=x.device)
        for (n, _), r, p in zip(batch, regions, pred, strict=True):
            out[(n, slice(None), *r)] += p * weights
    assert out is not None
    out = out / count
    crop = tuple(slice(p // 2, p // 2 + s) for p, s in zip(pad, size, strict=True))
    return out[(slice(None), slice(None), *crop)]
