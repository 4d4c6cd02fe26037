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
from .encoding import SUIM_CODES, MaskEncoding, colour_table, decide_mask_encoding
from .io import (
    DataError,
    inside,
    is_image,
    is_volume,
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
        mask_mode: ``auto`` (default: decided from up to 16 masks spread over the dataset, see
            :func:`~unetzoo.data.encoding.decide_mask_encoding`; ``mask_encoding`` says what was
            chosen), or ``binary`` (two levels at any bit depth, or JPEG-noisy), ``index`` (values
            are class ids) or ``rgb`` (colour-coded).
        threshold: binary masks with more than two values (JPEG noise): foreground where the
            value is at least this, on a 0–255 scale.
        colors: the colour → class id table of colour masks: ``{(r, g, b): id}``, ``{"#rrggbb": id}``,
            ``{"r,g,b": id}`` (the JSON forms of ``-o colors=...``), or a preset name (``"suim"``,
            which brings its class names). Without it, colour masks get a table built from the
            colours of the sampled masks (black first), with a warning that shows it.
        color_tolerance: colour masks: a pixel takes the class of the nearest table colour whose
            every channel is within this distance (JPEG-saved or noisy masks); farther pixels
            are an error naming the file, the colours and their counts.
        values: index masks: label value → class id; non-zero values left out are read as
            background, with a warning that says how much of the mask they cover.
        key: a regex whose first group pairs names that differ (DRIVE: ``^(\\d+)_`` pairs
            ``21_training.tif`` with ``21_manual1.gif``); found automatically when stems differ.
        roi: a folder of region-of-interest masks, paired the same way (DRIVE's ``mask/``).
        class_names: the class table (index = class id); the default follows the encoding
            (binary: ``["background", "foreground"]``, index: ``class_0`` … up to the highest
            id sampled, colour: the preset's names or one per table colour).
        Masks in one sub-folder per class (``masks/<class>/<name>``) are read as binary masks and
        merged into class ids, in ``class_names`` order (else sorted; SUIM's folder codes take
        their SUIM ids with ``colors="suim"``). When ``masks/`` also holds a mask file for each
        image (SUIM's layout), those files are read and the class folders are ignored.
    """

    format = "paired"

    def __init__(
        self,
        root: str | Path,
        images: str = "images",
        masks: str = "masks",
        *,
        mask_mode: str = "auto",
        threshold: int = 128,
        colors: str | Mapping[Any, int] | None = None,
        color_tolerance: float = 0,
        values: Mapping[int, int] | None = None,
        class_names: Sequence[str] | None = None,
        key: str | None = None,
        roi: str | None = None,
        allow_unlabeled: bool = False,
        strict: bool = True,
    ) -> None:
        root = Path(root)
        image_dir, mask_dir = root / images, root / masks
        for folder in (image_dir, mask_dir):
            if not folder.is_dir():
                raise DataError(f"{folder}: folder does not exist")
        image_files = _files(image_dir)
        by_key, self.key = _pair(image_files, _files(mask_dir), key)
        class_dirs = sorted(d for d in mask_dir.iterdir() if d.is_dir())
        self.class_dirs: list[tuple[int, Path]] = []
        if class_dirs and not by_key:  # one binary folder per class
            class_names = self._class_folders(mask_dir, class_dirs, class_names, colors)
            first = _files(self.class_dirs[0][1]) if self.class_dirs else []
            by_key, self.key = _pair(image_files, first, key)
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
        if self.class_dirs:
            self.encoding = MaskEncoding("binary", "", threshold=threshold, class_names=list(class_names))
            folders = ", ".join(f"{d.name}={cls}" for cls, d in self.class_dirs)
            self.mask_encoding = f"one binary mask folder per class ({folders})"
        else:
            mask_files = [item.files["mask"] for item in items if item.files["mask"] is not None]
            self.encoding = decide_mask_encoding(
                mask_files, mask_mode=mask_mode, threshold=threshold, colors=colors, values=values,
                color_tolerance=color_tolerance, class_names=class_names,
                class_folders=[d.name for d in class_dirs], source=mask_dir,
            )  # fmt: skip
            ignored = f"; class folders {', '.join(d.name for d in class_dirs)} ignored" if class_dirs else ""
            self.mask_encoding = self.encoding.description + ignored
            if self.encoding.notice:
                self.warn("", mask_dir, self.encoding.notice, "colour-table")
            class_names = self.encoding.class_names
        super().__init__(root, items, class_names=class_names, problems=problems, strict=strict)

    def _class_folders(
        self, mask_dir: Path, class_dirs: list[Path], class_names: Sequence[str] | None, colors
    ) -> list[str]:
        """Set ``class_dirs`` (class id, folder) and return the class names."""
        codes = [d.name for d in class_dirs]
        table = colour_table(colors, mask_dir) if isinstance(colors, str) else None
        if table is not None and table.preset == "suim" and set(codes) <= set(SUIM_CODES):
            self.class_dirs = [(SUIM_CODES[d.name], d) for d in class_dirs if SUIM_CODES[d.name] > 0]
            return list(class_names or table.names or [])
        names = list(class_names or ["background", *codes])
        by_name = {d.name: d for d in class_dirs}
        missing = [n for n in names[1:] if n not in by_name]
        if missing:
            raise DataError(f"{mask_dir}: no folder for classes {missing}")
        self.class_dirs = [(cls, by_name[n]) for cls, n in enumerate(names[1:], start=1)]
        return names

    def read(self, item: Item) -> Sample:
        files = item.files
        image = read_image(files["image"])
        mask = None
        if self.class_dirs:
            mask = self._merge_class_masks(item, image.shape[:2])
        elif files["mask"] is not None:
            mask = self.encoding.read(files["mask"], self.warner(item.id, files["mask"]))
        roi = None
        if files.get("roi"):
            roi = read_mask(files["roi"], warn=self.warner(item.id, files["roi"])) > 0
        meta = {
            "image_path": str(files["image"]),
            "mask_path": str(files["mask"]),
            "roi_path": str(files.get("roi")),
        }
        return Sample(item.id, image, mask, roi, meta)

    def _merge_class_masks(self, item: Item, shape: tuple[int, int]) -> np.ndarray:
        name = item.files["mask"].name
        mask = np.zeros(shape, dtype=np.uint8)
        for cls, folder in self.class_dirs:
            matches = [p for p in folder.iterdir() if stem(p) == Path(name).stem]
            if not matches:
                raise DataError(f"{folder / name}: class mask missing")
            warn = self.warner(item.id, matches[0])
            layer = read_mask(matches[0], threshold=self.encoding.threshold, warn=warn)
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
    atlas' 37 and 38 to left and right hippocampus. Without ``values`` the label values are
    the class ids: a label holding values that are not whole numbers in 0–255 is an error
    naming them (give ``values`` to map them), never wrapped into a byte. A label whose shape
    or affine differs from its image is an error. ``dataset.json`` paths that lead outside
    the dataset folder are refused. Samples keep ``affine`` and ``spacing`` in ``meta``.
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
        if self.values and not all(0 <= v <= 255 for v in self.values.values()):
            raise DataError(f"{root}: values= maps to class ids {sorted(set(self.values.values()))}; "
                            "class ids must lie in 0..255")  # fmt: skip
        problems: list[Problem] = []
        checked: list[tuple[Path, Path]] | None = None
        if pairs is None and (root / "dataset.json").is_file():
            meta = _read_dataset_json(root / "dataset.json")
            checked, problems = _dataset_json_pairs(root, meta)
            if class_names is None and "labels" in meta:
                table = {int(k): v for k, v in meta["labels"].items()}
                class_names = [table.get(i, f"class_{i}") for i in range(max(table) + 1)]
        if pairs is None and checked is None:
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
        if checked is None:
            checked = [(root / image, root / label) for image, label in pairs or []]
        items = []
        for image_path, label_path in checked:
            ip, lp = image_path.resolve(), label_path.resolve()
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
        ids = _label_ids(np.asarray(label), lp, mapped=bool(self.values))
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


def _read_dataset_json(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable dataset.json ({exc})") from exc
    if not isinstance(meta, dict):
        raise DataError(f"{path}: expected a JSON object with a 'training' list")
    return meta


def _dataset_json_pairs(root: Path, meta: dict[str, Any]) -> tuple[list[tuple[Path, Path]], list[Problem]]:
    """The ``training`` pairs of an MSD ``dataset.json`` as paths inside ``root``.

    An entry that is not ``{"image": ..., "label": ...}`` or whose path leads outside ``root``
    is a problem naming ``dataset.json``; the message never tells whether such a file exists.
    """
    source = root / "dataset.json"
    pairs, problems = [], []
    for n, entry in enumerate(meta.get("training") or []):
        if not (isinstance(entry, dict) and isinstance(entry.get("image"), str)
                and isinstance(entry.get("label"), str)):  # fmt: skip
            problems.append(Problem(f"training[{n}]", str(source),
                                    f"training[{n}] is not an {{'image': path, 'label': path}} entry"))  # fmt: skip
            continue
        try:
            pairs.append((inside(root, entry["image"], source), inside(root, entry["label"], source)))
        except DataError as exc:
            problems.append(Problem(f"training[{n}]", str(source), str(exc).removeprefix(f"{source}: ")))
    return pairs, problems


def _label_ids(label: np.ndarray, path: Path, *, mapped: bool) -> np.ndarray:
    """Label values as int64 class ids, checked: whole numbers always, and 0..255 unless ``mapped``.

    A value that breaks the rule is a :class:`DataError` naming the file and the values, never
    truncated or wrapped.
    """
    if label.dtype == np.uint8:
        return label.astype(np.int64)
    if label.dtype.kind == "f":
        whole = np.isfinite(label) & (label == np.round(label))
        if not whole.all():
            shown = np.unique(label[~whole])[:5].tolist()
            raise DataError(f"{path}: label values {shown} are not whole numbers; a label volume holds "
                            "class ids (or values mapped by values={value: class_id, ...})")  # fmt: skip
    elif label.dtype.kind not in "iub":
        raise DataError(f"{path}: label volume of type {label.dtype} cannot hold class ids")
    if label.size and (label.min() < np.iinfo(np.int64).min / 2 or label.max() > np.iinfo(np.int64).max / 2):
        raise DataError(f"{path}: label values reach {label.min()}..{label.max()}; not class ids")
    ids = label.astype(np.int64)
    if not mapped:
        bad = (ids < 0) | (ids > 255)
        if bad.any():
            shown = np.unique(ids[bad])
            example = ", ".join(f"{v}: {i}" for i, v in enumerate(shown[:3].tolist(), start=1))
            raise DataError(
                f"{path}: label values {shown[:10].tolist()} do not fit the class ids 0..255 of a mask; "
                f"give values={{{example}, ...}} to map label values to class ids"
            )
    return ids


def _all(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_file()), key=lambda p: natural_key(p.name))


class SliceStack(SegmentationDataset):
    """A folder of 2D slices (and one of label slices) read as ONE volume, slices in natural order.

    ISBI 2012's 30 training slices become a 30×512×512 volume. The label slices are read as
    :class:`PairedFolders` reads masks: ``mask_mode="auto"`` decides their encoding from up to 16
    of them (``mask_encoding`` says what was chosen); ``threshold``, ``values``, ``colors`` and
    ``color_tolerance`` as there.
    """

    format = "slices"
    spatial_dims = 3

    def __init__(
        self,
        root: str | Path,
        images: str = "image",
        labels: str = "label",
        *,
        mask_mode: str = "auto",
        threshold: int = 128,
        colors: str | Mapping[Any, int] | None = None,
        color_tolerance: float = 0,
        values: Mapping[int, int] | None = None,
        class_names: Sequence[str] | None = None,
        strict: bool = True,
    ) -> None:
        root = Path(root)
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
        self.encoding = decide_mask_encoding(
            label_files, mask_mode=mask_mode, threshold=threshold, colors=colors, values=values,
            color_tolerance=color_tolerance, class_names=class_names, source=root / labels,
        )  # fmt: skip
        self.mask_encoding = self.encoding.description
        self.mask_mode = self.encoding.mode
        if self.encoding.notice:
            self.warn("", root / labels, self.encoding.notice, "colour-table")
        super().__init__(root, items, class_names=self.encoding.class_names, problems=problems, strict=strict)

    def read(self, item: Item) -> Sample:
        image = read_slices(item.files["images"])
        slices = [self.encoding.read(p, self.warner(item.id, p)) for p in item.files["labels"]]
        for p, s in zip(item.files["labels"], slices, strict=True):
            if s.shape != image.shape[1:3]:
                raise DataError(f"{p}: label slice of shape {s.shape} differs from its image slice "
                                f"({image.shape[1:3]})")  # fmt: skip
        meta = {
            "image_path": str(self.root),
            "mask_path": str(item.files["labels"][0].parent),
            "affine": np.eye(4),
            "spacing": (1.0, 1.0, 1.0),
        }
        return Sample(item.id, image, np.stack(slices), None, meta)
