"""Blocks chosen by name, as the assemblers' configuration names them."""

from __future__ import annotations

from torch import nn

from .cbam import CBAM
from .conv import DoubleConv, ResidualBlock
from .recurrent import R2Block
from .se import SqueezeExcitation

STAGE_BLOCKS = {"double_conv": DoubleConv, "r2": R2Block, "residual": ResidualBlock}
ATTENTIONS = ("se", "cbam")


def make_stage_block(
    kind: str,
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    *,
    norm: str = "batch",
    act: str = "relu",
    bias: bool = True,
    dropout: float = 0.0,
    t: int = 2,
) -> nn.Module:
    """A stage block by name (``double_conv``, ``r2``, ``residual``): ``(N, in, *S) -> (N, out, *S)``.

    ``t`` (the number of recurrences) is used by ``r2`` only.
    """
    if kind not in STAGE_BLOCKS:
        raise ValueError(f"unknown stage block {kind!r}; choose one of {', '.join(STAGE_BLOCKS)}")
    opts = dict(norm=norm, act=act, bias=bias, dropout=dropout)
    if kind == "r2":
        opts["t"] = t
    return STAGE_BLOCKS[kind](spatial_dims, in_channels, out_channels, **opts)


def make_attention(kind: str | None, spatial_dims: int, channels: int, reduction: int = 16) -> nn.Module:
    """A channel-preserving attention by name: ``se``, ``cbam``, or ``None`` for an identity."""
    if kind is None or kind == "none":
        return nn.Identity()
    if kind == "se":
        return SqueezeExcitation(spatial_dims, channels, reduction)
    if kind == "cbam":
        return CBAM(spatial_dims, channels, reduction)
    raise ValueError(f"unknown attention {kind!r}; choose one of {', '.join(ATTENTIONS)} or None")
