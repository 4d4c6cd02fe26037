"""Additive attention gate of Attention U-Net.

Oktay et al. 2018, "Attention U-Net: Learning Where to Look for the Pancreas",
arXiv:1804.03999.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

from . import layers


class AttentionGate(nn.Module):
    """Weights a skip feature ``x`` by a coefficient map computed from ``x`` and a gating signal ``g``.

    ``psi = sigmoid(norm(W_psi(relu(norm(W_g g) + norm(W_x x)))))`` and the result is
    ``x * psi``. Inputs: ``g`` of shape ``(N, gate_channels, *Sg)``, ``x`` of shape
    ``(N, skip_channels, *S)``; returns ``(N, skip_channels, *S)``. A gating signal of any
    spatial size is resampled (bilinear/trilinear) to the skip's size after its projection.
    """

    def __init__(
        self,
        spatial_dims: int,
        gate_channels: int,
        skip_channels: int,
        inter_channels: int | None = None,
        *,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        inter = inter_channels or max(skip_channels // 2, 1)

        def branch(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                OrderedDict(
                    conv=layers.conv(spatial_dims, cin, cout, 1, bias=True),
                    norm=layers.norm(norm, spatial_dims, cout),
                )
            )

        self.w_g = branch(gate_channels, inter)
        self.w_x = branch(skip_channels, inter)
        self.psi = branch(inter, 1)
        self.relu = nn.ReLU(inplace=True)

    def coefficients(self, g: Tensor, x: Tensor) -> Tensor:
        """The attention map ``psi`` in ``[0, 1]`` of shape ``(N, 1, *S)``."""
        gate = layers.resize_to(self.w_g(g), x.shape[2:], mode="linear")
        return torch.sigmoid(self.psi(self.relu(gate + self.w_x(x))))

    def forward(self, g: Tensor, x: Tensor) -> Tensor:
        return x * self.coefficients(g, x)
