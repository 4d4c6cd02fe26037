"""Encoders: the classic conv encoder and the timm ``features_only`` adapter."""

from __future__ import annotations

from torch import nn

from .classic import ClassicEncoder
from .timm_encoder import TimmEncoder

__all__ = ["ClassicEncoder", "TimmEncoder", "build_encoder"]


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
    feature maps, shallow first.
    """
    if encoder == "classic":
        if weights is not None:
            raise ValueError(
                f"encoder_weights={weights!r}: the classic encoder has no pretrained weights; "
                "use a timm encoder (encoder='resnet34', ...) or load a whole model with pretrained="
            )
        return ClassicEncoder(spatial_dims, in_channels, channels, **classic_opts)
    if spatial_dims != 2:
        raise ValueError(
            f"encoder={encoder!r} is a timm (2D) backbone; use encoder='classic' for spatial_dims=3"
        )
    return TimmEncoder(encoder, in_channels, depth, weights)
