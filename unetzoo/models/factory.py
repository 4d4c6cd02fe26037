"""The model registry and the functions that reach it by name."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..registry import Registry
from .papers import full_references

MODELS = Registry("model", group="unetzoo.models")


@dataclass(frozen=True)
class ModelSpec:
    """A named architecture: an assembler class and the arguments that make it that network."""

    name: str
    assembler: type[nn.Module]
    defaults: dict[str, Any]
    paper: str = ""
    doc: str = ""

    def build(self, **overrides: Any) -> nn.Module:
        """The assembler called with the defaults updated by ``overrides``."""
        params = inspect.signature(self.assembler).parameters
        unknown = sorted(set(overrides) - set(params))
        if unknown:
            raise TypeError(
                f"model {self.name!r} takes no argument(s) {', '.join(map(repr, unknown))}; "
                f"it accepts: {', '.join(params)}"
            )
        return self.assembler(**{**self.defaults, **overrides})

    @property
    def references(self) -> list[str]:
        """Full references of the papers the architecture comes from."""
        return full_references(self.paper)

    @property
    def spatial_dims(self) -> int:
        """Default number of spatial dimensions."""
        return self.defaults.get("spatial_dims", 2)


def register_model(assembler: type[nn.Module], *, paper: str = "") -> Callable:
    """Decorator: the decorated function returns the defaults of a named architecture.

    The function's name is the model name and its docstring its description::

        @register_model(UNet, paper="Oktay et al. 2018, arXiv:1804.03999")
        def attn_unet():
            "Attention U-Net."
            return dict(REFERENCE, skip_gate="attention")
    """

    def wrap(fn: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
        doc = inspect.cleandoc(fn.__doc__ or "")
        MODELS.add(fn.__name__, ModelSpec(fn.__name__, assembler, fn(), paper, doc))
        return fn

    return wrap


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching the shell-style ``pattern`` (e.g. ``"attn*"``), sorted."""
    return MODELS.names(pattern)


def model_spec(name: str) -> ModelSpec | None:
    """The :class:`ModelSpec` of a built-in model, or ``None`` for a plugin factory."""
    obj = MODELS.get(name)
    return obj if isinstance(obj, ModelSpec) else None


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
