"""A model made ready for prediction: batch norms folded into their convolutions, channels-last.

Both change how the network computes, not what: a folded ``conv → BatchNorm`` in eval mode
is one convolution with rescaled weights and a shifted bias (equal up to float rounding),
and channels-last only reorders memory so that oneDNN (CPU) and cuDNN (GPU) pick their fast
kernels (BENCHMARKS.md measures the gain). The copy is for inference only: its folded
layers no longer hold batch statistics to train.
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def fold_batchnorm(model: nn.Module) -> int:
    """Fold, in place, every eval-mode BatchNorm that directly follows a convolution inside a
    ``nn.Sequential`` (the ``conv → norm → act`` blocks) into that convolution; the norm
    becomes an ``nn.Identity``. Returns how many were folded. The model must be in eval mode."""
    if model.training:
        raise ValueError("fold_batchnorm: put the model in eval mode first (model.eval())")
    folded = 0
    for module in list(model.modules()):
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in itertools.pairwise(names):
            conv, norm = module._modules[first], module._modules[second]
            if (isinstance(conv, _CONVS) and isinstance(norm, _NORMS) and norm.track_running_stats
                    and norm.running_mean is not None and conv.out_channels == norm.num_features):  # fmt: skip
                module._modules[first] = fuse_conv_bn_eval(conv, norm)
                module._modules[second] = nn.Identity()
                folded += 1
    return folded


def inference_model(model: nn.Module, *, channels_last: bool | None = None) -> nn.Module:
    """An eval-mode copy of ``model`` with its batch norms folded (:func:`fold_batchnorm`) and,
    for 2D models (``channels_last=None``) or when asked, its weights in channels-last order.

    The copy keeps the model's ``config``, ``pretrained_info`` and ``output_stride``; the
    original is left as it was.
    """
    ready = copy.deepcopy(model).eval()
    with torch.no_grad():
        fold_batchnorm(ready)
    spatial = int(getattr(model, "config", {}).get("spatial_dims", 2))
    if channels_last is None:
        channels_last = spatial == 2
    if channels_last:
        ready = ready.to(memory_format=torch.channels_last if spatial == 2 else torch.channels_last_3d)
    return ready


def default_batch(device: torch.device | str) -> int:
    """Samples per forward pass when the caller gives none: 8 on a GPU; 2 on a CPU, where a
    larger batch costs more per sample (cache pressure) and only bounds memory."""
    return 8 if torch.device(device).type == "cuda" else 2
