"""Decoder upsampling: resize (with or without a conv after it) or a transposed convolution."""

from __future__ import annotations

from torch import Tensor, nn

from . import layers
from .conv import ConvNormAct

UPSAMPLE_MODES = ("nearest_conv", "linear_conv", "transpose", "nearest", "linear")


class Upsample(nn.Module):
    """Brings a decoder feature to a target spatial size.

    Modes:

    - ``nearest_conv``: nearest resize, then 3×3 conv-norm-act (the reference U-Net's ``up_conv``);
    - ``linear_conv``: bilinear (trilinear in 3D) resize, then 3×3 conv-norm-act;
    - ``transpose``: a stride-2 transposed conv (resized afterwards if the size still differs);
    - ``nearest`` / ``linear``: a plain resize with no parameters; channels are kept.

    ``forward(x, size)``: ``(N, in, *S) -> (N, out_channels, *size)``.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        mode: str = "nearest_conv",
        *,
        norm: str = "batch",
        act: str = "relu",
        bias: bool = True,
    ) -> None:
        super().__init__()
        if mode not in UPSAMPLE_MODES:
            raise ValueError(f"unknown upsample mode {mode!r}; choose one of {', '.join(UPSAMPLE_MODES)}")
        self.resize_mode = "nearest" if mode.startswith("nearest") else "linear"
        self.mode = mode
        if mode.endswith("_conv"):
            self.conv: nn.Module = ConvNormAct(
                spatial_dims, in_channels, out_channels, norm=norm, act=act, bias=bias
            )
        elif mode == "transpose":
            self.conv = layers.conv_transpose(spatial_dims, in_channels, out_channels)
        else:
            self.conv = nn.Identity()
            out_channels = in_channels
        self.in_channels = in_channels
        self.out_channels = out_channels

    def forward(self, x: Tensor, size: list[int]) -> Tensor:
        if self.mode == "transpose":
            return layers.resize_to(self.conv(x), size, self.resize_mode)
        return self.conv(layers.resize_to(x, size, self.resize_mode))
