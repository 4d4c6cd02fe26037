"""``open_dataset``: a format by name (built-in or plugin), or detected from the layout."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..registry import BUILTIN, Registry, call_mismatch, one_line
from .base import SPLIT_NAMES, ConcatSplits, SegmentationDataset
from .formats import IMAGE_DIRS, MASK_DIRS, ROI_DIRS, Contours, PairedFolders, SliceStack, Volumes
from .io import DataError, is_image, is_volume
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


def is_labelme_project(root: Path, depth: int = 2) -> bool:
    """Whether LabelMe JSON files (objects with a ``shapes`` list) sit in ``root`` or in its
    sub-folders down to ``depth`` levels (``project/annotations/*.json`` beside ``project/images/``).

    The first JSON file of each folder decides for that folder; hidden folders are skipped.
    """
    first = min((p for p in root.glob("*.json") if not p.name.startswith(".")), default=None)
    if first is not None:
        try:
            doc = json.loads(first.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("shapes"), list):
            return True
    if depth == 0:
        return False
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return any(is_labelme_project(folder, depth - 1) for folder in folders)


def _holds_images(folder: Path) -> bool:
    """Whether ``folder`` or one of its sub-folders (one per class) holds image files."""
    return any(
        is_image(p) or (p.is_dir() and any(is_image(q) for q in p.iterdir())) for p in folder.iterdir()
    )


def detect_format(root: Path, options: dict[str, Any]) -> SegmentationDataset:
    """The dataset at ``root``, its format read from the layout."""
    for entry in DATASETS:  # plugin formats that can recognise their own layout go first
        detect = getattr(entry.obj, "detect", None)
        if entry.source == BUILTIN or not callable(detect):
            continue
        try:
            found = detect(root)
        except Exception as exc:  # a plugin's broken detect() must not stop detection
            DATASETS.fail(
                entry.name, f"detect({str(root)!r}) raised {one_line(exc)}; detection went on without it"
            )
            continue
        if not found:
            continue
        refused = call_mismatch(entry.obj, root, **options)  # e.g. a class without strict=, for check-data
        if not refused:
            return entry.obj(root, **options)
        DATASETS.fail(entry.name, f"it recognises {root} but cannot open it: {refused}; "
                                  "detection went on without it")  # fmt: skip
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
    if not (masks and _holds_images(subdirs[masks])) and is_labelme_project(root):
        return LabelMe(root, **options)
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
