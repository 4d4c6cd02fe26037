"""Facts about registered models without training them: parameters, MACs, constraints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .models import MODELS, create_model, model_spec


@dataclass
class ModelSummary:
    """What ``unetzoo list`` and ``unetzoo info`` show for one model."""

    name: str
    dims: str
    parameters: int
    paper: str
    description: str
    source: str
    config: dict[str, Any]
    output_stride: int | None


def _build_on_meta(name: str, **overrides: Any) -> nn.Module:
    """Build without allocating weights: shapes only, so even 100M-parameter models are instant."""
    with torch.device("meta"):
        return create_model(name, **overrides)


def summarize(name: str, **overrides: Any) -> ModelSummary:
    """Parameter count, dimensions and config of ``name`` built with ``overrides``."""
    entry = MODELS.entry(name)
    spec = model_spec(name)
    model = _build_on_meta(name, **overrides)
    config = dict(model.config)
    dims = f"{config.get('spatial_dims', 2)}D"
    if config.get("encoder") == "classic" and dims == "2D":
        dims = "2D, 3D"  # classic encoders build in either; 3D-first models say 3D
    return ModelSummary(
        name=name,
        dims=dims,
        parameters=sum(p.numel() for p in model.parameters()),
        paper=spec.paper if spec else "",
        description=(spec.doc if spec else (entry.obj.__doc__ or "")).strip().split("\n")[0],
        source=entry.source,
        config=config,
        output_stride=getattr(model, "output_stride", None),
    )


def count_macs(name: str, size: tuple[int, ...], **overrides: Any) -> int:
    """Multiply-accumulates of one forward pass on a batch of 1 at spatial ``size``."""
    model = _build_on_meta(name, **overrides).eval()
    channels = model.config.get("in_channels", 3)
    x = torch.empty((1, channels, *size), device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() // 2
