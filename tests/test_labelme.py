"""LabelMe projects as labelme itself exports them, and EXIF orientation of images of every format."""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.conftest import REPO, error_with_and_without
from tests.training_utils import FAST, TINY_UNET, invoke
from unetzoo.data import DataError, open_dataset
from unetzoo.data.io import read_image, read_mask
from unetzoo.data.splits import kfold_split, load_split, make_split, save_split

FIXTURE = REPO / "tests" / "data" / "labelme"
ORIENTATION = 0x0112
RED = np.array([250, 10, 10])


def shape(label: str, points: list, kind: str | None = "polygon", **extra) -> dict:
    s = {"label": label, "points": points, "group_id": None, **extra}
    if kind is not None:
        s["shape_type"] = kind
    return s


def write_doc(path: Path, shapes: list, image_path: str | None = None, *, data: bytes | None = None,
              size: tuple[int, int] | None = None) -> Path:  # fmt: skip
    doc = {"version": "5.11.4", "flags": {}, "shapes": shapes, "imagePath": image_path,
           "imageData": base64.b64encode(data).decode() if data else None}  # fmt: skip
    if size is not None:
        doc["imageHeight"], doc["imageWidth"] = size
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def png_bytes(array: np.ndarray, orientation: int | None = None) -> bytes:
    buf = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[ORIENTATION] = orientation
    Image.fromarray(array).save(buf, format="PNG", exif=exif)
    return buf.getvalue()


def grey(h: int = 24, w: int = 32) -> np.ndarray:
    return (np.arange(h * w).reshape(h, w) % 251).astype(np.uint8)


# ----------------------------------------------------------------------------- against labelme


def test_project_masks_equal_labelmes_own_export() -> None:
    ds = open_dataset(FIXTURE / "project")  # annotations/*.json beside images/: found from the parent
    assert ds.format == "labelme"
    assert ds.ids == ["annotations/nested/photo", "annotations/nested/scan", "annotations/photo"]
    assert ds.class_names == ["background", "lesion", "marker", "organ", "vessel"]
    assert ds.ignore_index == 255
    for i, sample_id in enumerate(ds.ids):
        sample = ds[i]
        with Image.open(FIXTURE / "expected" / f"{sample_id}.png") as im:
            expected = np.asarray(im)
        np.testing.assert_array_equal(sample.mask, expected, err_msg=sample_id)
    assert {255, 0, 1, 2, 3, 4} == set(np.unique(ds[2].mask).tolist())


def test_project_images_are_turned_as_labelme_turns_them() -> None:
    ds = open_dataset(FIXTURE / "project")
    photo = ds[ds.ids.index("annotations/photo")].image  # JPEG stored 64×80, EXIF orientation 6
    assert photo.shape == (80, 64, 3)
    assert np.abs(photo[1:7, -7:-1].astype(int) - RED).max() < 40  # the stored top-left corner, now top-right
    assert np.abs(photo[1:7, 1:7].astype(int) - RED).max() > 100
    embedded = ds[ds.ids.index("annotations/nested/photo")].image  # PNG with orientation 6, used as stored
    assert embedded.shape == (40, 48, 3) and (embedded[:8, :8] == RED).all()
    scan = ds[ds.ids.index("annotations/nested/scan")].image[..., 0]  # grey PNG, orientation 3
    assert scan.shape == (32, 48) and (scan[-8:, -8:] == 10).all() and scan[0, 0] == 60 + 31 * 2


def test_instances_keep_label_group_id_and_shape_type() -> None:
    ds = open_dataset(FIXTURE / "project")
    instances = ds[ds.ids.index("annotations/photo")].meta["instances"]
    assert [(i["label"], i["group_id"], i["shape_type"]) for i in instances] == [
        ("lesion", 1, "polygon"), ("organ", 2, "rectangle"), ("lesion", 1, "circle"), ("vessel", None, "line"),
        ("vessel", None, "linestrip"), ("marker", None, "point"), ("organ", 3, "mask"),
        ("__ignore__", None, "polygon"), ("_background_", None, "rectangle"),
    ]  # fmt: skip
    assert [i["class_id"] for i in instances] == [1, 3, 1, 4, 4, 2, 3, 255, 0]
    nested = ds[ds.ids.index("annotations/nested/photo")].meta["instances"]
    assert nested[0] == {"label": "organ", "group_id": 7, "shape_type": "polygon", "class_id": 3}


# ----------------------------------------------------------------------------- drawing, by hand


def test_shapes_drawn_by_hand_computed_pixels(tmp_path: Path) -> None:
    shapes = [
        shape("organ", [[20.0, 14.0], [4.0, 3.0]], "rectangle"),  # corners in any order, both inclusive
        shape("lesion", [[26, 8]], "point"),  # a disc of radius 5
        shape("__ignore__", [[6, 5], [9, 5], [9, 7], [6, 7]]),
        shape("background", [[15, 10], [17, 10], [17, 12], [15, 12]]),
        shape("lesion", [[-3.0, 20.0], [2.0, 20.0], [2.0, 30.0], [-3.0, 30.0]]),  # a little outside: clipped
    ]
    write_doc(tmp_path / "a.json", shapes, "a.png")
    Image.fromarray(grey()).save(tmp_path / "a.png")
    ds = open_dataset(tmp_path)
    assert ds.class_names == ["background", "lesion", "organ"] and ds.ignore_index == 255
    expected = np.zeros((24, 32), np.uint8)
    expected[3:15, 4:21] = 2
    yy, xx = np.mgrid[0:24, 0:32]
    # the point: pixels whose centres lie in the disc inscribed in its 11-pixel box
    expected[(yy - 8) ** 2 + (xx - 26) ** 2 <= 5.5**2] = 1
    expected[5:8, 6:10] = 255
    expected[10:13, 15:18] = 0
    expected[20:24, 0:3] = 1
    np.testing.assert_array_equal(ds[0].mask, expected)


def test_lines_are_ten_pixels_wide(tmp_path: Path) -> None:
    write_doc(tmp_path / "a.json", [shape("vessel", [[2, 10], [20, 10]], "line"),
                                    shape("vessel", [[28, 0], [28, 23]], "linestrip")], "a.png")  # fmt: skip
    Image.fromarray(grey()).save(tmp_path / "a.png")
    expected = np.zeros((24, 32), np.uint8)
    expected[6:16, 2:21] = 1  # ten rows: five above the line's row (itself included) and five below
    expected[0:24, 24:32] = 1  # ten columns, three of them past the border
    np.testing.assert_array_equal(open_dataset(tmp_path)[0].mask, expected)


def test_ignore_regions_are_no_class_and_pass_validation(tmp_path: Path) -> None:
    Image.fromarray(grey()).save(tmp_path / "a.png")
    write_doc(tmp_path / "a.json", [shape("__ignore__", [[0, 0], [31, 0], [31, 23], [0, 23]]),
                                    shape("polyp", [[2, 2], [8, 2], [8, 8]])], "a.png")  # fmt: skip
    ds = open_dataset(tmp_path)
    assert ds.class_names == ["background", "polyp"] and ds.num_classes == 2
    mask = ds[0].mask  # validate() accepts the 255
    assert set(np.unique(mask).tolist()) == {1, 255}
    no_ignore = open_dataset(tmp_path, label_map={"polyp": 1, "__ignore__": 1})  # always 255, never a class
    assert no_ignore[0].mask[20, 20] == 255 and no_ignore.class_names == ["background", "polyp"]


def test_finetune_uses_the_datasets_ignore_index(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    shapes = [
        shape("__ignore__", [[0, 0], [31, 5]], "rectangle"),
        shape("a", [[8, 8], [20, 8], [20, 20]]),
        shape("b", [[24, 24], [28, 28]], "rectangle"),
    ]
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(data / f"s{i}.png")
        write_doc(data / f"s{i}.json", shapes, f"s{i}.png")
    run = tmp_path / "run"
    result = invoke("unet", data, "--out", run, *TINY_UNET, *FAST, "--max-steps", "1", "--val", "0.5")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((run / "config.yaml").read_text())["ignore_index"] == 255


# ----------------------------------------------------------------------------- paths and images


def test_image_data_comes_first_and_windows_separators_work(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    Image.fromarray(grey()).save(root / "images" / "x.png")
    data = png_bytes(np.full((24, 32, 3), 7, np.uint8))
    write_doc(root / "json" / "self.json", [shape("a", [[1, 1], [5, 1], [5, 5]])], "self.json", data=data)
    write_doc(root / "json" / "gone.json", [shape("a", [[1, 1], [5, 1], [5, 5]])], "missing.png", data=data)
    write_doc(root / "json" / "win.json", [shape("a", [[1, 1], [5, 1], [5, 5]])], "..\\images\\x.png")
    ds = open_dataset(root, format="labelme")
    assert ds.ids == ["json/gone", "json/self", "json/win"]
    assert (ds[0].image == 7).all() and (ds[1].image == 7).all()
    np.testing.assert_array_equal(ds[2].image[..., 0], grey())
    assert ds[2].meta["image_path"].endswith("images/x.png")


@pytest.mark.parametrize("image_path", ["../../outside.png", "..\\..\\outside.png", "/tmp/outside.png",
                                        "C:\\data\\outside.png"])  # fmt: skip
def test_image_path_outside_the_dataset_is_refused_alike_whether_it_exists(
    tmp_path: Path, image_path: str
) -> None:
    root = tmp_path / "ds"
    write_doc(root / "sub" / "a.json", [shape("a", [[1, 1], [5, 1], [5, 5]])], image_path)
    outside = tmp_path / "outside.png"
    message = error_with_and_without(outside, lambda p: Image.fromarray(grey()).save(p), lambda: open_dataset(root))
    assert "sub/a.json" in message and ("outside the dataset folder" in message or "absolute" in message)


def test_missing_image_without_image_data_names_the_json(tmp_path: Path) -> None:
    write_doc(tmp_path / "a.json", [shape("a", [[1, 1], [5, 1], [5, 5]])], "nowhere.png")
    with pytest.raises(DataError, match=r"a.json: image .*nowhere.png does not exist and no imageData"):
        open_dataset(tmp_path)


def test_image_size_that_differs_from_the_json_is_an_error(tmp_path: Path) -> None:
    Image.fromarray(grey()).save(tmp_path / "a.png")
    write_doc(tmp_path / "a.json", [shape("a", [[1, 1], [5, 1], [5, 5]])], "a.png", size=(32, 24))
    with pytest.raises(
        DataError, match=r"a.json: imageHeight×imageWidth 32×24 differ from the image \(24×32"
    ):
        open_dataset(tmp_path)[0]


# ----------------------------------------------------------------------------- bad shapes


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        (shape("cell", [[1, 1], [5, 5]], "ellipse"), r"shape 1 \('cell'\): unknown shape type 'ellipse'"),
        (shape("cell", [[1, 1], [5, 5]]), r"shape 1 \('cell', polygon\): has 2 point\(s\); a polygon needs at least 3"),
        (shape("cell", [[1, 1], [5, 5]], None), r"shape 1 \('cell', polygon\): has 2 point"),
        (shape("cell", [[1, 1]], "circle"), r"shape 1 \('cell', circle\): has 1 point\(s\); a circle needs 2"),
        (shape("cell", [[1, 1], [2, 2]], "point"), r"shape 1 \('cell', point\): has 2 point\(s\); a point needs 1"),
        (shape("cell", [[1, 1]], "linestrip"), r"shape 1 \('cell', linestrip\): has 1 point"),
        (shape("cell", [[1, "x"], [5, 5], [6, 1]]), r"shape 1 \('cell', polygon\): 'points' must be a list"),
        (shape("cell", [[1, 1, 1], [5, 5], [6, 1]]), r"shape 1 \('cell', polygon\): 'points' must be a list"),
        (shape("cell", [[1, float("nan")], [5, 5], [6, 1]]), r"shape 1 \('cell', polygon\): points must be finite"),
        (shape("cell", [[1, 1], [float("inf"), 5]], "rectangle"), r"shape 1 \('cell', rectangle\): points must be finite"),
        (shape("cell", [[1, 1], [5, 5]], "rectangle", group_id="x"), r"shape 1 \('cell', rectangle\): group_id"),
        (shape("cell", [[1, 1], [5, 5]], "mask"), r"shape 1 \('cell', mask\): a mask shape needs its 'mask'"),
        ({"points": [[1, 1], [5, 5], [6, 1]]}, r"shape 1: not a LabelMe shape"),
    ],
)  # fmt: skip
def test_malformed_shapes_name_the_file_and_the_shape(tmp_path: Path, bad: dict, needle: str) -> None:
    Image.fromarray(grey()).save(tmp_path / "a.png")
    write_doc(tmp_path / "a.json", [shape("ok", [[1, 1], [5, 1], [5, 5]]), bad], "a.png")
    with pytest.raises(DataError, match=r"a.json: " + needle):
        open_dataset(tmp_path)


@pytest.mark.parametrize("value", [3e9, -3e9, 1e300, 100])
def test_coordinates_far_outside_the_image_are_refused(tmp_path: Path, value: float) -> None:
    Image.fromarray(grey()).save(tmp_path / "a.png")
    write_doc(tmp_path / "a.json", [shape("ok", [[1, 1], [5, 1], [5, 5]]),
                                    shape("cell", [[2, 2], [value, 3], [4, 9]])], "a.png")  # fmt: skip
    ds = open_dataset(tmp_path)
    with pytest.raises(DataError, match=r"a.json: shape 1 \('cell', polygon\): points reach .* far outside"):
        ds[0]


def test_huge_integer_coordinates_are_not_finite(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"shapes": [{"label": "c", "points": [[1, 1], [1' + "0" * 400 + ', 1], '
                                     '[2, 2]]}], "imagePath": "a.png", "imageData": null}')  # fmt: skip
    Image.fromarray(grey()).save(tmp_path / "a.png")
    with pytest.raises(DataError, match=r"a.json: shape 0 \('c', polygon\): points must be finite"):
        open_dataset(tmp_path)


def test_mask_shape_patch_must_fit_its_box(tmp_path: Path) -> None:
    Image.fromarray(grey()).save(tmp_path / "a.png")
    patch = base64.b64encode(png_bytes(np.ones((4, 5), np.uint8))).decode()
    write_doc(tmp_path / "a.json", [shape("cell", [[2, 3], [6, 6]], "mask", mask=patch)], "a.png")
    expected = np.zeros((24, 32), np.uint8)
    expected[3:7, 2:7] = 1
    np.testing.assert_array_equal(open_dataset(tmp_path)[0].mask, expected)
    write_doc(tmp_path / "a.json", [shape("cell", [[2, 3], [9, 6]], "mask", mask=patch)], "a.png")
    with pytest.raises(
        DataError, match=r"a.json: shape 0 \('cell', mask\): 'mask' is 4×5 pixels but its points span 4×8"
    ):
        open_dataset(tmp_path)[0]


def test_a_json_that_is_not_labelme_names_the_file(tmp_path: Path) -> None:
    Image.fromarray(grey()).save(tmp_path / "a.png")
    write_doc(tmp_path / "a.json", [shape("ok", [[1, 1], [5, 1], [5, 5]])], "a.png")
    (tmp_path / "b.json").write_text('{"boxes": []}')
    with pytest.raises(DataError, match=r"b.json: not a LabelMe JSON file \(no 'shapes' list\)"):
        open_dataset(tmp_path)
    assert open_dataset(tmp_path, strict=False).ids == ["a"]


# ----------------------------------------------------------------------------- nested folders, splits


def test_nested_folders_give_unique_ids_and_disjoint_splits(tmp_path: Path) -> None:
    for folder in ("a", "b", "c/d"):
        for i in range(1, 7):
            write_doc(tmp_path / folder / f"img{i}.json", [shape("x", [[1, 1], [5, 1], [5, 5]])], f"img{i}.png",
                      data=png_bytes(grey()))  # fmt: skip
    ds = open_dataset(tmp_path)
    assert len(ds) == 18 and len(set(ds.ids)) == 18
    assert ds.ids[:2] == ["a/img1", "a/img2"] and "c/d/img6" in ds.ids
    split = make_split(ds, "ratio", val=0.2, test=0.2, seed=1)
    parts = [set(split[k]) for k in ("train", "val", "test")]
    assert sum(map(len, parts)) == 18 and set().union(*parts) == set(ds.ids)
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    fold = kfold_split(ds.ids, k=3, fold=0)
    assert set(fold["train"]) | set(fold["val"]) == set(ds.ids) and not set(fold["train"]) & set(fold["val"])
    saved = save_split(tmp_path / "split.json", split, method="ratio")
    assert load_split(saved, ds) == split


def test_split_folders_of_labelme_projects(tmp_path: Path) -> None:
    for part in ("train", "test"):
        write_doc(tmp_path / part / "ann" / "x.json", [shape("__ignore__", [[1, 1], [5, 1], [5, 5]])], "x.png",
                  data=png_bytes(grey()))  # fmt: skip
    ds = open_dataset(tmp_path)
    assert ds.ids == ["test/ann/x", "train/ann/x"] and ds.given_split == {
        "test/ann/x": "test",
        "train/ann/x": "train",
    }
    assert ds.ignore_index == 255 and ds[0].mask[3, 4] == 255


def test_labelme_beside_its_images_and_paired_annotations_still_paired(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    Image.fromarray(grey()).save(project / "data" / "x.png")
    write_doc(project / "data" / "x.json", [shape("a", [[1, 1], [5, 1], [5, 5]])], "x.png")
    assert open_dataset(project).format == "labelme"
    paired = tmp_path / "paired"
    for sub in ("images", "annotations"):
        (paired / sub).mkdir(parents=True)
        Image.fromarray(grey()).save(paired / sub / "x.png")
    assert open_dataset(paired).format == "paired"


# ----------------------------------------------------------------------------- EXIF orientation


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "WEBP"])
def test_read_image_applies_exif_orientation_of_every_format(tmp_path: Path, fmt: str) -> None:
    rng = np.random.default_rng(0)
    stored = rng.integers(0, 255, (6, 10, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # shown turned a quarter clockwise
    path = tmp_path / f"x.{fmt.lower()}"
    extra = {"lossless": True} if fmt == "WEBP" else {}
    Image.fromarray(stored).save(path, format=fmt, exif=exif, **extra)
    np.testing.assert_array_equal(read_image(path), np.rot90(stored, k=-1))
    exif[ORIENTATION] = 3
    Image.fromarray(stored).save(path, format=fmt, exif=exif, **extra)
    np.testing.assert_array_equal(read_image(path), stored[::-1, ::-1])
    exif[ORIENTATION] = 2
    Image.fromarray(stored).save(path, format=fmt, exif=exif, **extra)
    np.testing.assert_array_equal(read_image(path), stored[:, ::-1])


def test_masks_with_exif_orientation_are_turned_too(tmp_path: Path) -> None:
    stored = np.zeros((6, 10), np.uint8)
    stored[0, 0:3] = 255
    Image.fromarray(stored).save(tmp_path / "m.png", exif=_exif(8))  # a quarter counter-clockwise
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), np.rot90(stored, k=1) // 255)


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    return exif


def with_exif_segment(jpeg: bytes, orientation: int) -> bytes:
    """A JPEG file with an EXIF block carrying ``orientation`` inserted after its start marker;
    the compressed pixels stay byte for byte."""
    payload = _exif(orientation).tobytes()
    assert jpeg[:2] == b"\xff\xd8" and payload.startswith(b"Exif\x00\x00")
    return jpeg[:2] + b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[2:]


def test_real_photo_with_exif_orientation_gets_its_mask_on_the_polyp(shared: Path, tmp_path: Path) -> None:
    kvasir = shared / "datasets" / "Kvasir-SEG"
    name = sorted((kvasir / "images").iterdir())[3].name
    original = read_image(kvasir / "images" / name)
    polyp = read_mask(kvasir / "masks" / name)
    root = tmp_path / "project"
    (root / "images").mkdir(parents=True)
    shutil.copyfile(kvasir / "images" / name, root / "images" / "upright.jpg")
    (root / "images" / "turned.jpg").write_bytes(
        with_exif_segment((kvasir / "images" / name).read_bytes(), 6)
    )
    shown = np.rot90(polyp, k=-1)  # the polyp as a viewer shows the turned photo
    rows, cols = np.nonzero(shown)
    box = [[float(cols.min()), float(rows.min())], [float(cols.max()), float(rows.max())]]
    write_doc(root / "annotations" / "turned.json", [shape("polyp", box, "rectangle")], "../images/turned.jpg",
              size=original.shape[:2])  # fmt: skip
    rows, cols = np.nonzero(polyp)
    upright_box = [[float(cols.min()), float(rows.min())], [float(cols.max()), float(rows.max())]]
    write_doc(root / "annotations" / "upright.json", [shape("polyp", upright_box, "rectangle")],
              "../images/upright.jpg", size=original.shape[:2])  # fmt: skip
    ds = open_dataset(root)
    turned, upright = ds[ds.ids.index("annotations/turned")], ds[ds.ids.index("annotations/upright")]
    np.testing.assert_array_equal(turned.image, np.rot90(original, k=-1))  # same pixels, turned
    np.testing.assert_array_equal(upright.image, original)
    for sample, truth in ((turned, shown), (upright, polyp)):
        assert sample.mask[truth == 1].all()  # the box covers the whole polyp of its own image
        assert sample.mask.sum() < 2.5 * truth.sum()
    assert not turned.mask[polyp == 1].all()  # the box is not where the polyp lies in the stored pixels
