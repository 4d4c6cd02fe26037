"""Convolutional stage blocks: conv-norm-act, the U-Net double conv, and a residual block."""

from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn

from . import layers


class ConvNormAct(nn.Sequential):
    """Convolution → norm → activation: ``(N, in, *S) -> (N, out, *S/stride)``."""

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        *,
        stride: int = 1,
        dilation: int = 1,
        norm: str = "batch",
        act: str = "relu",
        bias: bool = True,
    ) -> None:
        super().__init__(
            OrderedDict(
                conv=layers.conv(
                    spatial_dims, in_channels, out_channels, kernel_size, stride, dilation, bias
                ),
                norm=layers.norm(norm, spatial_dims, out_channels),
                act=layers.act(act),
            )
        )


class DoubleConv(nn.Sequential):
    """Two 3×3 conv-norm-act layers, the U-Net stage: ``(N, in, *S) -> (N, out, *S)``.

    With ``dropout > 0`` a channel dropout follows the second layer.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        *,
        norm: str = "batch",
        act: str = "relu",
        bias: bool = True,
        dropout: float = 0.0,
    ) -> None:
        opts = dict(norm=norm, act=act, bias=bias)
        stack: list[nn.Module] = [
            ConvNormAct(spatial_dims, in_channels, out_channels, **opts),
            ConvNormAct(spatial_dims, out_channels, out_channels, **opts),
        ]
        if dropout > 0:
            stack.append(layers.dropout(spatial_dims, dropout))
        super().__init__(*stack)


class ResidualBlock(nn.Module):
    """Two 3×3 convs with an identity (or 1×1 projected) shortcut, as in ResNet's basic block.

    ``(N, in, *S) -> (N, out, *S)``; the activation follows the sum.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        *,
        norm: str = "batch",
        act: str = "relu",
        bias: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        opts = dict(norm=norm, bias=bias)
        self.conv1 = ConvNormAct(spatial_dims, in_channels, out_channels, act=act, **opts)
        self.conv2 = ConvNormAct(spatial_dims, out_channels, out_channels, act="none", **opts)
        self.shortcut: nn.Module = (
            nn.Identity()
            if in_channels == out_channels
            else ConvNormAct(spatial_dims, in_channels, out_channels, 1, act="none", **opts)
        )
        self.act = layers.act(act)
        self.dropout = layers.dropout(spatial_dims, dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.act(self.conv2(self.conv1(x)) + self.shortcut(x)))
