"""The classic U-Net contracting path built from stage blocks."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ..blocks import layers, make_attention, make_stage_block


class ClassicEncoder(nn.Module):
    """Stage blocks separated by 2× max pooling.

    With ``channels = (c0, ..., c{n-1})`` it returns ``n + 1`` feature maps: the output of
    each stage at reductions ``1, 2, ..., 2**(n-1)``, and finally the pooled output of the
    last stage at reduction ``2**n`` (channels ``c{n-1}``), which feeds the bottleneck.
    ``attention`` (``se``/``cbam``) follows each stage block when given.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        channels: Sequence[int],
        *,
        block: str = "double_conv",
        attention: str | None = None,
        attention_reduction: int = 16,
        **block_opts,
    ) -> None:
        super().__init__()
        self.stages = nn.ModuleList()
        prev = in_channels
        for ch in channels:
            self.stages.append(
                nn.Sequential(
                    make_stage_block(block, spatial_dims, prev, ch, **block_opts),
                    make_attention(attention, spatial_dims, ch, attention_reduction),
                )
            )
            prev = ch
        self.pool = layers.max_pool(spatial_dims)
        self.out_channels = [*channels, channels[-1]]
        self.reductions = [2**i for i in range(len(channels) + 1)]

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        for i, stage in enumerate(self.stages):
            x = stage(x if i == 0 else self.pool(x))
            features.append(x)
        features.append(self.pool(x))
        return features
