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

    ``fn`` maps ``(B, C_in, *S)`` to probabilities ``(B, C, *S)``. Views of the same shape are
    concatenated along the batch and run in chunks of at most ``max_batch`` samples.
    """
    n = x.shape[0]
    by_shape: dict[tuple[int, ...], list[View]] = {}
    for view in views:
        by_shape.setdefault(tuple(view.apply(x[:1]).shape), []).append(view)
    total: Tensor | None = None
    for group in by_shape.values():
        stacked = torch.cat([view.apply(x) for view in group])
        outputs = torch.cat([fn(chunk) for chunk in torch.split(stacked, max(1, max_batch))])
        for view, out in zip(group, torch.split(outputs, n), strict=True):
            back = view.invert(out).float()
            total = back if total is None else total + back
    assert total is not None
    return total / len(views)
