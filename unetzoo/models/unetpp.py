"""The U-Net++ assembler: nested, densely connected skip pathways.

Zhou et al. 2018, "UNet++: A Nested U-Net Architecture for Medical Image Segmentation",
arXiv:1807.10165.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..blocks import Upsample, layers, make_stage_block
from ..encoders import build_encoder, encoder_reductions
from .base import SegmentationModel, check_decoder_length
from .unet import _bottleneck


class UNetPlusPlus(SegmentationModel):
    """U-Net++: node ``X[i][j] = block(cat(X[i][0..j-1], up(X[i+1][j-1])))``.

    ``X[i][0]`` are the encoder features (the deepest after the bottleneck block). The
    network predicts from ``X[0][L]``; with ``deep_supervision`` (training mode) it returns a
    list of logits from ``X[0][L], X[0][L-1], ..., X[0][1]``, all at the input size. With
    ``aux_classes`` the return value is ``(mask_logits, class_logits)``.

    Args:
        aspp_rates: dilation rates of the ASPP bottleneck (``bottleneck="aspp"``).
        decoder_channels: widths of the nested nodes per level, deepest first (default: the
            encoder's widths at those levels).
        Other arguments are those of :class:`unetzoo.models.UNet`.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 3,
        classes: int = 1,
        *,
        encoder: str = "classic",
        encoder_channels: Sequence[int] = (32, 64, 128, 256),
        encoder_depth: int | None = None,
        encoder_weights: str | None = None,
        encoder_block: str = "double_conv",
        bottleneck: str = "conv",
        bottleneck_channels: int | None = 512,
        aspp_rates: Sequence[int] = (6, 12, 18),
        decoder_channels: Sequence[int] | None = None,
        decoder_block: str = "double_conv",
        upsample: str = "transpose",
        norm: str = "batch",
        act: str = "relu",
        conv_bias: bool = True,
        t: int = 2,
        deep_supervision: bool = False,
        aux_classes: int | None = None,
        aux_dropout: float = 0.0,
        gradient_checkpointing: bool = False,
        freeze_encoder: bool = False,
    ) -> None:
        super().__init__()
        self._setup(locals())
        encoder_depth = self.config["encoder_depth"]
        levels = encoder_reductions(encoder, encoder_channels, encoder_depth)
        if levels:  # known before the encoder is built (timm models without feature_info are not)
            check_decoder_length(type(self), decoder_channels, len(levels) - 1, exact=True)
        block_opts = dict(norm=norm, act=act, bias=conv_bias, t=t)
        self.encoder = build_encoder(
            encoder,
            spatial_dims,
            in_channels,
            channels=encoder_channels,
            depth=encoder_depth,
            weights=encoder_weights,
            block=encoder_block,
            **block_opts,
        )
        *skip_channels, deepest = self.encoder.out_channels
        self.output_stride = self.encoder.reductions[-1]
        self.bottleneck, bottom = _bottleneck(
            bottleneck, spatial_dims, deepest, bottleneck_channels, aspp_rates, dict(block_opts, dropout=0.0)
        )
        depth = len(skip_channels)
        node_ch = list(decoder_channels or skip_channels[::-1])[::-1]
        self.ups = nn.ModuleDict()
        self.nodes = nn.ModuleDict()
        level_channels = [*skip_channels, bottom]  # X[i][0]
        for j in range(1, depth + 1):
            for i in range(depth - j + 1):
                below = level_channels[i + 1] if j == 1 else node_ch[i + 1]  # X[i+1][j-1]
                up = Upsample(spatial_dims, below, node_ch[i], upsample, norm=norm, act=act, bias=conv_bias)
                self.ups[f"{i}_{j}"] = up
                cin = skip_channels[i] + (j - 1) * node_ch[i] + up.out_channels
                self.nodes[f"{i}_{j}"] = make_stage_block(
                    decoder_block, spatial_dims, cin, node_ch[i], **block_opts
                )
        self.depth = depth
        n_heads = depth if deep_supervision else 1
        self.heads = nn.ModuleList(
            [layers.conv(spatial_dims, node_ch[0], classes, 1) for _ in range(n_heads)]
        )
        self.classifier: nn.Module | None = None
        if aux_classes:
            self.classifier = nn.Sequential(
                layers.global_avg_pool(spatial_dims),
                nn.Flatten(),
                nn.Dropout(aux_dropout),
                nn.Linear(bottom, aux_classes),
            )
        self.freeze_encoder(freeze_encoder)

    def _forward_padded(self, x: Tensor):
        size = list(x.shape[2:])
        *skips, deepest = self.run(self.encoder, x)
        bottom = self.run(self.bottleneck, deepest)
        grid: list[list[Tensor]] = [[s] for s in skips] + [[bottom]]
        for j in range(1, self.depth + 1):
            for i in range(self.depth - j + 1):
                key = f"{i}_{j}"
                up = self.ups[key](grid[i + 1][j - 1], list(grid[i][0].shape[2:]))
                grid[i].append(self.run(self.nodes[key], torch.cat([*grid[i], up], dim=1)))
        finals = grid[0][1:][::-1]  # X[0][L], ..., X[0][1]
        if self.training and len(self.heads) > 1:
            masks = [
                layers.resize_to(head(f), size, "linear") for head, f in zip(self.heads, finals, strict=True)
            ]
        else:
            masks = layers.resize_to(self.heads[0](finals[0]), size, "linear")
        if self.classifier is not None:
            return masks, self.classifier(bottom)
        return masks
