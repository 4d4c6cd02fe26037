"""Adapter that turns any timm backbone into a U-Net encoder through ``features_only``."""

from __future__ import annotations

import functools

import torch
from torch import Tensor, nn


def check_timm_name(name: str) -> None:
    """Raise a ``ValueError`` when timm has no model ``name``."""
    import timm

    if not timm.is_model(name):
        raise ValueError(f"unknown timm encoder {name!r}; see timm.list_models() for the names it knows")


@functools.cache
def timm_reductions(name: str) -> tuple[int, ...]:
    """The stride of every feature level timm's ``name`` offers, shallow first (``(2, 4, 8, 16, 32)``
    for a ResNet). The model is built on the ``meta`` device: no weights are allocated or read."""
    import timm

    check_timm_name(name)
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False)
    return tuple(int(f["reduction"]) for f in getattr(model, "feature_info", None) or [])  # () when unknown


def timm_statistics(name: str) -> tuple[tuple[float, ...], tuple[float, ...], tuple[int, ...] | None]:
    """``(mean, std, input size)`` of timm's pretrained configuration for ``name``.

    ``mean``/``std`` are per RGB channel, for inputs scaled to [0, 1]; the input size is the
    spatial size the backbone was pretrained at (``None`` when timm does not say). Models
    without a pretrained configuration get ImageNet statistics.
    """
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
    from timm.models import get_pretrained_cfg

    check_timm_name(name)
    cfg = get_pretrained_cfg(name)
    mean = tuple(float(v) for v in (getattr(cfg, "mean", None) or IMAGENET_DEFAULT_MEAN))
    std = tuple(float(v) for v in (getattr(cfg, "std", None) or IMAGENET_DEFAULT_STD))
    size = getattr(cfg, "input_size", None)
    return mean, std, tuple(int(s) for s in size[1:]) if size else None


class TimmEncoder(nn.Module):
    """A timm model created with ``features_only=True``: returns ``depth`` feature maps.

    ``weights``: ``None``, ``"imagenet"`` or a local file (see :mod:`unetzoo.encoders.encoder_weights`).

    ``out_channels`` and ``reductions`` list each feature's channels and stride, shallow
    first. Only 2D inputs are supported (timm backbones are 2D). ``depth`` runs from 1 to the
    number of feature levels the timm model offers (:func:`timm_reductions`).
    """

    def __init__(self, name: str, in_channels: int = 3, depth: int = 5, weights: str | None = None) -> None:
        super().__init__()
        levels = len(timm_reductions(name))
        if depth < 1 or (levels and depth > levels):
            raise ValueError(f"encoder_depth={depth!r}: the timm encoder {name!r} offers 1 to {levels} feature levels")
        from .encoder_weights import features_model

        self.model = features_model(name, in_channels, tuple(range(depth)), weights)
        self.out_channels = list(self.model.feature_info.channels())
        self.reductions = list(self.model.feature_info.reduction())

    def forward(self, x: Tensor) -> list[Tensor]:
        return list(self.model(x))
