"""Convolutional Block Attention Module: channel attention, then spatial attention.

Woo et al. 2018, "CBAM: Convolutional Block Attention Module", arXiv:1807.06521.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from . import layers


class ChannelAttention(nn.Module):
    """Channel gate from average- and max-pooled descriptors sent through ONE shared MLP.

    ``(N, C, *S) -> (N, C, *S)``: ``x * sigmoid(mlp(avgpool x) + mlp(maxpool x))``.
    """

    def __init__(self, spatial_dims: int, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(
            layers.conv(spatial_dims, channels, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            layers.conv(spatial_dims, hidden, channels, 1, bias=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        dims = tuple(range(2, x.dim()))
        avg = self.mlp(x.mean(dim=dims, keepdim=True))
        mx = self.mlp(x.amax(dim=dims, keepdim=True))
        return x * torch.sigmoid(avg + mx)


class SpatialAttention(nn.Module):
    """Spatial gate: a 7×7 (7×7×7) conv over the channel-wise mean and max maps.

    ``(N, C, *S) -> (N, C, *S)``: ``x * sigmoid(conv([mean_c x; max_c x]))``.
    """

    def __init__(self, spatial_dims: int, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = layers.conv(spatial_dims, 2, 1, kernel_size, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        maps = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(maps))


class CBAM(nn.Sequential):
    """Channel attention followed by spatial attention: ``(N, C, *S) -> (N, C, *S)``."""

    def __init__(self, spatial_dims: int, channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.channel = ChannelAttention(spatial_dims, channels, reduction)
        self.spatial = SpatialAttention(spatial_dims, kernel_size)
