"""The U-Net assembler: every U-Net variant of the zoo is a configuration of :class:`UNet`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..blocks import ASPP, CBAM, AttentionGate, Upsample, layers, make_attention, make_stage_block
from ..encoders import build_encoder, encoder_reductions
from .base import SegmentationModel, check_decoder_length

SKIP_GATES = ("attention", "cbam")
BOTTLENECKS = ("conv", "r2", "residual", "aspp", "none")


class DecoderStage(nn.Module):
    """Upsample, gate the skip, concatenate ``[skip, up]``, stage block, optional attention.

    ``forward(x, skip)``: ``x`` ``(N, in, *s)`` and ``skip`` ``(N, skip_channels, *S)`` give
    ``(N, out, *S)``. Without a skip (``skip_channels == 0``) the output is twice the input size.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        skip_channels: int,
        out_channels: int,
        *,
        block: str,
        upsample: str,
        skip_gate: str | None,
        attention: str | None,
        attention_reduction: int,
        block_opts: dict,
    ) -> None:
        super().__init__()
        conv_opts = {k: block_opts[k] for k in ("norm", "act", "bias")}
        self.up = Upsample(spatial_dims, in_channels, out_channels, upsample, **conv_opts)
        if skip_channels and skip_gate == "attention":
            self.gate: nn.Module | None = AttentionGate(
                spatial_dims, self.up.out_channels, skip_channels, norm=block_opts["norm"]
            )
        elif skip_channels and skip_gate == "cbam":
            self.gate = CBAM(spatial_dims, skip_channels, attention_reduction)
        elif skip_gate in (None, "none") or not skip_channels:
            self.gate = None
        else:
            raise ValueError(f"unknown skip_gate {skip_gate!r}; choose one of {SKIP_GATES} or None")
        self.block = make_stage_block(
            block, spatial_dims, self.up.out_channels + skip_channels, out_channels, **block_opts
        )
        self.attention = make_attention(attention, spatial_dims, out_channels, attention_reduction)

    def forward(self, x: Tensor, skip: Tensor | None = None) -> Tensor:
        if skip is None:
            return self.attention(self.block(self.up(x, [2 * s for s in x.shape[2:]])))
        x = self.up(x, list(skip.shape[2:]))
        if isinstance(self.gate, AttentionGate):
            skip = self.gate(x, skip)
        elif self.gate is not None:
            skip = self.gate(skip)
        return self.attention(self.block(torch.cat([skip, x], dim=1)))


class UNet(SegmentationModel):
    """Configurable U-Net: encoder → bottleneck → decoder stages with (gated) skips → 1×1 head.

    Input ``(N, in_channels, *S)`` with any spatial size ``S``; output logits
    ``(N, classes, *S)``. With ``deep_supervision`` (training mode) a list of logits at
    size ``S`` comes back, the final one first and then one per earlier decoder stage,
    finest first. With ``aux_classes`` the return value is ``(mask_logits, class_logits)``
    where ``class_logits`` is ``(N, aux_classes)`` from the pooled bottleneck.

    Args:
        spatial_dims: 2 or 3.
        in_channels, classes: input channels and output classes (any counts).
        encoder: ``"classic"`` (stage blocks with max pooling) or the name of a timm model.
        encoder_channels: stage widths of the classic encoder, shallow first.
        encoder_depth: number of encoder feature levels: 1 to what a timm encoder offers (default
            5); the classic encoder's is ``len(encoder_channels) + 1``, the default.
        encoder_weights: pretrained encoder weights (``None``: random init).
        encoder_block, decoder_block: stage block names (``double_conv``, ``r2``, ``residual``).
        encoder_attention: ``se``/``cbam`` after each classic encoder stage.
        encoder_dropout: channel dropout in the classic encoder and bottleneck blocks.
        bottleneck: ``conv`` (double conv), ``r2``, ``residual``, ``aspp`` or ``none``.
        bottleneck_channels: bottleneck output width.
        aspp_rates: dilation rates of the ASPP bottleneck.
        decoder_channels: decoder stage widths, deepest first; stages beyond the number of
            skips upsample 2× with no skip.
        skip_gate: ``attention`` (additive attention gate), ``cbam`` or ``None``.
        decoder_attention: ``se``/``cbam`` after each decoder stage.
        attention_reduction: channel reduction of SE/CBAM.
        upsample: see :class:`unetzoo.blocks.Upsample`.
        norm, act, conv_bias: layer choices of every conv block.
        t: recurrences of R2 blocks.
        deep_supervision: extra 1×1 heads on the decoder stages (training outputs).
        aux_classes: size of an optional classification head on the bottleneck.
        aux_dropout: dropout before the classification layer.
        gradient_checkpointing: recompute encoder/decoder stages in backward to save memory.
        freeze_encoder: build with the encoder's parameters frozen (``requires_grad=False``).
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 3,
        classes: int = 1,
        *,
        encoder: str = "classic",
        encoder_channels: Sequence[int] = (64, 128, 256, 512),
        encoder_depth: int | None = None,
        encoder_weights: str | None = None,
        encoder_block: str = "double_conv",
        encoder_attention: str | None = None,
        encoder_dropout: float = 0.0,
        bottleneck: str = "conv",
        bottleneck_channels: int | None = 1024,
        aspp_rates: Sequence[int] = (6, 12, 18),
        decoder_channels: Sequence[int] = (512, 256, 128, 64),
        decoder_block: str = "double_conv",
        skip_gate: str | None = None,
        decoder_attention: str | None = None,
        attention_reduction: int = 16,
        upsample: str = "nearest_conv",
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
            check_decoder_length(type(self), decoder_channels, len(levels) - 1, exact=False)
        block_opts = dict(norm=norm, act=act, bias=conv_bias, t=t)
        self.encoder = build_encoder(
            encoder,
            spatial_dims,
            in_channels,
            channels=encoder_channels,
            depth=encoder_depth,
            weights=encoder_weights,
            block=encoder_block,
            attention=encoder_attention,
            attention_reduction=attention_reduction,
            dropout=encoder_dropout,
            **block_opts,
        )
        *skip_channels, deepest = self.encoder.out_channels
        self.output_stride = self.encoder.reductions[-1]
        self.bottleneck, width = _bottleneck(
            bottleneck,
            spatial_dims,
            deepest,
            bottleneck_channels,
            aspp_rates,
            dict(block_opts, dropout=encoder_dropout),
        )
        self.decoder = nn.ModuleList()
        skips_deep_first = skip_channels[::-1]
        for i, out_ch in enumerate(decoder_channels):
            skip_ch = skips_deep_first[i] if i < len(skips_deep_first) else 0
            self.decoder.append(
                DecoderStage(
                    spatial_dims,
                    width,
                    skip_ch,
                    out_ch,
                    block=decoder_block,
                    upsample=upsample,
                    skip_gate=skip_gate,
                    attention=decoder_attention,
                    attention_reduction=attention_reduction,
                    block_opts=block_opts,
                )
            )
            width = out_ch
        self.head = layers.conv(spatial_dims, width, classes, 1)
        self.aux_heads = nn.ModuleList(
            [layers.conv(spatial_dims, ch, classes, 1) for ch in decoder_channels[:-1]]
            if deep_supervision
            else []
        )
        self.classifier: nn.Module | None = None
        if aux_classes:
            self.classifier = nn.Sequential(
                layers.global_avg_pool(spatial_dims),
                nn.Flatten(),
                nn.Dropout(aux_dropout),
                nn.Linear(self.decoder[0].up.in_channels, aux_classes),
            )
        self.freeze_encoder(freeze_encoder)

    def _forward_padded(self, x: Tensor):
        size = list(x.shape[2:])
        features = self.run(self.encoder, x)
        *skips, deepest = features
        bottleneck_out = y = self.run(self.bottleneck, deepest)
        stage_outputs = []
        for i, stage in enumerate(self.decoder):
            skip = skips[-1 - i] if i < len(skips) else None
            y = self.run(stage, y, skip)
            stage_outputs.append(y)
        masks = layers.resize_to(self.head(y), size, "linear")
        if self.aux_heads and self.training:
            extra = [
                layers.resize_to(head(out), size, "linear")
                for head, out in zip(self.aux_heads, stage_outputs[:-1], strict=True)
            ]
            masks = [masks, *extra[::-1]]
        if self.classifier is not None:
            return masks, self.classifier(bottleneck_out)
        return masks


def _bottleneck(
    kind: str,
    spatial_dims: int,
    in_channels: int,
    out_channels: int | None,
    aspp_rates: Sequence[int],
    block_opts: dict,
) -> tuple[nn.Module, int]:
    """The bottleneck module and its output width."""
    if kind == "none":
        return nn.Identity(), in_channels
    out = out_channels or in_channels
    if kind == "aspp":
        opts = {k: block_opts[k] for k in ("norm", "act", "dropout")}
        return ASPP(spatial_dims, in_channels, out, aspp_rates, **opts), out
    blocks = {"conv": "double_conv", "r2": "r2", "residual": "residual"}
    if kind not in blocks:
        raise ValueError(f"unknown bottleneck {kind!r}; choose one of {', '.join(BOTTLENECKS)}")
    return make_stage_block(blocks[kind], spatial_dims, in_channels, out, **block_opts), out
