"""Datasets, splits and augmentation presets."""

from .base import Item, Problem, Sample, SegmentationDataset
from .formats import Contours, PairedFolders, SliceStack, Volumes, fill_contours, read_contour
from .io import DataError, read_image, read_mask, read_volume, write_volume
from .labelme import LabelMe
from .registry import DATASETS, list_datasets, open_dataset
from .torch_dataset import TorchDataset, pad_collate

__all__ = [
    "DATASETS",
    "Contours",
    "DataError",
    "Item",
    "LabelMe",
    "PairedFolders",
    "Problem",
    "Sample",
    "SegmentationDataset",
    "SliceStack",
    "TorchDataset",
    "Volumes",
    "fill_contours",
    "list_datasets",
    "open_dataset",
    "pad_collate",
    "read_contour",
    "read_image",
    "read_mask",
    "read_volume",
    "write_volume",
]
