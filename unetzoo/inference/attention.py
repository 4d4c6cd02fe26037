"""Attention maps of a model, read with forward hooks while it predicts.

Two kinds of map are taken, each as coefficients in ``[0, 1]`` of shape ``(N, 1, *S)`` at
the resolution where the block works:

- the additive attention gates of Attention U-Net (``AttentionGate``): the ``psi`` map that
  weights the skip connection of one decoder level;
- CBAM's spatial attention (``SpatialAttention``): the map that weights every position of
  the features it follows.

The hooks sit on the block's last convolution before its sigmoid, so the model's code is not
changed and nothing is kept once the call returns.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..blocks.attention import AttentionGate
from ..blocks.cbam import SpatialAttention
from ..models import mask_logits


def attention_modules(model: nn.Module) -> dict[str, nn.Module]:
    """``{name: block}`` of every attention gate and CBAM spatial attention, in module order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, (AttentionGate, SpatialAttention))}


def _pre_sigmoid(block: nn.Module) -> nn.Module:
    """The submodule whose output goes through the block's sigmoid."""
    return block.psi if isinstance(block, AttentionGate) else block.conv


@torch.no_grad()
def attention_maps(model: nn.Module, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Logits of ``model`` for ``x`` and ``{name: map (N, 1, *S)}`` of every attention block.

    A block that runs more than once in one forward keeps its last map. A model without
    attention blocks gives an empty dictionary.
    """
    maps: dict[str, Tensor] = {}
    handles = []
    for name, block in attention_modules(model).items():

        def keep(_module, _inputs, output, name=name) -> None:
            maps[name] = torch.sigmoid(output.detach().float()).cpu()

        handles.append(_pre_sigmoid(block).register_forward_hook(keep))
    try:
        logits = mask_logits(model(x))
    finally:
        for handle in handles:
            handle.remove()
    return logits, maps
