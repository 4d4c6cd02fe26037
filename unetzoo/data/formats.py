"""Dataset formats: paired folders, pattern pairs with a region of interest, per-class folders,
contour text files, NIfTI / TIFF volumes (MSD layout too) and slice folders (LabelMe JSON: see
:mod:`unetzoo.data.labelme`)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .base import Item, Problem, Sample, SegmentationDataset, natural_key
from .io import (
    DataError,
    is_image,
    is_volume,
    mask_from_array,
    read_image,
    read_mask,
    read_slices,
    read_volume,
    remap_labels,
    stem,
)

IMAGE_DIRS = ("images", "image", "imgs", "img", "inputs")
MASK_DIRS = ("masks", "labels", "label", "1st_manual", "manual", "gt", "groundtruth", "annotations", "mask")
ROI_DIRS = ("mask", "roi", "fov")


def _files(folder: Path, volumes: bool = False) -> list[Path]:
    accept = is_volume if volumes else (lambda p: is_image(p) or p.suffix.lower() in (".tif", ".tiff"))
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and accept(p)), key=lambda p: natural_key(p.name)
    )


def _key(name: str, pattern: str | None) -> str:
    if pattern is None:
        return name
    m = re.search(pattern, name)
    return m.group(1) if m else name


def _pair(images: list[Path], masks: list[Path], key: str | None) -> tuple[dict[str, Path], str | None]:
    """Pair by stem; when no stem matches, by the leading token of the name.

    (``21_training`` ↔ ``21_manual1``, as in DRIVE.)
    """
    for pattern in (key, r"^([A-Za-z0-9]+)") if key is None else (key,):
        by_key = {_key(stem(m), pattern): m for m in masks}
        if any(_key(stem(i), pattern) in by_key for i in images):
            return by_key, pattern
    return {}, key


class PairedFolders(SegmentationDataset):
    """``images/`` and ``masks/`` (or ``labels/``, ``1st_manual/``, …) paired by file name.

    Args:
        mask_mode: ``binary`` (any encoding), ``index`` (values are class ids) or ``rgb``
            (``colors`` maps ``(r, g, b)`` to a class id).
        key: a regex whose first group pairs names that differ (DRIVE: ``^(\\d+)_`` pairs
            ``21_training.tif`` with ``21_manual1.gif``); found automatically when stems differ.
        roi: a folder of region-of-interest masks, paired the same way (DRIVE's ``mask/``).
        class_names: the class table (index = class id); binary masks default to
            ``["background", "foreground"]``.
        Masks in one sub-folder per class (``masks/<class>/<name>``, SUIM style) are read as
        binary masks and merged into class ids, in ``class_names`` order (else sorted).
    """

    format = "paired"

    def __init__(
        self,
        root: str | Path,
        images: str = "images",
        masks: str = "masks",
        *,
        mask_mode: str = "binary",
        threshold: int = 128,
        colors: Mapping[tuple[int, int, int], int] | None = None,
        values: Mapping[int, int] | None = None,
        class_names: Sequence[str] | None = None,
        key: str | None = None,
        roi: str | None = None,
        allow_unlabeled: bool = False,
        strict: bool = True,
    ) -> None:
        root = Path(root)
        self.opts = dict(mode=mask_mode, threshold=threshold, colors=colors, values=values)
        image_dir, mask_dir = root / images, root / masks
        for folder in (image_dir, mask_dir):
            if not folder.is_dir():
                raise DataError(f"{folder}: folder does not exist")
        class_dirs = sorted(d for d in mask_dir.iterdir() if d.is_dir())
        self.class_dirs: list[Path] = []
        if class_dirs:  # one binary folder per class
            names = list(class_names or ["background", *[d.name for d in class_dirs]])
            by_name = {d.name: d for d in class_dirs}
            missing = [n for n in names[1:] if n not in by_name]
            if missing:
                raise DataError(f"{mask_dir}: no folder for classes {missing}")
            self.class_dirs = [by_name[n] for n in names[1:]]
            class_names = names
        elif class_names is None and mask_mode == "binary":
            class_names = ["background", "foreground"]
        elif class_names is None and colors:
            class_names = [f"class_{i}" for i in range(max(colors.values()) + 1)]
        image_files = _files(image_dir)
        mask_files = [p for d in self.class_dirs[:1] for p in _files(d)] or _files(mask_dir)
        by_key, self.key = _pair(image_files, mask_files, key)
        roi_by_key = {}
        if roi is not None:
            roi_by_key = {_key(stem(p), self.key): p for p in _files(root / roi)}
        items, problems = [], []
        for image in image_files:
            k = _key(stem(image), self.key)
            mask = by_key.get(k)
            if mask is None and not allow_unlabeled:
                problems.append(Problem(stem(image), str(image), f"image without a mask in {mask_dir}"))
                continue
            files: dict[str, Any] = {"image": image, "mask": mask}
            if roi is not None:
                files["roi"] = roi_by_key.get(k)
                if files["roi"] is None:
                    problems.append(
                        Problem(
                            stem(image), str(image), f"image without a region of interest in {root / roi}"
                        )
                    )
                    continue
            items.append(Item(k if self.key else stem(image), files))
        if not image_files:
            problems.append(Problem("", str(image_dir), "empty folder: no images"))
        super().__init__(root, items, class_names=class_names, problems=problems, strict=strict)

    def read(self, item: Item) -> Sample:
        files = item.files
        image = read_image(files["image"])
        mask = None
        if self.class_dirs:
            mask = self._merge_class_masks(files["mask"].name, image.shape[:2])
        elif files["mask"] is not None:
            mask = read_mask(files["mask"], **self.opts)
        roi = read_mask(files["roi"]) > 0 if files.get("roi") else None
        meta = {
            "image_path": str(files["image"]),
            "mask_path": str(files["mask"]),
            "roi_path": str(files.get("roi")),
        }
        return Sample(item.id, image, mask, roi, meta)

    def _merge_class_masks(self, name: str, shape: tuple[int, int]) -> np.ndarray:
        mask = np.zeros(shape, dtype=np.uint8)
        for cls, folder in enumerate(self.class_dirs, start=1):
            matches = [p for p in folder.iterdir() if stem(p) == Path(name).stem]
            if not matches:
                raise DataError(f"{folder / name}: class mask missing")
            layer = read_mask(matches[0], threshold=self.opts["threshold"])
            if layer.shape != shape:
                raise DataError(f"{matches[0]}: mask size {layer.shape} differs from its image ({shape})")
            mask[layer > 0] = cls
        return mask


def read_contour(path: str | Path) -> np.ndarray:
    """Points of a contour text file (one ``x y`` pair a line) as an ``N×2`` float array."""
    path = Path(path)
    try:
        points = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except Exception as exc:
        raise DataError(f"{path}: not a contour file of 'x y' lines ({exc})") from exc
    if points.shape[1] != 2 or len(points) < 3:
        raise DataError(f"{path}: a contour needs at least 3 'x y' points, got shape {points.shape}")
    return points


def fill_contours(shape: tuple[int, int], contours: Sequence[tuple[np.ndarray, int]]) -> np.ndarray:
    """A class-id mask with each ``(points, class_id)`` polygon filled in order."""
    import cv2

    mask = np.zeros(shape, dtype=np.uint8)
    for points, cls in contours:
        cv2.fillPoly(mask, [np.round(points).astype(np.int32)], int(cls))
    return mask


class Contours(SegmentationDataset):
    """Images with contour text files, filled into polygon masks (PAPILA-style expert contours).

    Contours of image ``X`` are found in ``contours/`` by ``pattern`` (default
    ``"{stem}_{cls}*.txt"``) for each class in ``classes``; class ids follow their order and
    later classes are drawn over earlier ones (a cup inside its disc).
    """

    format = "contours"

    def __init__(
        self,
        root: str | Path,
        classes: Sequence[str] = ("disc", "cup"),
        *,
        images: str = "images",
        contours: str = "contours",
        pattern: str = "{stem}_{cls}*.txt",
        strict: bool = True,
    ) -> None:
        root = Path(root)
        self.classes = list(classes)
        image_files = _files(root / images) if (root / images).is_dir() else []
        items, problems = [], []
        for image in image_files:
            found = {}
            for cls in self.classes:
                hits = sorted((root / contours).glob(pattern.format(stem=stem(image), cls=cls)))
                if hits:
                    found[cls] = hits[0]
            if not found:
                problems.append(
                    Problem(stem(image), str(image), f"image without contours in {root / contours}")
                )
                continue
            items.append(Item(stem(image), {"image": image, **found}))
        if not image_files:
            problems.append(Problem("", str(root / images), "empty or missing folder: no images"))
        super().__init__(
            root, items, class_names=["background", *self.classes], problems=problems, strict=strict
        )

    def read(self, item: Item) -> Sample:
        image = read_image(item.files["image"])
        polygons = [
            (read_contour(item.files[c]), i) for i, c in enumerate(self.classes, start=1) if c in item.files
        ]
        mask = fill_contours(image.shape[:2], polygons)
        meta = {
            "image_path": str(item.files["image"]),
            "mask_path": str(item.files[next(iter(self.classes))]),
        }
        return Sample(item.id, image, mask, None, meta)


class Volumes(SegmentationDataset):
    """3D images with label volumes: NIfTI (``.nii``/``.nii.gz``) or multi-page TIFF stacks.

    Pairs come from an MSD ``dataset.json`` (``training`` list, ``labels`` table), from
    ``imagesTr/`` + ``labelsTr/``, from paired folders, or are given as ``pairs``.
    ``values`` maps label values to class ids (all others become background), e.g. the AAL
    atlas' 37 and 38 to left and right hippocampus. A label whose shape or affine differs
    from its image is an error. Samples keep ``affine`` and ``spacing`` in ``meta``.
    """

    format = "volumes"
    spatial_dims = 3

    def __init__(
        self,
        root: str | Path,
        pairs: Sequence[tuple[str, str]] | None = None,
        *,
        images: str | None = None,
        labels: str | None = None,
        values: Mapping[int, int] | None = None,
        class_names: Sequence[str] | None = None,
        strict: bool = True,
    ) -> None:
        root = Path(root)
        self.values = {int(k): int(v) for k, v in values.items()} if values else None
        problems: list[Problem] = []
        if pairs is None and (root / "dataset.json").is_file():
            meta = json.loads((root / "dataset.json").read_text())
            pairs = [(t["image"], t["label"]) for t in meta.get("training", [])]
            if class_names is None and "labels" in meta:
                table = {int(k): v for k, v in meta["labels"].items()}
                class_names = [table.get(i, f"class_{i}") for i in range(max(table) + 1)]
        if pairs is None:
            images = images or next((d for d in ("imagesTr", *IMAGE_DIRS) if (root / d).is_dir()), "imagesTr")
            labels = labels or next((d for d in ("labelsTr", *MASK_DIRS) if (root / d).is_dir()), "labelsTr")
            vols = [p for p in _all(root / images) if is_volume(p) or p.suffix.lower() in (".tif", ".tiff")]
            lab = {stem(p): p for p in _all(root / labels)}
            pairs = []
            for v in vols:  # paths relative to root, as a dataset.json gives them
                if stem(v) in lab:
                    pairs.append((str(v.relative_to(root)), str(lab[stem(v)].relative_to(root))))
                else:
                    problems.append(Problem(stem(v), str(v), f"volume without a label in {root / labels}"))
        items = []
        for image, label in pairs:
            ip, lp = (root / image).resolve(), (root / label).resolve()
            missing = [p for p in (ip, lp) if not p.exists()]
            if missing:
                problems.append(Problem(stem(ip), str(missing[0]), "file does not exist"))
                continue
            items.append(Item(stem(ip), {"image": ip, "label": lp}))
        if class_names is None and self.values:
            class_names = ["background"] + [f"class_{i}" for i in range(1, max(self.values.values()) + 1)]
        super().__init__(root, items, class_names=class_names, problems=problems, strict=strict)

    def read(self, item: Item) -> Sample:
        image, affine, spacing = read_volume(item.files["image"])
        label, label_affine, _ = read_volume(item.files["label"])
        lp = item.files["label"]
        if label.shape[:3] != image.shape[:3]:
            raise DataError(f"{lp}: label shape {label.shape} differs from its image {item.files['image']} "
                            f"({image.shape})")  # fmt: skip
        if not np.allclose(label_affine, affine, atol=1e-3):
            raise DataError(f"{lp}: label affine differs from its image's ({item.files['image']}); "
                            "resample the label onto the image grid first")  # fmt: skip
        ids = np.asarray(label).astype(np.int64)
        mask = remap_labels(ids, self.values, lp) if self.values else ids.astype(np.uint8)
        if image.ndim == 3:
            image = image[..., None]
        meta = {
            "image_path": str(item.files["image"]),
            "mask_path": str(lp),
            "affine": affine,
            "spacing": spacing,
        }
        return Sample(item.id, image, mask, None, meta)


def _all(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_file()), key=lambda p: natural_key(p.name))


class SliceStack(SegmentationDataset):
    """A folder of 2D slices (and one of label slices) read as ONE volume, slices in natural order.

    ISBI 2012's 30 training slices become a 30×512×512 volume.
    """

    format = "slices"
    spatial_dims = 3

    def __init__(
        self,
        root: str | Path,
        images: str = "image",
        labels: str = "label",
        *,
        mask_mode: str = "binary",
        class_names: Sequence[str] | None = None,
        strict: bool = True,
    ) -> None:
        root = Path(root)
        self.mask_mode = mask_mode
        image_files = _files(root / images) if (root / images).is_dir() else []
        label_files = _files(root / labels) if (root / labels).is_dir() else []
        problems = []
        if [p.name for p in image_files] != [p.name for p in label_files]:
            problems.append(
                Problem(
                    root.name, str(root / labels), "label slices do not match the image slices one to one"
                )
            )
        if not image_files:
            problems.append(Problem("", str(root / images), "empty or missing folder: no slices"))
        items = [Item(root.name, {"images": image_files, "labels": label_files})] if not problems else []
        names = class_names or (["background", "foreground"] if mask_mode == "binary" else None)
        super().__init__(root, items, class_names=names, problems=problems, strict=strict)

    def read(self, item: Item) -> Sample:
        image = read_slices(item.files["images"])
        label = read_slices(item.files["labels"])
        mask = np.stack(
            [
                mask_from_array(s, p, mode=self.mask_mode)
                for s, p in zip(label, item.files["labels"], strict=True)
            ]
        )
        meta = {
            "image_path": str(self.root),
            "mask_path": str(item.files["labels"][0].parent),
            "affine": np.eye(4),
            "spacing": (1.0, 1.0, 1.0),
        }
        return Sample(item.id, image, mask, None, meta)
