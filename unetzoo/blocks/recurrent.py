"""Recurrent convolution and the recurrent residual (R2) block of R2U-Net.

Alom et al. 2018, "Recurrent Residual Convolutional Neural Network based on U-Net (R2U-Net)
for Medical Image Segmentation", arXiv:1802.06955.
"""

from __future__ import annotations

from torch import Tensor, nn

from . import layers
from .conv import ConvNormAct


class RecurrentConv(nn.Module):
    """One shared 3×3 conv-norm-act unit applied ``t + 1`` times: ``(N, C, *S) -> (N, C, *S)``.

    ``h = unit(x)``, then ``t`` times ``h = unit(x + h)``: the input is fed back at every
    step, and all steps share the same weights.
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        t: int = 2,
        *,
        norm: str = "batch",
        act: str = "relu",
        bias: bool = True,
    ) -> None:
        super().__init__()
        if t < 0:
            raise ValueError(f"recurrence t must be >= 0, got {t}")
        self.t = t
        self.unit = ConvNormAct(spatial_dims, channels, channels, norm=norm, act=act, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        h = self.unit(x)
        for _ in range(self.t):
            h = self.unit(x + h)
        return h


class R2Block(nn.Module):
    """Recurrent residual block: a 1×1 projection, then ``x + RCNN(x)`` with two recurrent convs.

    ``(N, in, *S) -> (N, out, *S)``; ``t`` is the number of recurrences of each conv.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        *,
        t: int = 2,
        norm: str = "batch",
        act: str = "relu",
        bias: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.project = layers.conv(spatial_dims, in_channels, out_channels, 1, bias=True)
        opts = dict(norm=norm, act=act, bias=bias)
        self.rcnn = nn.Sequential(
            RecurrentConv(spatial_dims, out_channels, t, **opts),
            RecurrentConv(spatial_dims, out_channels, t, **opts),
        )
        self.dropout = layers.dropout(spatial_dims, dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.project(x)
        return self.dropout(x + self.rcnn(x))
