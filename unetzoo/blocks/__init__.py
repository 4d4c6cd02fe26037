"""Dimension-generic building blocks; every block takes ``spatial_dims`` (2 or 3) first."""

from .aspp import ASPP
from .attention import AttentionGate
from .cbam import CBAM, ChannelAttention, SpatialAttention
from .conv import ConvNormAct, DoubleConv, ResidualBlock
from .recurrent import R2Block, RecurrentConv
from .se import SqueezeExcitation
from .stages import STAGE_BLOCKS, make_attention, make_stage_block
from .upsample import UPSAMPLE_MODES, Upsample

__all__ = [
    "ASPP",
    "CBAM",
    "STAGE_BLOCKS",
    "UPSAMPLE_MODES",
    "AttentionGate",
    "ChannelAttention",
    "ConvNormAct",
    "DoubleConv",
    "R2Block",
    "RecurrentConv",
    "ResidualBlock",
    "SpatialAttention",
    "SqueezeExcitation",
    "Upsample",
    "make_attention",
    "make_stage_block",
]
