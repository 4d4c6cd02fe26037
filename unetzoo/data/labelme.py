"""LabelMe JSON annotations drawn into class-id masks."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .base import Item, Problem, Sample, SegmentationDataset, natural_key
from .io import DataError, read_image


class LabelMe(SegmentationDataset):
    """LabelMe JSON files: polygons, rectangles and circles drawn into class-id masks.

    ``label_map`` maps each label to a class id (background is 0); without it the labels of
    all files, sorted, get ids 1, 2, …. A label missing from a given map is an error naming
    the file. The image is the file named by ``imagePath`` beside the JSON, else the
    embedded ``imageData``. Later shapes are drawn over earlier ones.
    """

    format = "labelme"

    def __init__(self, root: str | Path, label_map: Mapping[str, int] | None = None, *, strict: bool = True):
        root = Path(root)
        files = sorted(root.rglob("*.json"), key=lambda p: natural_key(str(p)))
        problems, docs = [], {}
        for f in files:
            try:
                doc = json.loads(f.read_text())
                docs[f] = [s["label"] for s in doc.get("shapes", [])]
                if "imagePath" not in doc and not doc.get("imageData"):
                    problems.append(Problem(f.stem, str(f), "neither imagePath nor imageData"))
            except (json.JSONDecodeError, KeyError, UnicodeDecodeError) as exc:
                problems.append(Problem(f.stem, str(f), f"not a LabelMe JSON file ({exc})"))
        if label_map is None:
            labels = sorted({label for ls in docs.values() for label in ls})
            label_map = {label: i for i, label in enumerate(labels, start=1)}
        self.label_map = dict(label_map)
        for f, labels in docs.items():
            unknown = sorted(set(labels) - set(self.label_map))
            if unknown:
                problems.append(
                    Problem(
                        f.stem, str(f), f"unknown label(s) {unknown}; label map has {sorted(self.label_map)}"
                    )
                )
        names = ["background"] + [""] * max(self.label_map.values(), default=0)
        for label, cls in self.label_map.items():
            names[cls] = label
        bad = {str(p.file) for p in problems}
        items = [Item(f.stem, {"json": f}) for f in docs if str(f) not in bad]
        if not files:
            problems.append(Problem("", str(root), "empty folder: no LabelMe JSON files"))
        super().__init__(root, items, class_names=names, problems=problems, strict=strict)

    def read(self, item: Item) -> Sample:
        import cv2

        path = item.files["json"]
        doc = json.loads(path.read_text())
        image_file = path.parent / doc["imagePath"] if doc.get("imagePath") else None
        if image_file is not None and image_file.is_file():
            image = read_image(image_file)
        elif doc.get("imageData"):
            from PIL import Image

            try:
                with Image.open(io.BytesIO(base64.b64decode(doc["imageData"]))) as im:
                    image = np.asarray(im.convert("RGB"))
            except Exception as exc:
                raise DataError(f"{path}: embedded imageData is not a readable image ({exc})") from exc
        else:
            raise DataError(f"{path}: image {image_file} not found and no imageData embedded")
        h, w = image.shape[:2]
        if (doc.get("imageHeight"), doc.get("imageWidth")) not in ((None, None), (h, w)):
            raise DataError(f"{path}: imageHeight/imageWidth {doc['imageHeight']}×{doc['imageWidth']} "
                            f"differ from the image ({h}×{w})")  # fmt: skip
        mask = np.zeros((h, w), dtype=np.uint8)
        for shape in doc.get("shapes", []):
            if shape["label"] not in self.label_map:
                raise DataError(f"{path}: unknown label {shape['label']!r}")
            cls = self.label_map[shape["label"]]
            pts = np.asarray(shape["points"], dtype=np.float64)
            kind = shape.get("shape_type") or "polygon"
            if kind == "polygon":
                cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], int(cls))
            elif kind == "rectangle":
                (x0, y0), (x1, y1) = np.round(pts).astype(int)
                cv2.rectangle(mask, (min(x0, x1), min(y0, y1)), (max(x0, x1), max(y0, y1)), int(cls), -1)
            elif kind == "circle":
                center, edge = pts
                radius = round(float(np.hypot(*(edge - center))))
                cv2.circle(mask, tuple(round(float(v)) for v in center), radius, int(cls), -1)
            else:
                raise DataError(f"{path}: shape type {kind!r} has no area; use polygon, rectangle or circle")
        meta = {"image_path": str(image_file or path), "mask_path": str(path)}
        return Sample(item.id, image, mask, None, meta)
