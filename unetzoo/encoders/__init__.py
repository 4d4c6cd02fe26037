"""Encoders: the classic conv encoder and the timm ``features_only`` adapter."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .classic import ClassicEncoder
from .timm_encoder import TimmEncoder, check_timm_name, timm_reductions, timm_statistics

__all__ = [
    "ClassicEncoder",
    "TimmEncoder",
    "build_encoder",
    "check_timm_name",
    "encoder_reductions",
    "feature_levels",
    "timm_reductions",
    "timm_statistics",
]


def feature_levels(encoder: str, channels: Sequence[int]) -> int:
    """How many feature maps ``encoder`` can give: ``len(channels) + 1`` for the classic encoder
    (one per stage and the pooled last stage), the levels the timm model offers otherwise."""
    if encoder == "classic":
        return len(channels) + 1
    return len(timm_reductions(encoder))


def encoder_reductions(encoder: str, channels: Sequence[int], depth: int | None) -> list[int]:
    """The stride of each feature map an encoder built with these arguments returns, shallow first.

    ``depth=None`` takes every level the classic encoder gives, and 5 levels of a timm encoder.
    """
    if encoder == "classic":
        return [2**i for i in range(len(channels) + 1)]
    return list(timm_reductions(encoder)[: 5 if depth is None else depth])


def build_encoder(
    encoder: str,
    spatial_dims: int,
    in_channels: int,
    *,
    channels,
    depth: int,
    weights: str | None = None,
    **classic_opts,
) -> nn.Module:
    """``classic`` builds a :class:`ClassicEncoder` with ``channels``; any other name is a timm model.

    The returned module has ``out_channels`` and ``reductions`` lists and returns a list of
    feature maps, shallow first. The classic encoder's depth is ``len(channels) + 1``; a timm
    encoder takes ``depth`` levels, from 1 to what the timm model offers.
    """
    if encoder == "classic":
        if weights is not None:
            raise ValueError(
                f"encoder_weights={weights!r}: the classic encoder has no pretrained weights; "
                "use a timm encoder (encoder='resnet34', ...) or load a whole model with pretrained="
            )
        if depth is not None and depth != len(channels) + 1:
            raise ValueError(
                f"encoder_depth={depth!r}: the classic encoder's {len(channels)} stages "
                f"(encoder_channels) give {len(channels) + 1} feature levels"
            )
        return ClassicEncoder(spatial_dims, in_channels, channels, **classic_opts)
    if spatial_dims != 2:
        raise ValueError(
            f"encoder={encoder!r} is a timm (2D) backbone; use encoder='classic' for spatial_dims=3"
        )
    return TimmEncoder(encoder, in_channels, 5 if depth is None else depth, weights)
