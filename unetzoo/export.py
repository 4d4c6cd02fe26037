"""Export a model to ONNX, a ``torch.export`` program (``.pt2``) or TorchScript.

Exports run the network in eval mode (deep supervision off, dropout off). Spatial sizes
must be multiples of the model's ``output_stride``: an exported graph keeps the network's
padded core only, so it does not pad odd sizes itself (pad the input to a multiple first and
crop the logits back). The ONNX file records this multiple, the preprocessing and the class
names in its ``metadata_props``.

ONNX goes through the TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``):
it needs no ``onnxscript``, exports every zoo model in well under a second, and gives
batch and spatial axes that stay dynamic.
"""

from __future__ import annotations

import io
import json
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from .checkpoint import atomic_write

FORMATS = ("onnx", "exported", "torchscript")


class ExportError(ValueError):
    """A model could not be exported in the asked format; the message says why in one line."""


def export(
    model: nn.Module,
    out: str | os.PathLike,
    *,
    format: Literal["onnx", "exported", "torchscript"] = "onnx",
    size: Sequence[int] | None = None,
    opset: int = 17,
    dynamic: bool = True,
) -> Path:
    """Write ``model`` to ``out`` and return the path.

    Args:
        format: ``"onnx"`` (input ``image``, outputs ``logits`` and, for a model with an
            auxiliary classifier, ``class_logits``), ``"exported"`` (a ``torch.export``
            program saved with :func:`torch.export.save`) or ``"torchscript"``
            (:func:`torch.jit.script`).
        size: spatial size of the example input, each a multiple of the model's
            ``output_stride`` (default: twice the stride in every dim).
        opset: ONNX opset, at least 17.
        dynamic: keep batch and spatial sizes free (else they are fixed at ``size``, batch 1).

    The file is written atomically. Raises :class:`ExportError` when the exporter fails,
    naming the unsupported operator when it can.
    """
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    if opset < 17:
        raise ExportError(f"opset {opset} is too old; use 17 or newer")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        if format == "torchscript":
            _export_torchscript(model, out)
        else:
            example = example_input(model, size)
            if format == "onnx":
                _export_onnx(model, out, example, opset, dynamic)
            else:
                _export_program(model, out, example, dynamic)
    finally:
        model.train(was_training)
    return out


def example_input(model: nn.Module, size: Sequence[int] | None = None, batch: int = 1) -> Tensor:
    """A random input of ``size`` (default: twice the stride per dim), checked against the stride."""
    stride = int(getattr(model, "output_stride", 1) or 1)
    dims = int(getattr(model, "spatial_dims", 2))
    size = tuple(size) if size is not None else (2 * stride,) * dims
    if len(size) != dims:
        raise ExportError(f"size {size} has {len(size)} dims; the model is {dims}D")
    if any(s <= 0 or s % stride for s in size):
        raise ExportError(
            f"size {size}: every dim must be a positive multiple of the model's stride {stride}"
        )
    return torch.randn(batch, int(getattr(model, "in_channels", 3)), *size)


def metadata(model: nn.Module) -> dict[str, str]:
    """The string key/values written into an ONNX file's ``metadata_props``."""
    from ._version import __version__
    from .models.saving import default_preprocessing

    config = dict(getattr(model, "config", {}) or {})
    info = getattr(model, "pretrained_info", {}) or {}
    stride = int(getattr(model, "output_stride", 1) or 1)
    return {
        "architecture": str(config.get("architecture", type(model).__name__)),
        "unetzoo_version": __version__,
        "spatial_dims": str(getattr(model, "spatial_dims", config.get("spatial_dims", 2))),
        "in_channels": str(getattr(model, "in_channels", config.get("in_channels", 3))),
        "classes": str(config.get("classes", "")),
        "output_stride": str(stride),
        "input_multiple": str(stride),
        "preprocessing": json.dumps(info.get("preprocessing") or default_preprocessing(model)),
        "class_names": json.dumps(info.get("class_names")),
        "config": json.dumps(config, default=str),
    }


def output_names(model: nn.Module, example: Tensor) -> list[str]:
    """``["logits"]``, or ``["logits", "class_logits"]`` for a model returning ``(masks, class_logits)``."""
    with torch.no_grad():
        out = model(example)
    if isinstance(out, Tensor):
        return ["logits"]
    if len(out) == 2 and out[1].dim() == 2:
        return ["logits", "class_logits"]
    return [f"logits_{i}" for i in range(len(out))]


def _export_onnx(model: nn.Module, out: Path, example: Tensor, opset: int, dynamic: bool) -> None:
    import onnx

    names = output_names(model, example)
    axes: dict[str, dict[int, str]] | None = None
    if dynamic:
        spatial = {2 + i: n for i, n in enumerate(("depth", "height", "width")[-(example.dim() - 2) :])}
        axes = {"image": {0: "batch", **spatial}}
        for name in names:
            axes[name] = {0: "batch"} if name == "class_logits" else {0: "batch", **spatial}
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer and legacy-exporter warnings
            torch.onnx.export(
                model,
                (example,),
                buffer,
                dynamo=False,
                input_names=["image"],
                output_names=names,
                dynamic_axes=axes,
                opset_version=opset,
                do_constant_folding=True,
            )
    except Exception as err:
        raise ExportError(_onnx_reason(model, err)) from err
    proto = onnx.load_from_string(buffer.getvalue())
    for key, value in metadata(model).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    atomic_write(out, lambda tmp: onnx.save(proto, tmp), suffix=out.suffix)


def _onnx_reason(model: nn.Module, err: Exception) -> str:
    message = str(err)
    found = re.search(r"'?(aten::\w+|prim::\w+|\w+::\w+)'?", message)
    what = f"operator {found.group(1)} " if found else ""
    return f"ONNX export of {type(model).__name__} failed: {what}({_first_line(message)})"


def _export_program(model: nn.Module, out: Path, example: Tensor, dynamic: bool) -> None:
    from torch.export import Dim

    program = None
    if dynamic:
        stride = int(getattr(model, "output_stride", 1) or 1)
        # Batch 2: an example batch of 1 would be specialised to the constant 1.
        example = example.expand(2, *example.shape[1:]).contiguous()
        axes = ("d", "h", "w")[-(example.dim() - 2) :]
        shapes = {0: Dim("batch", min=1, max=4096)}
        shapes.update({2 + i: stride * Dim(a, min=1, max=4096) for i, a in enumerate(axes)})
        try:
            program = torch.export.export(model, (example,), dynamic_shapes=(shapes,))
        except Exception as err:
            warnings.warn(
                f"dynamic torch.export failed ({_first_line(str(err))}); exporting static at "
                f"{tuple(example.shape[2:])}, batch 1",
                stacklevel=3,
            )
            example = example[:1]
    if program is None:
        try:
            program = torch.export.export(model, (example,))
        except Exception as err:
            raise ExportError(
                f"torch.export of {type(model).__name__} failed: {_first_line(str(err))}"
            ) from err
    atomic_write(out, lambda tmp: torch.export.save(program, tmp), suffix=".pt2")


def _export_torchscript(model: nn.Module, out: Path) -> None:
    try:
        scripted = _script(model)
    except Exception as err:
        where = _unscriptable(model) or type(model).__name__
        raise ExportError(f"torch.jit.script failed in {where}: {_first_line(str(err))}") from err
    atomic_write(out, lambda tmp: torch.jit.save(scripted, tmp), suffix=out.suffix)


def _script(module: nn.Module) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.script(module)


def _unscriptable(module: nn.Module, prefix: str = "") -> str:
    """The deepest submodule (``name (Class)``) that fails to script on its own; ``""`` if none does."""
    for name, child in module.named_children():
        try:
            _script(child)
        except Exception:
            path = f"{prefix}{name}"
            return _unscriptable(child, f"{path}.") or f"{path} ({type(child).__name__})"
    if prefix:
        return ""
    return f"{type(module).__name__}.forward"


def _first_line(message: str) -> str:
    """The first non-empty line of an exporter message, with its source location when given."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if not lines:
        return "no message"
    where = next((line for line in lines[1:] if line.startswith("File ")), "")
    return f"{lines[0]} {where}".strip()
