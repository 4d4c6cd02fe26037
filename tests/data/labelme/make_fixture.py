"""Writes the LabelMe fixture project and labelme's own label arrays for it (see README.md).

Run with labelme installed (its Qt and ONNX dependencies are not needed, only ``labelme._label_file``
and ``labelme.utils``): ``python tests/data/labelme/make_fixture.py``. Not part of the test suite.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
PROJECT = HERE / "project"
EXPECTED = HERE / "expected"
# The label values of labelme's exports (labelme2voc convention: __ignore__ is -1, saved as 255).
LABEL_VALUES = {"_background_": 0, "background": 0, "__ignore__": -1, "lesion": 1, "marker": 2, "organ": 3,
                "vessel": 4}  # fmt: skip
ORIENTATION = 0x0112


def photo(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth RGB picture with a red 8×8 block at its stored top-left corner."""
    yy, xx = np.mgrid[0:height, 0:width]
    rgb = np.stack([40 + xx * 2, 60 + yy * 2, np.full_like(xx, 90 + seed * 20)], axis=-1)
    rgb[:8, :8] = (250, 10, 10)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def with_orientation(image: Image.Image, orientation: int, fmt: str) -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    buf = io.BytesIO()
    image.save(buf, format=fmt, exif=exif, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


def mask_patch(size: int) -> str:
    """A diamond as labelme stores a mask shape: a base64 one-channel PNG of 0/1."""
    yy, xx = np.mgrid[0:size, 0:size]
    c = (size - 1) / 2
    diamond = (np.abs(yy - c) + np.abs(xx - c) <= c).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(diamond).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def shape(
    label: str, points: list, kind: str | None = "polygon", group_id: int | None = None, **extra
) -> dict:
    s = {"label": label, "points": points, "group_id": group_id, "description": "", "flags": {}}
    if kind is not None:
        s["shape_type"] = kind
    return {**s, **extra}


def document(shapes: list, image_path: str, height: int, width: int, image_data: bytes | None = None) -> dict:
    return {
        "version": "5.11.4",
        "flags": {},
        "shapes": shapes,
        "imagePath": image_path,
        "imageData": base64.b64encode(image_data).decode() if image_data else None,
        "imageHeight": height,
        "imageWidth": width,
    }


def write_project() -> dict[str, dict]:
    """The images and JSON files; returns each JSON's document by its path relative to the project."""
    (PROJECT / "images").mkdir(parents=True, exist_ok=True)
    (PROJECT / "annotations" / "nested").mkdir(parents=True, exist_ok=True)
    # Stored 64×80 (rows × columns), EXIF orientation 6: shown (and annotated) 80 rows × 64 columns.
    (PROJECT / "images" / "photo.jpg").write_bytes(
        with_orientation(Image.fromarray(photo(64, 80, 0)), 6, "JPEG")
    )
    # Grey 32×48, EXIF orientation 3 (turned half a circle).
    grey = photo(32, 48, 1)[..., 1]
    (PROJECT / "images" / "scan.png").write_bytes(with_orientation(Image.fromarray(grey), 3, "PNG"))
    # Embedded 40×48 PNG with EXIF orientation 6: labelme uses embedded data as stored.
    embedded = with_orientation(Image.fromarray(photo(40, 48, 2)), 6, "PNG")
    docs = {
        "annotations/photo.json": document(
            [
                shape("lesion", [[5.3, 10.2], [30.7, 8.1], [28.4, 35.6], [-1.5, 30.2]], group_id=1),
                shape("organ", [[35.2, 40.6], [60.9, 70.3]], "rectangle", group_id=2),
                shape("lesion", [[20.5, 55.5], [27.1, 58.9]], "circle", group_id=1),
                shape("vessel", [[2.0, 75.0], [62.0, 45.0]], "line"),
                shape("vessel", [[40, 5], [55, 15], [62.5, 2.5], [66.0, 20.0]], "linestrip"),
                shape("marker", [[10.4, 45.6]], "point"),
                shape("organ", [[44.0, 22.0], [55.0, 33.0]], "mask", group_id=3, mask=mask_patch(12)),
                shape("__ignore__", [[12, 12], [22, 12], [22, 20], [12, 20]]),
                shape("_background_", [[50, 60], [58, 66]], "rectangle"),
            ],
            "..\\images\\photo.jpg",
            80,
            64,
        ),
        "annotations/nested/photo.json": document(
            [
                shape("organ", [[3, 3], [20, 2], [25, 18], [4, 20]], kind=None, group_id=7),
                shape("background", [[8, 8], [14, 8], [14, 14]]),
                shape("lesion", [[30, 25], [52.5, 44.0]], "rectangle", group_id=7),
                shape("marker", [[47.5, 39.5]], "point"),
                shape("__ignore__", [[36, 10], [40, 10]], "circle"),
            ],
            "photo.json",
            40,
            48,
            embedded,
        ),
        "annotations/nested/scan.json": document(
            [
                shape("vessel", [[10, 10], [16, 10]], "circle"),
                shape("lesion", [[0, 30], [20, 20], [47, 31]], "linestrip"),
                shape("organ", [[30, 2], [45, 2], [45, 12]]),
            ],
            "../../images/scan.png",
            32,
            48,
        ),
    }
    for name, doc in docs.items():
        (PROJECT / name).write_text(json.dumps(doc, indent=2) + "\n")
    return docs


def export(name: str, doc: dict) -> None:
    """labelme's label array for one JSON file, saved by ``labelme.utils.lblsave`` (-1 becomes 255)."""
    from labelme import utils
    from labelme._label_file import LabelFile

    path = PROJECT / name
    if all("shape_type" in s for s in doc["shapes"]):
        label_file = LabelFile(filename=str(path))
        image = utils.img_data_to_arr(label_file.imageData)
        shapes = label_file.shapes
    else:  # LabelFile requires shape_type; shapes_to_label reads a missing one as a polygon
        image = utils.img_b64_to_arr(doc["imageData"])
        shapes = doc["shapes"]
    label, _ = utils.shapes_to_label(image.shape, shapes, LABEL_VALUES)
    out = EXPECTED / Path(name).with_suffix(".png")
    out.parent.mkdir(parents=True, exist_ok=True)
    utils.lblsave(str(out), label)
    print(f"{out.relative_to(HERE)}: image {image.shape}, values {sorted(np.unique(label).tolist())}")


if __name__ == "__main__":
    for name, doc in write_project().items():
        export(name, doc)
