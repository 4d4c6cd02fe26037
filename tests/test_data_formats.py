"""Every format and every bad-data case, on real files written (and broken) in a temporary folder."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile
from PIL import Image
from typer.testing import CliRunner

from unetzoo.cli import app
from unetzoo.data import DataError, open_dataset, write_volume
from unetzoo.data.splits import kfold_split, load_split, make_split, ratio_split, save_split

rng = np.random.default_rng(0)


def save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def image(h: int = 24, w: int = 32) -> np.ndarray:
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


def square_mask(h: int = 24, w: int = 32, value: int = 255) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[4:12, 6:20] = value
    return m


# ----------------------------------------------------------------------------- formats


@pytest.mark.parametrize("encoding", [1, 255])
@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".tif"])
def test_paired_binary_masks_any_encoding(tmp_path: Path, encoding: int, ext: str) -> None:
    for name in ("a", "b"):
        save(tmp_path / "images" / f"{name}{ext}", image())
        save(tmp_path / "masks" / f"{name}.png" if ext != ".jpg" else tmp_path / "masks" / f"{name}.jpg",
             square_mask(value=encoding if ext != ".jpg" else 255))  # fmt: skip
    ds = open_dataset(tmp_path)
    assert ds.ids == ["a", "b"] and ds.class_names == ["background", "foreground"]
    mask = ds[0].mask
    assert set(np.unique(mask)) == {0, 1}
    assert abs(int(mask.sum()) - 8 * 14) <= (8 if ext == ".jpg" else 0)  # JPEG ringing at the edges


def test_index_masks_and_class_table(tmp_path: Path) -> None:
    m = np.zeros((24, 32), np.uint8)
    m[:8], m[8:16] = 1, 2
    save(tmp_path / "images" / "x.png", image())
    save(tmp_path / "labels" / "x.png", m)
    ds = open_dataset(tmp_path, mask_mode="index", class_names=["bg", "a", "b"])
    np.testing.assert_array_equal(ds[0].mask, m)
    bad = open_dataset(tmp_path, mask_mode="index", class_names=["bg", "a"])
    with pytest.raises(DataError, match=r"labels/x.png: mask value 2 is outside the class table \(2 classes"):
        bad[0]


def test_rgb_colour_coded_masks(tmp_path: Path) -> None:
    colours = {(0, 0, 0): 0, (255, 0, 0): 1, (0, 255, 0): 2}
    m = np.zeros((24, 32, 3), np.uint8)
    m[:8] = (255, 0, 0)
    m[8:16] = (0, 255, 0)
    save(tmp_path / "images" / "x.png", image())
    save(tmp_path / "masks" / "x.png", m)
    ds = open_dataset(tmp_path, mask_mode="rgb", colors=colours)
    mask = ds[0].mask
    assert (mask[:8] == 1).all() and (mask[8:16] == 2).all() and (mask[16:] == 0).all()
    assert ds.class_names == ["class_0", "class_1", "class_2"]
    m[20, 20] = (7, 7, 7)
    save(tmp_path / "masks" / "x.png", m)
    with pytest.raises(DataError, match=r"masks/x.png: colours not in the class table: \[\(7, 7, 7\)\]"):
        ds[0]


def test_one_binary_folder_per_class_suim_style(tmp_path: Path) -> None:
    save(tmp_path / "images" / "d1.jpg", image())
    fish, reef = square_mask(), np.zeros((24, 32), np.uint8)
    reef[16:, :] = 255
    save(tmp_path / "masks" / "FV" / "d1.bmp", fish)
    save(tmp_path / "masks" / "RI" / "d1.bmp", reef)
    ds = open_dataset(tmp_path)
    assert ds.class_names == ["background", "FV", "RI"]
    mask = ds[0].mask
    assert (mask[4:12, 6:20] == 1).all() and (mask[16:] == 2).all() and mask[0, 0] == 0


def test_pattern_pairing_with_region_of_interest(tmp_path: Path) -> None:
    for i in (21, 22):
        save(tmp_path / "images" / f"{i}_training.tif", image())
        save(tmp_path / "1st_manual" / f"{i}_manual1.gif", square_mask())
        save(tmp_path / "mask" / f"{i}_training_mask.gif", np.full((24, 32), 255, np.uint8))
    ds = open_dataset(tmp_path)
    assert ds.ids == ["21", "22"] and ds[0].roi.all() and ds[0].mask.sum() == 8 * 14
    explicit = open_dataset(tmp_path, format="paired", images="images", masks="1st_manual", key=r"^(\d+)_")
    assert explicit.ids == ["21", "22"] and explicit[0].roi is None


def labelme_doc(shapes: list, image_path: str | None, data: bytes | None, h=24, w=32) -> dict:
    doc = {"version": "5.4.1", "shapes": shapes, "imagePath": image_path, "imageHeight": h, "imageWidth": w}
    doc["imageData"] = base64.b64encode(data).decode() if data else None
    return doc


def test_labelme_polygons_rectangles_circles(tmp_path: Path) -> None:
    save(tmp_path / "a.png", image())
    buf = io.BytesIO()
    Image.fromarray(image()).save(buf, format="PNG")
    shapes = [
        {"label": "lesion", "points": [[2, 2], [10, 2], [10, 10], [2, 10]], "shape_type": "polygon"},
        {"label": "organ", "points": [[20, 4], [28, 12]], "shape_type": "rectangle"},
        {"label": "lesion", "points": [[16, 18], [19, 18]], "shape_type": "circle"},
    ]
    (tmp_path / "a.json").write_text(json.dumps(labelme_doc(shapes, "a.png", None)))
    (tmp_path / "b.json").write_text(json.dumps(labelme_doc(shapes[:1], "missing.png", buf.getvalue())))
    ds = open_dataset(tmp_path, label_map={"lesion": 1, "organ": 2})
    assert ds.format == "labelme" and ds.ids == ["a", "b"]
    m = ds[0].mask
    assert (m[2:11, 2:11] == 1).all() and (m[4:13, 20:29] == 2).all() and m[18, 16] == 1 and m[18, 12] == 0
    assert ds[1].image.shape == (24, 32, 3)  # decoded from imageData
    auto = open_dataset(tmp_path)
    assert auto.class_names == ["background", "lesion", "organ"]
    with pytest.raises(DataError, match=r"a.json: unknown label\(s\) \['organ'\]"):
        open_dataset(tmp_path, label_map={"lesion": 1})


def test_contour_text_files(tmp_path: Path) -> None:
    save(tmp_path / "images" / "eye.png", image(40, 40))
    (tmp_path / "contours").mkdir()
    np.savetxt(tmp_path / "contours" / "eye_disc.txt", [[5, 5], [30, 5], [30, 30], [5, 30]])
    np.savetxt(tmp_path / "contours" / "eye_cup.txt", [[12, 12], [20, 12], [20, 20], [12, 20]])
    ds = open_dataset(tmp_path)
    assert ds.format == "contours" and ds.class_names == ["background", "disc", "cup"]
    m = ds[0].mask
    assert m[16, 16] == 2 and m[7, 7] == 1 and m[2, 2] == 0
    (tmp_path / "contours" / "eye_cup.txt").write_text("12 12\n20\n")
    with pytest.raises(DataError, match="eye_cup.txt: not a contour file"):
        ds[0]


def nifti(path: Path, array: np.ndarray, affine: np.ndarray | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.diag([0.8, 0.8, 2.0, 1.0]) if affine is None else affine), str(path))


def msd(root: Path, n: int = 2) -> Path:
    training = []
    for i in range(n):
        vol = rng.normal(size=(10, 12, 8)).astype(np.float32)
        lab = np.zeros((10, 12, 8), np.uint8)
        lab[2:5, 3:7, 1:4] = 1
        lab[6:8, 3:5, 4:6] = 2
        nifti(root / "imagesTr" / f"case_{i}.nii.gz", vol)
        nifti(root / "labelsTr" / f"case_{i}.nii.gz", lab)
        training.append({"image": f"./imagesTr/case_{i}.nii.gz", "label": f"./labelsTr/case_{i}.nii.gz"})
    meta = {"name": "Toy", "labels": {"0": "background", "1": "liver", "2": "tumour"}, "training": training}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def test_msd_layout_keeps_affine_and_spacing(tmp_path: Path) -> None:
    ds = open_dataset(msd(tmp_path))
    assert ds.format == "volumes" and ds.class_names == ["background", "liver", "tumour"]
    s = ds[1]
    assert s.image.shape == (10, 12, 8, 1) and s.mask.shape == (10, 12, 8)
    assert s.meta["spacing"] == pytest.approx((0.8, 0.8, 2.0))  # NIfTI stores float32
    out = tmp_path / "pred.nii.gz"
    write_volume(out, s.mask, s.meta["affine"])
    np.testing.assert_array_equal(nib.load(out).affine, s.meta["affine"])


def test_paired_volume_folders_and_tiff_stacks(tmp_path: Path) -> None:
    vol = rng.integers(0, 255, (6, 16, 16), dtype=np.uint8)
    lab = (vol > 128).astype(np.uint8)
    nifti(tmp_path / "nii" / "images" / "v.nii", vol)
    nifti(tmp_path / "nii" / "labels" / "v.nii", lab)
    ds = open_dataset(tmp_path / "nii")
    assert ds.format == "volumes" and ds[0].mask.sum() == lab.sum()
    (tmp_path / "tif" / "imagesTr").mkdir(parents=True)
    (tmp_path / "tif" / "labelsTr").mkdir(parents=True)
    tifffile.imwrite(tmp_path / "tif" / "imagesTr" / "s.tif", vol)
    tifffile.imwrite(tmp_path / "tif" / "labelsTr" / "s.tif", lab)
    stack = open_dataset(tmp_path / "tif")
    np.testing.assert_array_equal(stack[0].image[..., 0], vol)
    np.testing.assert_array_equal(stack[0].mask, lab)


def test_volume_folders_open_from_a_relative_path(tmp_path: Path, monkeypatch) -> None:
    vol = rng.integers(0, 255, (6, 16, 16), dtype=np.uint8)
    nifti(tmp_path / "data" / "images" / "v.nii", vol)
    nifti(tmp_path / "data" / "labels" / "v.nii", (vol > 128).astype(np.uint8))
    monkeypatch.chdir(tmp_path)
    ds = open_dataset("data")  # the image paths were joined to the relative root twice
    assert ds.ids == ["v"] and ds[0].mask.sum() == (vol > 128).sum()


# ----------------------------------------------------------------------------- bad data


def paired(root: Path, n: int = 3) -> Path:
    for i in range(n):
        save(root / "images" / f"s{i}.png", image())
        save(root / "masks" / f"s{i}.png", square_mask())
    return root


def test_truncated_image_names_the_file(tmp_path: Path) -> None:
    root = paired(tmp_path)
    data = (root / "images" / "s1.png").read_bytes()
    (root / "images" / "s1.png").write_bytes(data[: len(data) // 2])
    ds = open_dataset(root)
    with pytest.raises(DataError, match=r"images/s1.png: unreadable or truncated image"):
        ds[1]


def test_mask_size_differs_from_image(tmp_path: Path) -> None:
    root = paired(tmp_path)
    save(root / "masks" / "s2.png", square_mask(20, 32))
    with pytest.raises(DataError, match=r"masks/s2.png: mask size \(20, 32\) differs from its image"):
        open_dataset(root)[2]


def test_image_without_mask_and_empty_folder(tmp_path: Path) -> None:
    root = paired(tmp_path / "a")
    (root / "masks" / "s0.png").unlink()
    with pytest.raises(DataError, match=r"images/s0.png: image without a mask in"):
        open_dataset(root)
    assert open_dataset(root, allow_unlabeled=True)[0].mask is None
    (tmp_path / "b" / "images").mkdir(parents=True)
    (tmp_path / "b" / "masks").mkdir()
    with pytest.raises(DataError, match=r"b/images: empty folder: no images"):
        open_dataset(tmp_path / "b")
    (tmp_path / "c").mkdir()
    with pytest.raises(DataError, match=r"c: cannot tell the dataset format from the layout"):
        open_dataset(tmp_path / "c")


def test_volume_label_shape_and_affine_mismatch(tmp_path: Path) -> None:
    root = msd(tmp_path / "shape", n=1)
    nifti(root / "labelsTr" / "case_0.nii.gz", np.zeros((10, 12, 7), np.uint8))
    with pytest.raises(DataError, match=r"labelsTr/case_0.nii.gz: label shape \(10, 12, 7\) differs"):
        open_dataset(root)[0]
    root = msd(tmp_path / "affine", n=1)
    nifti(root / "labelsTr" / "case_0.nii.gz", np.zeros((10, 12, 8), np.uint8), np.eye(4))
    with pytest.raises(DataError, match=r"labelsTr/case_0.nii.gz: label affine differs from its image"):
        open_dataset(root)[0]


def test_check_data_reports_every_problem_at_once(tmp_path: Path) -> None:
    root = paired(tmp_path, n=5)
    data = (root / "images" / "s1.png").read_bytes()
    (root / "images" / "s1.png").write_bytes(data[:100])
    save(root / "masks" / "s2.png", square_mask(10, 10))
    (root / "masks" / "s3.png").unlink()
    result = CliRunner().invoke(app, ["check-data", str(root)], env={"COLUMNS": "250"})
    assert result.exit_code == 1, result.output
    assert "3 problems" in result.output
    for text in ("unreadable or truncated image", "mask size (10, 10) differs", "image without a mask"):
        assert text in result.output
    clean = CliRunner().invoke(app, ["check-data", str(paired(tmp_path / "ok"))])
    assert clean.exit_code == 0 and "no problems found" in clean.output
    mask_mode = CliRunner().invoke(
        app, ["check-data", str(root), "-o", 'mask_mode="index"', "-o", "threshold=10"]
    )
    assert mask_mode.exit_code == 1


# ----------------------------------------------------------------------------- splits


def test_ratio_and_kfold_splits_are_seeded_and_disjoint() -> None:
    ids = [f"id{i}" for i in range(50)]
    a, b = ratio_split(ids, val=0.2, test=0.1, seed=3), ratio_split(ids, val=0.2, test=0.1, seed=3)
    assert a == b and (len(a["train"]), len(a["val"]), len(a["test"])) == (35, 10, 5)
    assert a != ratio_split(ids, val=0.2, test=0.1, seed=4)
    assert set(a["train"]) | set(a["val"]) | set(a["test"]) == set(ids)
    folds = [kfold_split(ids, k=5, fold=f, seed=1)["val"] for f in range(5)]
    assert sorted(i for fold in folds for i in fold) == sorted(ids) and all(len(f) == 10 for f in folds)
    with pytest.raises(ValueError, match="k-fold needs"):
        kfold_split(ids, k=5, fold=5)


def test_split_file_round_trip_and_stale_ids(tmp_path: Path) -> None:
    ds = open_dataset(paired(tmp_path / "d", n=6))
    split = make_split(ds, val=0.34, seed=0)
    path = save_split(tmp_path / "split.json", split, method="ratio", seed=0, dataset=str(ds.root))
    assert load_split(path, ds) == split
    assert json.loads(path.read_text())["seed"] == 0
    split["train"].append("ghost")
    save_split(path, split)
    with pytest.raises(DataError, match=r"split.json: 1 ids are not in .*ghost"):
        load_split(path, ds)


def test_palette_png_index_masks_keep_their_indices(tmp_path: Path) -> None:
    """VOC-style masks: a palette PNG whose palette indices are the class ids."""
    ids = np.zeros((24, 32), np.uint8)
    ids[:8], ids[8:16] = 1, 2
    pal = Image.fromarray(ids, mode="P")
    pal.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * 759)
    save(tmp_path / "images" / "x.png", image())
    (tmp_path / "masks").mkdir()
    pal.save(tmp_path / "masks" / "x.png")
    ds = open_dataset(tmp_path, mask_mode="index", class_names=["bg", "a", "b"])
    np.testing.assert_array_equal(ds[0].mask, ids)
