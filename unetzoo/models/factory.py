"""The model registry and the functions that reach it by name."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from torch import nn

from ..encoders import encoder_reductions, timm_statistics
from ..registry import Registry
from .papers import full_references

MODELS = Registry("model", group="unetzoo.models")


class ModelArgumentError(ValueError):
    """An argument a model cannot be built with: ``model`` names the model (the assembler, or the
    registered name when built through :func:`unetzoo.create_model`) and ``argument`` the argument."""

    def __init__(self, model: str, argument: str, detail: str) -> None:
        super().__init__(f"{model}: {detail}")
        self.model, self.argument, self.detail = model, argument, detail

    def __reduce__(self):
        return type(self), (self.model, self.argument, self.detail)

    def for_model(self, name: str) -> ModelArgumentError:
        """The same error naming the model ``name``."""
        return ModelArgumentError(name, self.argument, self.detail)


@dataclass(frozen=True)
class Preprocessing:
    """What a model expects of its inputs.

    Images are scaled to [0, 1] (``x / 255``), then normalised per channel with ``mean`` and
    ``std``. ``input_multiple`` is the size every spatial dimension is a multiple of inside the
    network (other sizes are zero-padded to it and cropped back), ``expected_size`` the spatial
    size the model (or its pretrained encoder) was designed for, ``None`` for any size.
    """

    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    input_multiple: int = 1
    expected_size: tuple[int, ...] | None = None

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], **defaults: Any) -> Preprocessing:
        """A :class:`Preprocessing` from a mapping with some of its fields (``defaults`` fill the rest);
        other keys are a ``ValueError`` naming them."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"preprocessing keys {unknown} are unknown; use {sorted(names)}")
        given = {**defaults, **{k: v for k, v in values.items() if v is not None}}
        return cls(**_normalised(given))

    def statistics(self, channels: int) -> tuple[list[float], list[float]]:
        """``(mean, std)`` for ``channels`` input channels: as given when the counts match, else the
        average of the given values for every channel (a grey image on an RGB-pretrained encoder)."""

        def fit(values: tuple[float, ...]) -> list[float]:
            if len(values) == channels:
                return [float(v) for v in values]
            return [sum(values) / len(values)] * channels

        return fit(self.mean), fit(self.std)

    def to_dict(self, channels: int) -> dict[str, Any]:
        """The ``preprocessing`` entry of a ``config.json`` for a model with ``channels`` inputs."""
        mean, std = self.statistics(channels)
        return {
            "scale": 1 / 255,
            "mean": mean,
            "std": std,
            "input_size": None,
            "input_multiple": self.input_multiple,
            "pad_multiple": self.input_multiple,
            "expected_size": list(self.expected_size) if self.expected_size else None,
        }


def _normalised(values: dict[str, Any]) -> dict[str, Any]:
    """Preprocessing values as the dataclass holds them: tuples of floats, a whole ``input_multiple``."""
    out = dict(values)
    for key in ("mean", "std"):
        value = out.get(key)
        if value is not None:
            items = tuple(value) if isinstance(value, Sequence) else (value,)
            if not items or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in items):
                raise ValueError(f"preprocessing {key}={value!r}; give one number per input channel")
            if key == "std" and any(v <= 0 for v in items):
                raise ValueError(f"preprocessing std={value!r}; every value must be > 0")
            out[key] = tuple(float(v) for v in items)
    multiple = out.get("input_multiple")
    if multiple is not None and (not isinstance(multiple, int) or isinstance(multiple, bool) or multiple < 1):
        raise ValueError(f"preprocessing input_multiple={multiple!r}; give a whole number >= 1")
    size = out.get("expected_size")
    if size is not None:
        out["expected_size"] = tuple(int(v) for v in size)
    return out


@dataclass(frozen=True)
class ModelSpec:
    """A named architecture: an assembler class and the arguments that make it that network.

    ``mean``, ``std``, ``input_multiple`` and ``expected_size`` are its :class:`Preprocessing`;
    those left ``None`` follow from the arguments (see :meth:`preprocessing`).
    """

    name: str
    assembler: type[nn.Module]
    defaults: dict[str, Any]
    paper: str = ""
    doc: str = ""
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    input_multiple: int | None = None
    expected_size: tuple[int, ...] | None = None

    def unknown_arguments(self, args: Mapping[str, Any]) -> list[str]:
        """The names in ``args`` that the assembler does not take, sorted."""
        return sorted(set(args) - set(inspect.signature(self.assembler).parameters))

    def build(self, **overrides: Any) -> nn.Module:
        """The assembler called with the defaults updated by ``overrides``.

        Arguments are checked before anything is built; a bad one raises a
        :class:`~unetzoo.models.base.ModelArgumentError` naming this model and the argument.
        """
        unknown = self.unknown_arguments(overrides)
        if unknown:
            params = inspect.signature(self.assembler).parameters
            raise TypeError(
                f"model {self.name!r} takes no argument(s) {', '.join(map(repr, unknown))}; "
                f"it accepts: {', '.join(params)}"
            )
        try:
            return self.assembler(**{**self.defaults, **overrides})
        except ModelArgumentError as exc:
            raise exc.for_model(self.name) from None

    def arguments(self, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Every argument of the assembler: its defaults, the spec's, then ``config``'s."""
        params = inspect.signature(self.assembler).parameters
        args = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
        return {**args, **self.defaults, **{k: v for k, v in (config or {}).items() if k != "architecture"}}

    def preprocessing(self, config: Mapping[str, Any] | None = None, output_stride: int | None = None) -> Preprocessing:
        """The preprocessing of this model built with ``config`` (default: the spec's arguments).

        Values given to :func:`register_model` win. Otherwise a timm encoder gives ``mean``,
        ``std`` and ``expected_size`` from its pretrained configuration, the classic encoder
        scales only (mean 0, std 1) and fits any size; ``input_multiple`` is ``output_stride``
        when a built model tells it, else the stride of the encoder's deepest feature level.
        """
        args = self.arguments(config)
        encoder = args.get("encoder", "classic")
        mean, std, size = (0.0,), (1.0,), None
        if encoder != "classic":
            mean, std, size = timm_statistics(encoder)
        multiple = output_stride or self.input_multiple
        if multiple is None:
            reductions = encoder_reductions(encoder, args.get("encoder_channels") or (), args.get("encoder_depth"))
            multiple = reductions[-1] if reductions else 1
        values = dict(mean=self.mean or mean, std=self.std or std, input_multiple=multiple,
                      expected_size=self.expected_size or size)  # fmt: skip
        return Preprocessing(**_normalised(values))

    @property
    def references(self) -> list[str]:
        """Full references of the papers the architecture comes from."""
        return full_references(self.paper)

    @property
    def spatial_dims(self) -> int:
        """Default number of spatial dimensions."""
        return self.defaults.get("spatial_dims", 2)


def register_model(
    assembler: type[nn.Module],
    *,
    paper: str = "",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    input_multiple: int | None = None,
    expected_size: Sequence[int] | None = None,
) -> Callable:
    """Decorator: the decorated function returns the defaults of a named architecture.

    The function's name is the model name and its docstring its description::

        @register_model(UNet, paper="Oktay et al. 2018, arXiv:1804.03999")
        def attn_unet():
            "Attention U-Net."
            return dict(REFERENCE, skip_gate="attention")

    ``mean``, ``std`` (per channel, for inputs scaled to [0, 1]), ``input_multiple`` and
    ``expected_size`` set the model's :class:`Preprocessing`; left out, they follow from its
    encoder (see :meth:`ModelSpec.preprocessing`).
    """
    given = _normalised(dict(mean=mean, std=std, input_multiple=input_multiple, expected_size=expected_size))

    def wrap(fn: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
        doc = inspect.cleandoc(fn.__doc__ or "")
        MODELS.add(fn.__name__, ModelSpec(fn.__name__, assembler, fn(), paper, doc, **given))
        return fn

    return wrap


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching the shell-style ``pattern`` (e.g. ``"attn*"``), sorted."""
    return MODELS.names(pattern)


def model_spec(name: str) -> ModelSpec | None:
    """The :class:`ModelSpec` of a built-in model, or ``None`` for a plugin factory."""
    obj = MODELS.get(name)
    return obj if isinstance(obj, ModelSpec) else None


def preprocessing_of(name: str, model: nn.Module | None = None) -> Preprocessing:
    """The :class:`Preprocessing` of the registered model ``name``, as ``model`` was built when given.

    A :class:`ModelSpec` gives it (:meth:`ModelSpec.preprocessing`). A plugin factory may carry
    a ``preprocessing`` attribute, a :class:`Preprocessing` or a mapping with some of its fields;
    what it leaves out defaults to scaling only (mean 0, std 1), the model's ``output_stride``
    as ``input_multiple`` (else 1) and any size.
    """
    obj = MODELS.get(name)
    config = getattr(model, "config", None) if model is not None else None
    stride = getattr(model, "output_stride", None) if model is not None else None
    if isinstance(obj, ModelSpec):
        return obj.preprocessing(config if isinstance(config, Mapping) else None, stride)
    meta = getattr(obj, "preprocessing", None)
    if isinstance(meta, Preprocessing):
        return meta if not stride else Preprocessing(meta.mean, meta.std, stride, meta.expected_size)
    try:
        given = dict(meta) if isinstance(meta, Mapping) else {}
        if stride:
            given["input_multiple"] = stride
        return Preprocessing.from_mapping(given)
    except ValueError as exc:
        raise ValueError(f"model {name!r}: its factory's preprocessing attribute: {exc}") from None


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a fresh registered model ``name``; keyword ``overrides`` replace its defaults.

    The returned module carries ``config``: ``{"architecture": name, ...}`` with every
    argument that rebuilds it. Unknown names raise :class:`unetzoo.registry.UnknownNameError`
    listing the closest names. Weights are a floor above: ``unetzoo.create_model(name,
    pretrained=...)`` (:func:`unetzoo.hub.create_model`).
    """
    if "pretrained" in overrides:
        raise TypeError(
            f"unetzoo.models.create_model builds fresh models and takes no 'pretrained'; "
            f"use unetzoo.create_model({name!r}, pretrained=...) to load weights"
        )
    obj = MODELS.get(name)
    model = obj.build(**overrides) if isinstance(obj, ModelSpec) else obj(**overrides)
    args = getattr(model, "config", None)
    args = dict(args) if isinstance(args, dict) else dict(overrides)
    args.pop("architecture", None)
    model.config = {"architecture": name, **args}
    return model
