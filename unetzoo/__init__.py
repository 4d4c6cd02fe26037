"""unetzoo: U-Net variants for 2D and 3D semantic segmentation, reachable by name."""

from .models import (
    SegmentationModel,
    UNet,
    UNetPlusPlus,
    create_model,
    list_models,
    register_model,
)
from .registry import UnknownNameError

__version__ = "0.1.0"

__all__ = [
    "SegmentationModel",
    "UNet",
    "UNetPlusPlus",
    "UnknownNameError",
    "__version__",
    "create_model",
    "list_models",
    "register_model",
]
