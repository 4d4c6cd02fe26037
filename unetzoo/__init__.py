"""unetzoo: U-Net variants for 2D and 3D semantic segmentation, reachable by name."""

from ._version import __version__
from .data import list_datasets, open_dataset
from .export import export  # the function: ``unetzoo.export(model, "model.onnx")``
from .hub import create_model, from_pretrained, push_to_hub, save_pretrained
from .losses import create_loss, list_losses
from .models import (
    SegmentationModel,
    UNet,
    UNetPlusPlus,
    list_models,
    register_model,
)
from .registry import UnknownNameError
from .weight_tags import PretrainedWeights, list_pretrained

__all__ = [
    "PretrainedWeights",
    "SegmentationModel",
    "UNet",
    "UNetPlusPlus",
    "UnknownNameError",
    "__version__",
    "create_loss",
    "create_model",
    "export",
    "from_pretrained",
    "list_datasets",
    "list_losses",
    "list_models",
    "list_pretrained",
    "open_dataset",
    "push_to_hub",
    "register_model",
    "save_pretrained",
]
