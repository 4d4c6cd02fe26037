"""What every unetzoo network shares: its config, input checks, and padding to its stride."""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from . import saving


class SegmentationModel(nn.Module):
    """Base of the assemblers.

    Subclasses call :meth:`_setup` with their constructor arguments and define
    ``_forward_padded``, which sees an input padded to a multiple of ``output_stride``.
    ``config`` holds every argument that rebuilds the network (``architecture`` is added by
    :func:`unetzoo.create_model`).
    """

    spatial_dims: int
    in_channels: int
    output_stride: int
    _encoder_frozen: bool = False

    def _setup(self, args: dict[str, Any]) -> None:
        _check_arguments(type(self).__name__, args)
        self.config: dict[str, Any] = {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in args.items()
            if k not in ("self", "__class__")
        }
        self.spatial_dims = args["spatial_dims"]
        self.in_channels = args["in_channels"]
        self.gradient_checkpointing = bool(args.get("gradient_checkpointing", False))

    def save_pretrained(self, directory, **card) -> Any:
        """Write ``config.json``, ``model.safetensors`` and a ``README.md`` card.

        See :func:`unetzoo.models.saving.save_pretrained` for the card's keyword arguments.
        """
        return saving.save_pretrained(self, directory, **card)

    def push_to_hub(self, repo_id: str, **kwargs) -> str:
        """Publish the three files to a Hub repo; see :func:`unetzoo.models.saving.push_to_hub`."""
        return saving.push_to_hub(self, repo_id, **kwargs)

    def freeze_encoder(self, freeze: bool = True) -> None:
        """Freeze (or unfreeze) the encoder: no gradients, and kept in eval mode.

        A frozen encoder stays in eval mode whatever mode the model is put in, so its
        BatchNorm running statistics are used but never updated and its dropout is off.
        Unfreezing makes it follow the model's mode again.
        """
        self._encoder_frozen = freeze
        for p in self.encoder.parameters():
            p.requires_grad_(not freeze)
        self.encoder.train(self.training and not freeze)

    def train(self, mode: bool = True) -> SegmentationModel:
        """Set training mode like :meth:`torch.nn.Module.train`, keeping a frozen encoder in eval mode."""
        super().train(mode)
        if self._encoder_frozen:
            self.encoder.eval()
        return self

    def param_groups(self, lr: float, encoder_lr: float | None = None) -> list[dict[str, Any]]:
        """Optimizer groups: the encoder at ``encoder_lr`` (``None``: ``lr / 10``), the rest at ``lr``.

        Frozen parameters are left out.
        """
        encoder_ids = {id(p) for p in self.encoder.parameters()}
        encoder = [p for p in self.encoder.parameters() if p.requires_grad]
        rest = [p for p in self.parameters() if id(p) not in encoder_ids and p.requires_grad]
        groups = [{"name": "decoder", "params": rest, "lr": lr}]
        if encoder:
            encoder_lr = lr / 10 if encoder_lr is None else encoder_lr
            groups.insert(0, {"name": "encoder", "params": encoder, "lr": encoder_lr})
        return groups

    def check_input(self, x: Tensor) -> None:
        """Raise a ``ValueError`` naming the expected shape when ``x`` does not fit the network."""
        rank = self.spatial_dims + 2
        layout = "(N, C, H, W)" if self.spatial_dims == 2 else "(N, C, D, H, W)"
        if x.dim() != rank:
            raise ValueError(
                f"{type(self).__name__} with spatial_dims={self.spatial_dims} expects a "
                f"{rank}-D input {layout}, got a {x.dim()}-D tensor of shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} expects {self.in_channels} input channel(s) "
                f"{layout} with C={self.in_channels}, got {x.shape[1]} (shape {tuple(x.shape)})"
            )

    def run(self, module: nn.Module, *args: Tensor | None) -> Tensor:
        """Call ``module``, through activation checkpointing when that is enabled and training."""
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(module, *args, use_reentrant=False)
        return module(*args)

    def forward(self, x: Tensor):
        """Segment ``x`` of shape ``(N, in_channels, *S)``; logits come back at size ``S``.

        Any spatial size works: the input is zero-padded to a multiple of ``output_stride``
        and the outputs are cropped back.
        """
        self.check_input(x)
        size = list(x.shape[2:])
        padded = [math.ceil(s / self.output_stride) * self.output_stride for s in size]
        if padded != size:
            pad: list[int] = []
            for s, p in zip(reversed(size), reversed(padded), strict=True):
                pad += [0, p - s]
            x = F.pad(x, pad)
        out = self._forward_padded(x)
        if padded == size:
            return out
        return _map_tensors(out, lambda t: _crop(t, size))

    def _forward_padded(self, x: Tensor):
        raise NotImplementedError


def mask_logits(out: Tensor | list | tuple) -> Tensor:
    """The final mask logits ``(N, C, *S)`` of a model output.

    A deep-supervision list gives its first (final) entry; a ``(masks, class_logits)`` pair of a
    model with a classification head gives its masks.
    """
    if isinstance(out, tuple):
        out = out[0]
    return out[0] if isinstance(out, list) else out


def _crop(t: Tensor, size: list[int]) -> Tensor:
    """Crop the trailing spatial dims of a segmentation map; class logits (N, K) pass through."""
    if t.dim() == 2:
        return t
    index = [slice(None), slice(None)] + [slice(0, s) for s in size]
    return t[tuple(index)]


def _map_tensors(out, fn):
    if isinstance(out, Tensor):
        return fn(out)
    if isinstance(out, (list, tuple)):
        return type(out)(_map_tensors(o, fn) for o in out)
    return out


def _check_arguments(name: str, args: dict[str, Any]) -> None:
    """Refuse arguments that would only fail at the first forward pass (or never): counts
    below 1, empty width lists, a dimensionality other than 2 or 3."""

    def whole(value: Any) -> bool:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1

    for key in ("in_channels", "classes", "aux_classes"):
        value = args.get(key)
        if value is not None and not whole(value):
            raise ValueError(f"{name}: {key}={value!r}; give a whole number >= 1")
    for key in ("encoder_channels", "decoder_channels"):
        value = args.get(key)
        if value is not None and (not len(value) or not all(whole(v) for v in value)):
            raise ValueError(f"{name}: {key}={list(value)!r}; give one or more widths, each a whole number >= 1")
    if args.get("spatial_dims") not in (2, 3):
        raise ValueError(f"{name}: spatial_dims={args.get('spatial_dims')!r}; give 2 or 3")
