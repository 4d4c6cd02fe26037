"""Adapter that turns any timm backbone into a U-Net encoder through ``features_only``."""

from __future__ import annotations

from torch import Tensor, nn


class TimmEncoder(nn.Module):
    """A timm model created with ``features_only=True``: returns ``depth`` feature maps.

    ``weights``: ``None``, ``"imagenet"`` or a local file (see :mod:`unetzoo.encoders.encoder_weights`).

    ``out_channels`` and ``reductions`` list each feature's channels and stride, shallow
    first. Only 2D inputs are supported (timm backbones are 2D).
    """

    def __init__(self, name: str, in_channels: int = 3, depth: int = 5, weights: str | None = None) -> None:
        super().__init__()
        import timm

        if not timm.is_model(name):
            raise ValueError(f"unknown timm encoder {name!r}; see timm.list_models() for the names it knows")
        from .encoder_weights import features_model

        self.model = features_model(name, in_channels, tuple(range(depth)), weights)
        self.out_channels = list(self.model.feature_info.channels())
        self.reductions = list(self.model.feature_info.reduction())

    def forward(self, x: Tensor) -> list[Tensor]:
        return list(self.model(x))
