"""``open_dataset``: a format by name (built-in or plugin), or detected from the layout."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..registry import Registry
from .base import SPLIT_NAMES, ConcatSplits, SegmentationDataset
from .formats import IMAGE_DIRS, MASK_DIRS, ROI_DIRS, Contours, PairedFolders, SliceStack, Volumes
from .io import DataError, is_volume
from .labelme import LabelMe

DATASETS = Registry("dataset", group="unetzoo.datasets", listing="unetzoo.list_datasets()")
for _cls in (PairedFolders, LabelMe, Contours, Volumes, SliceStack):
    DATASETS.add(_cls.format, _cls)


def list_datasets(pattern: str = "*") -> list[str]:
    """Dataset format names (built-in and plugins) matching ``pattern``."""
    return DATASETS.names(pattern)


def open_dataset(path: str | os.PathLike, format: str | None = None, **options: Any) -> SegmentationDataset:
    """Open a segmentation dataset; each item is a :class:`Sample` (image, mask, id).

    ``format`` names a registered format (``paired``, ``labelme``, ``contours``, ``volumes``,
    ``slices`` or a plugin's); without it the layout decides. Split folders (``train/``,
    ``val/``, ``test/`` and the like) are opened one by one and joined, ids prefixed with the
    folder, and ``given_split`` records each sample's split. ``options`` go to the format.
    ``"demo"`` opens the built-in generated dataset of textured shapes.
    """
    root = resolve_data_path(path)
    if not root.exists():
        raise DataError(f"{root}: dataset path does not exist")
    if format is not None:
        return DATASETS.get(format)(root, **options)
    return detect_format(root, options)


def resolve_data_path(data: str | os.PathLike) -> Path:
    """A dataset path; ``demo`` / ``demo:<name>`` (when no such folder exists) is a built-in generated
    dataset, made once into a cache folder (see :mod:`unetzoo.data.demo`)."""
    text = os.fspath(data)
    if (text == "demo" or text.startswith("demo:")) and not Path(text).exists():
        from .demo import DEMO_DATASETS, demo_dataset

        name = text.partition(":")[2] or DEMO_DATASETS[0]
        if name not in DEMO_DATASETS:
            raise DataError(f"{text}: no such demo dataset; choose one of {', '.join(DEMO_DATASETS)}")
        return demo_dataset(name)
    return Path(text)


def detect_format(root: Path, options: dict[str, Any]) -> SegmentationDataset:
    """The dataset at ``root``, its format read from the layout."""
    for entry in DATASETS:  # plugin formats that can recognise their own layout go first
        detect = getattr(entry.obj, "detect", None)
        if entry.source != "unetzoo" and callable(detect) and detect(root):
            return entry.obj(root, **options)
    if not root.is_dir():
        raise DataError(f"{root}: a dataset is a folder; pass format= for anything else")
    subdirs = {p.name: p for p in root.iterdir() if p.is_dir()}
    if (root / "dataset.json").is_file() or "imagesTr" in subdirs:
        return Volumes(root, **options)
    splits = {name: p for name, p in subdirs.items() if name.lower() in SPLIT_NAMES}
    if splits and not any(d in subdirs for d in IMAGE_DIRS):
        return ConcatSplits(root, {name: detect_format(p, options) for name, p in sorted(splits.items())})
    images = next((d for d in IMAGE_DIRS if d in subdirs), None)
    masks = next((d for d in MASK_DIRS if d in subdirs and d != images), None)
    if images and masks:
        if any(is_volume(p) for p in subdirs[images].iterdir()):
            return Volumes(root, images=images, labels=masks, **options)
        roi = next((d for d in ROI_DIRS if d in subdirs and d != masks), None)
        opts = {"roi": roi, **options} if roi else options
        return PairedFolders(root, images, masks, **opts)
    if images and "contours" in subdirs:
        return Contours(root, images=images, **options)
    if any(root.glob("*.json")):
        return LabelMe(root, **options)
    found = ", ".join(sorted(subdirs)) or "no sub-folders"
    raise DataError(
        f"{root}: cannot tell the dataset format from the layout (found {found}); expected "
        f"images/ with masks/ (or labels/, 1st_manual/), split folders, LabelMe JSON files, "
        f"an MSD dataset.json, or pass format= one of {', '.join(list_datasets())}"
    )
