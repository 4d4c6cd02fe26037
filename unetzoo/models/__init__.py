"""Assemblers and the registered, named architectures."""

from . import zoo as _zoo  # noqa: F401  (registers the named architectures)
from .base import ModelArgumentError, SegmentationModel, mask_logits
from .factory import (
    MODELS,
    ModelSpec,
    Preprocessing,
    create_model,
    list_models,
    model_spec,
    preprocessing_of,
    register_model,
)
from .unet import UNet
from .unetpp import UNetPlusPlus

__all__ = [
    "MODELS",
    "ModelArgumentError",
    "ModelSpec",
    "Preprocessing",
    "SegmentationModel",
    "UNet",
    "UNetPlusPlus",
    "create_model",
    "list_models",
    "mask_logits",
    "model_spec",
    "preprocessing_of",
    "register_model",
]
