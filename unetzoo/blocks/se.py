"""Squeeze-and-excitation channel reweighting.

Hu et al. 2018, "Squeeze-and-Excitation Networks", arXiv:1709.01507.
"""

from __future__ import annotations

from torch import Tensor, nn

from . import layers


class SqueezeExcitation(nn.Module):
    """Rescales each channel by a gate learned from its global average: ``(N, C, *S) -> (N, C, *S)``.

    The excitation MLP is two 1×1 convolutions (``C -> C/reduction -> C``) with no norm, so it
    trains at batch size 1.
    """

    def __init__(self, spatial_dims: int, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.pool = layers.global_avg_pool(spatial_dims)
        self.fc = nn.Sequential(
            layers.conv(spatial_dims, channels, hidden, 1),
            nn.ReLU(inplace=True),
            layers.conv(spatial_dims, hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.fc(self.pool(x))
