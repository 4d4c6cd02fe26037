"""Atrous spatial pyramid pooling.

Chen et al. 2017, "Rethinking Atrous Convolution for Semantic Image Segmentation"
(DeepLabv3), arXiv:1706.05587.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from . import layers
from .conv import ConvNormAct


class ASPP(nn.Module):
    """Parallel 1×1 and dilated 3×3 branches plus an image-pooling branch, fused by a 1×1 conv.

    ``(N, in, *S) -> (N, out, *S)``. The image-pooling branch has no normalisation (a
    BatchNorm over a 1×1 pooled map cannot train at batch size 1); every other branch is
    conv-norm-act.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        rates: Sequence[int] = (6, 12, 18),
        *,
        norm: str = "batch",
        act: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        opts = dict(norm=norm, act=act, bias=False)
        self.branches = nn.ModuleList(
            [ConvNormAct(spatial_dims, in_channels, out_channels, 1, **opts)]
            + [ConvNormAct(spatial_dims, in_channels, out_channels, 3, dilation=r, **opts) for r in rates]
        )
        self.image_pool = nn.Sequential(
            layers.global_avg_pool(spatial_dims),
            layers.conv(spatial_dims, in_channels, out_channels, 1, bias=True),
            layers.act(act),
        )
        self.project = nn.Sequential(
            ConvNormAct(spatial_dims, out_channels * (len(rates) + 2), out_channels, 1, **opts),
            layers.dropout(spatial_dims, dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        outs = [branch(x) for branch in self.branches]
        outs.append(self.image_pool(x).expand_as(outs[0]))
        return self.project(torch.cat(outs, dim=1))
