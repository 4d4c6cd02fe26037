"""LabelMe JSON annotations drawn into class-id masks, pixel for pixel as labelme exports them.

A LabelMe file holds ``shapes`` (each a ``label``, ``points`` in image pixels, a
``shape_type`` and an optional ``group_id``) and its image, embedded as base64 ``imageData``
or named by ``imagePath`` relative to the JSON file. Shapes are drawn with PIL's ``ImageDraw``
as labelme's ``shape_to_mask`` draws them, later shapes over earlier ones.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .base import Item, Problem, Sample, SegmentationDataset, natural_key
from .io import DataError, decode_image, inside, read_image

IGNORE_LABEL = "__ignore__"
BACKGROUND_LABELS = ("_background_", "background")
IGNORE_INDEX = 255
LINE_WIDTH = 10  # labelme's width for line and linestrip shapes, in pixels
POINT_RADIUS = 5  # labelme's radius of the disc drawn for a point shape
# Shape type -> (fewest points, most points or None for no limit).
SHAPE_POINTS: dict[str, tuple[int, int | None]] = {
    "polygon": (3, None),
    "rectangle": (2, 2),
    "circle": (2, 2),
    "line": (2, 2),
    "linestrip": (2, None),
    "point": (1, 1),
    "mask": (2, 2),
}


@dataclass(frozen=True)
class Shape:
    """One checked LabelMe shape: ``points`` is ``N×2`` (x, y); ``mask`` the base64 PNG of a mask shape."""

    index: int
    label: str
    kind: str
    points: np.ndarray
    group_id: int | None
    mask: str | None

    def where(self, path: Path) -> str:
        return f"{path}: shape {self.index} ({self.label!r}, {self.kind})"


def load_document(path: Path) -> dict[str, Any]:
    """A LabelMe file as a dict; a file that is not one is a :class:`DataError` naming it."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a LabelMe JSON file ({exc})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list):
        raise DataError(f"{path}: not a LabelMe JSON file (no 'shapes' list)")
    return doc


def parse_shapes(doc: Mapping[str, Any], path: Path) -> list[Shape]:
    """The shapes of a LabelMe document, checked; a missing ``shape_type`` means polygon.

    Unknown shape types, too few (or too many) points, points that are not finite numbers and
    labels or group ids of the wrong type are a :class:`DataError` naming the file and the shape.
    """
    shapes = []
    for index, raw in enumerate(doc["shapes"]):
        if not isinstance(raw, dict) or not isinstance(raw.get("label"), str):
            raise DataError(
                f"{path}: shape {index}: not a LabelMe shape (needs a 'label' string and 'points')"
            )
        label = raw["label"]
        kind = raw.get("shape_type") or "polygon"
        if not isinstance(kind, str) or kind not in SHAPE_POINTS:
            raise DataError(
                f"{path}: shape {index} ({label!r}): unknown shape type {kind!r}; LabelMe shapes "
                f"are {', '.join(SHAPE_POINTS)}"
            )
        where = f"{path}: shape {index} ({label!r}, {kind})"
        points = raw.get("points")
        if not isinstance(points, list) or not all(_is_point(p) for p in points):
            raise DataError(f"{where}: 'points' must be a list of [x, y] numbers, got {str(points)[:80]}")
        infinite = [p for p in points if not all(_finite(v) for v in p)]
        if infinite:
            raise DataError(f"{where}: points must be finite numbers, got {str(infinite[:3])[:80]}")
        array = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        fewest, most = SHAPE_POINTS[kind]
        if len(array) < fewest or (most is not None and len(array) > most):
            wanted = f"{fewest}" if fewest == most else f"at least {fewest}"
            raise DataError(f"{where}: has {len(array)} point(s); a {kind} needs {wanted}")
        group_id = raw.get("group_id")
        if group_id is not None and (isinstance(group_id, bool) or not isinstance(group_id, int)):
            raise DataError(f"{where}: group_id must be a whole number or null, got {group_id!r}")
        mask = raw.get("mask")
        if kind == "mask" and not (isinstance(mask, str) and mask):
            raise DataError(f"{where}: a mask shape needs its 'mask' as a base64 PNG string")
        shapes.append(Shape(index, label, kind, array, group_id, mask if kind == "mask" else None))
    return shapes


def _is_point(p: Any) -> bool:
    return (
        isinstance(p, (list, tuple))
        and len(p) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p)
    )


def _finite(value: float) -> bool:
    try:
        return math.isfinite(float(value))
    except OverflowError:  # a whole number beyond the float range
        return False


def check_extent(shapes: list[Shape], size: tuple[int, int], path: Path) -> None:
    """Refuse points more than one image size outside the image (``size`` is ``(H, W)``).

    Points a little outside are clipped when drawn, as labelme's drawing clips them; points
    far outside (3e9) are a corrupt or foreign annotation, a :class:`DataError` naming the shape.
    """
    h, w = size
    margin = max(h, w)
    for shape in shapes:
        x, y = shape.points[:, 0], shape.points[:, 1]
        if x.min() < -margin or x.max() > w + margin or y.min() < -margin or y.max() > h + margin:
            reach = f"x {x.min():.6g}..{x.max():.6g}, y {y.min():.6g}..{y.max():.6g}"
            raise DataError(
                f"{shape.where(path)}: points reach {reach}, far outside the {w}×{h} image; "
                "fix or remove the shape"
            )


def draw_shapes(shapes: list[Shape], size: tuple[int, int], values: list[int], path: Path) -> np.ndarray:
    """An ``H×W`` uint8 mask with each shape filled with its value, in order (later over earlier).

    Drawn as labelme's ``shape_to_mask`` draws: PIL polygons and rectangles with their outline,
    circles as the disc through the second point, lines and line strips ``LINE_WIDTH`` wide,
    points as discs of radius ``POINT_RADIUS``; a mask shape's PNG is laid at the box from its
    first point (corners truncated to whole pixels). A rectangle's corners may come in any order.
    """
    from PIL import Image, ImageDraw

    h, w = size
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    for shape, value in zip(shapes, values, strict=True):
        xy = [(float(x), float(y)) for x, y in shape.points]
        if shape.kind == "polygon":
            draw.polygon(xy, fill=value, outline=value)
        elif shape.kind == "rectangle":
            (x0, y0), (x1, y1) = xy
            draw.rectangle(
                [(min(x0, x1), min(y0, y1)), (max(x0, x1), max(y0, y1))], fill=value, outline=value
            )
        elif shape.kind == "circle":
            (cx, cy), (px, py) = xy
            r = math.hypot(cx - px, cy - py)
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=value, outline=value)
        elif shape.kind in ("line", "linestrip"):
            draw.line(xy, fill=value, width=LINE_WIDTH)
        elif shape.kind == "point":
            (cx, cy), r = xy[0], POINT_RADIUS
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=value, outline=value)
        else:
            _paste_mask(canvas, shape, value, path)
    return np.asarray(canvas).copy()


def _paste_mask(canvas, shape: Shape, value: int, path: Path) -> None:
    from PIL import Image

    try:
        patch = decode_image(base64.b64decode(shape.mask or ""), shape.where(path))
    except (binascii.Error, ValueError) as exc:
        raise DataError(f"{shape.where(path)}: 'mask' is not a base64 PNG ({exc})") from exc
    if patch.shape[-1] != 1:
        raise DataError(
            f"{shape.where(path)}: 'mask' must be a one-channel PNG, got {patch.shape[-1]} channels"
        )
    (x0, y0), (x1, y1) = shape.points.astype(np.int64)
    box = (int(y1 - y0 + 1), int(x1 - x0 + 1))
    if patch.shape[:2] != box:
        raise DataError(
            f"{shape.where(path)}: 'mask' is {patch.shape[0]}×{patch.shape[1]} pixels but its points "
            f"span {box[0]}×{box[1]} (rows × columns)"
        )
    stencil = Image.fromarray(np.where(patch[..., 0] != 0, 255, 0).astype(np.uint8))
    canvas.paste(value, (int(x0), int(y0), int(x1) + 1, int(y1) + 1), mask=stencil)


class LabelMe(SegmentationDataset):
    """A folder of LabelMe JSON files, searched in sub-folders too, drawn into class-id masks.

    ``label_map`` maps labels to class ids 0..254 (0 is background); without it the labels
    of all files, sorted, get ids 1, 2, …. ``_background_`` and ``background`` draw class 0,
    and ``__ignore__`` draws ``IGNORE_INDEX`` (255), a region that counts nowhere: it is no
    class, and the dataset's ``ignore_index`` is 255 when any file uses it. A label missing
    from a given map is an error naming the file.

    The image is the embedded ``imageData`` when there is one (used as stored, as labelme
    uses it), else the file ``imagePath`` names relative to the JSON's folder (``/`` or
    ``\\`` separators), turned upright by its EXIF orientation as labelme does; a path that
    leads outside ``root`` is refused. Sample ids are the JSON paths relative to ``root``
    without ``.json`` (``a/img1``), and ``meta["instances"]`` lists, per shape in order, its
    ``label``, ``group_id``, ``shape_type`` and ``class_id``.
    """

    format = "labelme"

    def __init__(self, root: str | Path, label_map: Mapping[str, int] | None = None, *, strict: bool = True):
        root = Path(root)
        files = sorted(
            (
                p
                for p in root.rglob("*.json")
                if not any(part.startswith(".") for part in p.relative_to(root).parts)
            ),
            key=lambda p: natural_key(p.relative_to(root).as_posix()),
        )
        problems, labels_of = [], {}
        for f in files:
            sample_id = _sample_id(root, f)
            try:
                doc = load_document(f)
                shapes = parse_shapes(doc, f)
                image_source(root, f, doc)
            except DataError as exc:
                problems.append(Problem(sample_id, str(f), str(exc).removeprefix(f"{f}: ")))
                continue
            labels_of[f] = [s.label for s in shapes]
        used = {label for labels in labels_of.values() for label in labels}
        reserved = {IGNORE_LABEL, *BACKGROUND_LABELS}
        if label_map is None:
            label_map = {label: i for i, label in enumerate(sorted(used - reserved), start=1)}
        self.label_map = {k: v for k, v in label_map.items() if k != IGNORE_LABEL}
        bad_ids = {
            k: v
            for k, v in self.label_map.items()
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < IGNORE_INDEX
        }
        if bad_ids:
            raise DataError(
                f"{root}: label_map class ids must be whole numbers 0..{IGNORE_INDEX - 1} "
                f"({IGNORE_INDEX} marks {IGNORE_LABEL}); got {bad_ids}"
            )
        known = set(self.label_map) | reserved
        for f, labels in labels_of.items():
            unknown = sorted(set(labels) - known)
            if unknown:
                problems.append(
                    Problem(
                        _sample_id(root, f),
                        str(f),
                        f"unknown label(s) {unknown}; label map has {sorted(self.label_map)}",
                    )
                )
        if IGNORE_LABEL in used:
            self.ignore_index = IGNORE_INDEX
        top = max(self.label_map.values(), default=0)
        names = ["background"] + [f"class_{i}" for i in range(1, top + 1)]
        for label, cls in self.label_map.items():
            if cls > 0:
                names[cls] = label
        bad = {p.file for p in problems}
        items = [Item(_sample_id(root, f), {"json": f}) for f in labels_of if str(f) not in bad]
        if not files:
            problems.append(Problem("", str(root), "empty folder: no LabelMe JSON files"))
        super().__init__(root, items, class_names=names, problems=problems, strict=strict)

    def class_of(self, label: str) -> int:
        """The mask value a label draws: its class id, 0 for background, 255 for ``__ignore__``."""
        if label == IGNORE_LABEL:
            return IGNORE_INDEX
        if label in self.label_map:
            return self.label_map[label]
        if label in BACKGROUND_LABELS:
            return 0
        raise KeyError(label)

    def read(self, item: Item) -> Sample:
        path = item.files["json"]
        doc = load_document(path)
        image_file = image_source(self.root, path, doc)
        if image_file is None:
            try:
                data = base64.b64decode(doc["imageData"])
            except (binascii.Error, ValueError) as exc:
                raise DataError(f"{path}: imageData is not base64 ({exc})") from exc
            image = decode_image(data, path)
        else:
            image = read_image(image_file)
        h, w = image.shape[:2]
        stated = (doc.get("imageHeight"), doc.get("imageWidth"))
        if stated != (None, None) and stated != (h, w):
            raise DataError(
                f"{path}: imageHeight×imageWidth {stated[0]}×{stated[1]} differ from the image "
                f"({h}×{w}, after its EXIF orientation); the shapes were drawn on another image"
            )
        shapes = parse_shapes(doc, path)
        try:
            values = [self.class_of(s.label) for s in shapes]
        except KeyError as exc:
            raise DataError(
                f"{path}: unknown label {exc.args[0]!r}; label map has {sorted(self.label_map)}"
            ) from None
        check_extent(shapes, (h, w), path)
        mask = draw_shapes(shapes, (h, w), values, path)
        instances = [
            {"label": s.label, "group_id": s.group_id, "shape_type": s.kind, "class_id": v}
            for s, v in zip(shapes, values, strict=True)
        ]
        meta = {"image_path": str(image_file or path), "mask_path": str(path), "instances": instances}
        return Sample(item.id, image, mask, None, meta)


def image_source(root: Path, path: Path, doc: Mapping[str, Any]) -> Path | None:
    """The image file that a document without ``imageData`` names, checked to exist; ``None`` when
    the image is embedded. A path leading outside ``root`` is refused, the same whether or not
    the file it names exists."""
    if doc.get("imageData"):
        if not isinstance(doc["imageData"], str):
            raise DataError(f"{path}: imageData must be a base64 string")
        return None
    image_path = doc.get("imagePath")
    if not isinstance(image_path, str) or not image_path:
        raise DataError(f"{path}: neither imagePath nor imageData")
    image_file = inside(root, image_path, path, start=path.parent)
    if not image_file.is_file():
        raise DataError(f"{path}: image {image_file} does not exist and no imageData is embedded")
    return image_file


def _sample_id(root: Path, path: Path) -> str:
    """The JSON path relative to the dataset folder, without ``.json``: unique across sub-folders."""
    return path.relative_to(root).with_suffix("").as_posix()
