"""Test-time augmentation: the views of an input (flips, the eight D4 symmetries) and their inverses.

Every view is run through the network in one batch where the shapes allow it (a 90° turn of
a non-square image has its own shape), chunked to bound memory, mapped back exactly and
averaged as probabilities.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

TTA_MODES = ("none", "flips", "d4")


@dataclass(frozen=True)
class View:
    """One symmetry of the spatial axes: flip ``flips`` (negative axes), then turn ``turns`` × 90° in (H, W)."""

    flips: tuple[int, ...] = ()
    turns: int = 0

    def apply(self, x: Tensor) -> Tensor:
        if self.flips:
            x = torch.flip(x, self.flips)
        return torch.rot90(x, self.turns, dims=(-2, -1)) if self.turns else x

    def invert(self, y: Tensor) -> Tensor:
        if self.turns:
            y = torch.rot90(y, -self.turns, dims=(-2, -1))
        return torch.flip(y, self.flips) if self.flips else y


def tta_views(mode: str, spatial_dims: int) -> list[View]:
    """The views of a mode: ``none`` (1), ``flips`` (every subset of the axes: 4 in 2D, 8 in 3D), ``d4`` (8, 2D)."""
    if mode not in TTA_MODES:
        raise ValueError(f"unknown test-time augmentation {mode!r}; choose one of {', '.join(TTA_MODES)}")
    axes = tuple(range(-spatial_dims, 0))
    if mode == "none":
        return [View()]
    if mode == "flips":
        return [View(flips) for n in range(spatial_dims + 1) for flips in itertools.combinations(axes, n)]
    if spatial_dims != 2:
        raise ValueError("tta='d4' (90° turns) is for 2D inputs; use tta='flips' for volumes")
    return [View(flips, turns) for flips in ((), (-1,)) for turns in range(4)]


def run_views(fn: Callable[[Tensor], Tensor], x: Tensor, views: list[View], max_batch: int) -> Tensor:
    """The mean over ``views`` of ``view.invert(fn(view.apply(x)))``.

    ``fn`` maps ``(B, C_in, *S)`` to probabilities ``(B, C, *S)``. Views of the same shape run
    together, in chunks of at most ``max_batch`` samples (whole views, or parts of one view's
    batch when ``x`` alone is larger); each chunk's inputs are made just before its forward
    pass and its outputs added to the sum at once, so memory stays within one chunk.
    """
    n = x.shape[0]
    per_chunk = max(1, max_batch)
    if views == [View()]:  # no augmentation: the forward passes alone
        return torch.cat([fn(chunk).float() for chunk in torch.split(x, per_chunk)])
    by_shape: dict[tuple[int, ...], list[View]] = {}
    for view in views:
        by_shape.setdefault(tuple(view.apply(x[:1]).shape), []).append(view)
    total: Tensor | None = None

    def add(back: Tensor, rows: slice) -> None:
        nonlocal total
        if total is None:
            total = torch.zeros((n, *back.shape[1:]), dtype=torch.float32, device=back.device)
        total[rows] += back

    for group in by_shape.values():
        if n >= per_chunk:  # one view at a time, its batch split
            for view in group:
                for start in range(0, n, per_chunk):
                    rows = slice(start, min(n, start + per_chunk))
                    add(view.invert(fn(view.apply(x[rows]))).float(), rows)
            continue
        step = per_chunk // n  # several whole views per forward pass
        for first in range(0, len(group), step):
            chunk = group[first : first + step]
            outputs = fn(torch.cat([view.apply(x) for view in chunk]))
            for view, out in zip(chunk, torch.split(outputs, n), strict=True):
                add(view.invert(out).float(), slice(0, n))
    assert total is not None
    return total / len(views)
