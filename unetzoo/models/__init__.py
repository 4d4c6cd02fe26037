"""Assemblers and the registered, named architectures."""

from . import zoo as _zoo  # noqa: F401  (registers the named architectures)
from .base import SegmentationModel, mask_logits
from .factory import MODELS, ModelSpec, create_model, list_models, model_spec, register_model
from .unet import UNet
from .unetpp import UNetPlusPlus

__all__ = [
    "MODELS",
    "ModelSpec",
    "SegmentationModel",
    "UNet",
    "UNetPlusPlus",
    "create_model",
    "list_models",
    "mask_logits",
    "model_spec",
    "register_model",
]
