"""What every unetzoo network shares: its config, input checks, and padding to its stride."""

from __future__ import annotations

import collections.abc
import functools
import inspect
import math
import numbers
import types
import typing
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..encoders import feature_levels
from . import saving
from .factory import ModelArgumentError


class SegmentationModel(nn.Module):
    """Base of the assemblers.

    Subclasses call :meth:`_setup` with their constructor arguments (which checks them, see
    :class:`ModelArgumentError`, and resolves ``encoder_depth=None``) and define
    ``_forward_padded``, which sees an input padded to a multiple of ``output_stride``.
    ``config`` holds every argument that rebuilds the network (``architecture`` is added by
    :func:`unetzoo.create_model`).
    """

    spatial_dims: int
    in_channels: int
    output_stride: int
    _encoder_frozen: bool = False

    def _setup(self, args: dict[str, Any]) -> None:
        args = _check_arguments(type(self), {k: v for k, v in args.items() if k not in ("self", "__class__")})
        self.config: dict[str, Any] = {k: list(v) if isinstance(v, tuple) else v for k, v in args.items()}
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


def _whole(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


@functools.cache
def _annotations(cls: type) -> dict[str, Any]:
    """The evaluated type annotations of ``cls.__init__``'s parameters."""
    try:
        params = inspect.signature(cls.__init__, eval_str=True).parameters
    except (NameError, TypeError, ValueError):  # annotations that do not evaluate: no type checks
        return {}
    return {k: p.annotation for k, p in params.items() if p.annotation is not inspect.Parameter.empty}


def _fits(value: Any, annotation: Any) -> bool:
    """Whether ``value`` (as a caller or a config.json gives it) fits ``annotation``; types this
    check does not know pass."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in typing.get_args(annotation))
    if annotation is None or annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin in (collections.abc.Sequence, list, tuple):
        if isinstance(value, str) or not isinstance(value, collections.abc.Sequence):
            return False
        inner = typing.get_args(annotation)[:1]
        return not inner or inner[0] is Ellipsis or all(_fits(v, inner[0]) for v in value)
    return True


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if not typing.get_args(annotation) else None
    return text or str(annotation).replace("collections.abc.", "").replace("typing.", "")


def _check_arguments(cls: type, args: dict[str, Any]) -> dict[str, Any]:
    """``args`` with ``encoder_depth`` resolved (``None``: every classic level, 5 timm levels), or a
    :class:`ModelArgumentError` naming the argument: a value of the wrong type, a count below 1,
    an empty width list, a dimensionality other than 2 or 3, an encoder depth beyond what the
    encoder offers. The checks run when the model is built, not at its first forward pass."""
    name = cls.__name__

    def fail(key: str, detail: str) -> typing.NoReturn:
        raise ModelArgumentError(name, key, detail)

    for key, annotation in _annotations(cls).items():
        if key in args and not _fits(args[key], annotation):
            fail(key, f"{key}={args[key]!r}; give a value of type {_type_name(annotation)}")
    for key in ("in_channels", "classes", "aux_classes", "bottleneck_channels", "t", "attention_reduction"):
        value = args.get(key)
        if value is not None and not _whole(value):
            fail(key, f"{key}={value!r}; give a whole number >= 1")
    for key, what in (("encoder_channels", "widths"), ("decoder_channels", "widths"), ("aspp_rates", "rates")):
        value = args.get(key)
        if value is not None and (not len(value) or not all(_whole(v) for v in value)):
            fail(key, f"{key}={list(value)!r}; give one or more {what}, each a whole number >= 1")
    for key in ("encoder_dropout", "aux_dropout"):
        value = args.get(key)
        if isinstance(value, numbers.Real) and not 0 <= value < 1:
            fail(key, f"{key}={value!r}; give a probability in [0, 1)")
    spatial_dims = args.get("spatial_dims")
    if isinstance(spatial_dims, bool) or spatial_dims not in (2, 3):
        fail("spatial_dims", f"spatial_dims={spatial_dims!r}; give 2 or 3")
    if "encoder_depth" not in args:
        return args
    encoder, depth, channels = args.get("encoder", "classic"), args["encoder_depth"], args.get("encoder_channels")
    if depth is not None and not _whole(depth):
        fail("encoder_depth", f"encoder_depth={depth!r}; give a whole number >= 1")
    try:
        levels = feature_levels(encoder, channels or ())
    except ValueError as exc:  # an unknown timm name
        fail("encoder", str(exc))
    if encoder == "classic" and depth is not None and depth != levels:
        fail("encoder_depth", f"encoder_depth={depth!r}: the classic encoder's {levels - 1} stages "
             f"(encoder_channels={list(channels)!r}) give {levels} feature levels; leave encoder_depth out, "
             f"or give {depth - 1} widths in encoder_channels")  # fmt: skip
    if encoder != "classic" and depth is not None and levels and depth > levels:
        fail("encoder_depth", f"encoder_depth={depth!r}: the timm encoder {encoder!r} offers 1 to {levels} "
             "feature levels")  # fmt: skip
    return {**args, "encoder_depth": (levels if encoder == "classic" else 5) if depth is None else depth}


def check_decoder_length(cls: type, decoder_channels: Any, skips: int, *, exact: bool) -> None:
    """A :class:`ModelArgumentError` when ``decoder_channels`` has fewer widths than the encoder
    gives skips (or, with ``exact``, another number)."""
    if decoder_channels is None or len(decoder_channels) == skips or (not exact and len(decoder_channels) > skips):
        return
    need = f"exactly {skips}" if exact else f"at least {skips}"
    raise ModelArgumentError(
        cls.__name__, "decoder_channels",
        f"decoder_channels={list(decoder_channels)!r} has {len(decoder_channels)} widths; the encoder gives "
        f"{skips} skips, so give {need} (one per skip level, deepest first)",
    )  # fmt: skip


_NORM_MESSAGES = ("Expected more than 1 value per channel when training",
                  "Expected more than 1 spatial element when training")  # fmt: skip


def explain_norm_error(model: nn.Module, exc: BaseException, x: Tensor) -> str | None:
    """For PyTorch's error of a norm layer that saw one value per channel in training mode, a
    message naming the layer (its module path in ``model``), what it saw, the input's size and
    what to do; ``None`` for any other error."""
    if not isinstance(exc, ValueError) or not str(exc).startswith(_NORM_MESSAGES):
        return None
    layer, seen = None, None
    tb = exc.__traceback__
    while tb is not None:  # the innermost norm module on the failing call's stack
        local = tb.tb_frame.f_locals.get("self")
        if isinstance(local, nn.modules.batchnorm._NormBase):
            layer, seen = local, tb.tb_frame.f_locals.get("input")
        tb = tb.tb_next
    names = {id(m): n for n, m in model.named_modules()}
    where = "a norm layer"
    if layer is not None:
        path = names.get(id(layer))
        where = f"{type(layer).__name__} {path!r}" if path else type(layer).__name__
    if isinstance(seen, Tensor):
        where += f" (its input {tuple(seen.shape)})"
    return (
        f"{where} sees one value per channel in training mode for an input of size {tuple(x.shape)}: "
        "train with a batch of 2 or more (--batch-size, and --drop-last so that no last batch of one "
        "remains), larger inputs (--size/--crop), or a norm that works per sample "
        "(--model-arg norm=group)"
    )
