"""Checkpoints of github.com/LeeJunHyun/Image_Segmentation (``network.py``) as unetzoo models.

That repository's ``U_Net``, ``AttU_Net``, ``R2U_Net`` and ``R2AttU_Net`` are the same
networks as unetzoo's ``unet``, ``attn_unet``, ``r2unet`` and ``attn_r2unet``; only the
parameter names differ. :func:`load_ljh` renames them and loads them strictly.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from torch import Tensor, nn

from ..checkpoint import read_weights, unwrap_state_dict
from ..models import create_model

LJH_ARCHS = {"U_Net": "unet", "AttU_Net": "attn_unet", "R2U_Net": "r2unet", "R2AttU_Net": "attn_r2unet"}

# Module prefixes, level k = 1 (shallowest) … 5 (bottleneck); decoder stage index is 5 - k.
_PREFIXES = [
    (re.compile(r"^(?:Conv|RRCNN)([1-4])\.(.*)$"), lambda k: f"encoder.stages.{k - 1}.0"),
    (re.compile(r"^(?:Conv|RRCNN)(5)\.(.*)$"), lambda k: "bottleneck"),
    (re.compile(r"^(?:Up_conv|Up_RRCNN)([2-5])\.(.*)$"), lambda k: f"decoder.{5 - k}.block"),
    (re.compile(r"^Up([2-5])\.up\.(.*)$"), lambda k: f"decoder.{5 - k}.up.conv"),
    (re.compile(r"^Att([2-5])\.(.*)$"), lambda k: f"decoder.{5 - k}.gate"),
]
# Names inside a module (reference on the left).
_INNER = [
    (re.compile(r"^conv\.0\.(.*)"), r"0.conv.\1"),  # double conv, first conv
    (re.compile(r"^conv\.1\.(.*)"), r"0.norm.\1"),
    (re.compile(r"^conv\.3\.(.*)"), r"1.conv.\1"),
    (re.compile(r"^conv\.4\.(.*)"), r"1.norm.\1"),
    (re.compile(r"^1\.(.*)"), r"conv.\1"),  # up_conv: Upsample, Conv, BN, ReLU
    (re.compile(r"^2\.(.*)"), r"norm.\1"),
    (re.compile(r"^(W_g|W_x|psi)\.0\.(.*)"), lambda m: f"{m[1].lower()}.conv.{m[2]}"),
    (re.compile(r"^(W_g|W_x|psi)\.1\.(.*)"), lambda m: f"{m[1].lower()}.norm.{m[2]}"),
    (re.compile(r"^Conv_1x1\.(.*)"), r"project.\1"),  # RRCNN_block
    (re.compile(r"^RCNN\.([01])\.conv\.0\.(.*)"), r"rcnn.\1.unit.conv.\2"),
    (re.compile(r"^RCNN\.([01])\.conv\.1\.(.*)"), r"rcnn.\1.unit.norm.\2"),
]


def _rename(key: str) -> str:
    if key.startswith("Conv_1x1."):
        return "head." + key[len("Conv_1x1.") :]
    for pattern, prefix in _PREFIXES:
        m = pattern.match(key)
        if m:
            inner = m[2]
            for ipat, repl in _INNER:
                if ipat.match(inner):
                    return f"{prefix(int(m[1]))}.{ipat.sub(repl, inner)}"
    raise KeyError(f"parameter {key!r} is not part of a LeeJunHyun/Image_Segmentation network")


def ljh_to_unetzoo(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename a reference state dict's keys to unetzoo's (values are shared, not copied)."""
    return {_rename(k): v for k, v in state_dict.items()}


def _read_checkpoint(checkpoint: str | os.PathLike | Mapping[str, Tensor]) -> dict[str, Tensor]:
    if isinstance(checkpoint, Mapping):
        return unwrap_state_dict(checkpoint, "checkpoint")
    try:
        return read_weights(checkpoint)
    except ValueError as exc:
        raise ValueError(f"cannot read checkpoint {os.fspath(checkpoint)!r}: {exc}") from exc


def load_ljh(checkpoint: str | os.PathLike | Mapping[str, Tensor], arch: str, t: int = 2) -> nn.Module:
    """Build the unetzoo equivalent of a reference network and load its weights.

    Args:
        checkpoint: a ``.pth``/``.pt`` path (read with ``weights_only=True``; a
            ``{"state_dict": ...}`` or ``{"model": ...}`` wrapper and ``module.`` prefixes
            are removed) or a state dict.
        arch: ``U_Net``, ``AttU_Net``, ``R2U_Net`` or ``R2AttU_Net`` (or the unetzoo name).
        t: recurrences of the R2 networks, as the reference's ``t``.

    Returns:
        the unetzoo model (``in_channels`` and ``classes`` read from the weights), in eval mode.
    """
    name = LJH_ARCHS.get(arch, arch)
    if name not in LJH_ARCHS.values():
        raise ValueError(f"arch must be one of {', '.join(LJH_ARCHS)}, got {arch!r}")
    sd = ljh_to_unetzoo(_read_checkpoint(checkpoint))
    first = "encoder.stages.0.0.project.weight" if "r2" in name else "encoder.stages.0.0.0.conv.weight"
    if first not in sd or "head.weight" not in sd:
        raise ValueError(
            f"checkpoint does not look like a reference {arch}: {first!r} or the head is missing"
        )
    overrides = dict(in_channels=sd[first].shape[1], classes=sd["head.weight"].shape[0])
    if "r2" in name:
        overrides["t"] = t
    model = create_model(name, **overrides)
    result = model.load_state_dict(sd, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"checkpoint does not match {arch}: missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )
    return model.eval()
