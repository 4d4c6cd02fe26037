"""Mask encodings decided per dataset, colour masks and presets, and warnings that are not silent.

Every case starts from real masks in ../shared/datasets (DRIVE's vessel masks, Kvasir-SEG's
JPEG polyp masks and images) written into the encoding under test in a temporary folder; the
expected class ids come from the original 0/255 masks or from the ids painted, never from the
code under test.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from unetzoo.cli import app
from unetzoo.data import DataError, Item, Sample, SegmentationDataset, open_dataset
from unetzoo.data.io import DataWarning

# SUIM's colour code (Islam et al. 2020): class id = the RGB bits of its colour.
SUIM_TABLE = {
    (0, 0, 0): 0,  # background (waterbody)
    (0, 0, 255): 1,  # human divers
    (0, 255, 0): 2,  # plants, sea-grass
    (0, 255, 255): 3,  # wrecks, ruins
    (255, 0, 0): 4,  # robots
    (255, 0, 255): 5,  # reefs, invertebrates
    (255, 255, 0): 6,  # fish, vertebrates
    (255, 255, 255): 7,  # sea-floor, rocks
}
SUIM_FOLDERS = {"HD": 1, "PF": 2, "WR": 3, "RO": 4, "RI": 5, "FV": 6, "SR": 7}


@pytest.fixture(scope="module")
def drive(shared: Path) -> list[tuple[Path, np.ndarray]]:
    """Three DRIVE training images with their vessel masks as booleans (read from the 0/255 GIFs)."""
    root = shared / "datasets" / "DRIVE" / "training"
    pairs = []
    for n in (21, 22, 23):
        truth = np.asarray(Image.open(root / "1st_manual" / f"{n}_manual1.gif").convert("L")) > 127
        pairs.append((root / "images" / f"{n}_training.tif", truth))
    return pairs


@pytest.fixture(scope="module")
def kvasir(shared: Path) -> list[tuple[Path, Path]]:
    """Four Kvasir-SEG (image, JPEG mask) pairs."""
    root = shared / "datasets" / "Kvasir-SEG"
    images = sorted((root / "images").iterdir())[:4]
    return [(p, root / "masks" / p.name) for p in images]


def kvasir_copy(root: Path, kvasir) -> Path:
    """The Kvasir pairs copied as they are (JPEG masks) into ``root/images`` and ``root/masks``."""
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
    for image, mask in kvasir:
        shutil.copyfile(image, root / "images" / image.name)
        shutil.copyfile(mask, root / "masks" / mask.name)
    return root


def polyp(mask_path: Path) -> np.ndarray:
    """A Kvasir mask as booleans: its JPEG values thresholded at 128 (the dataset's own rule)."""
    return np.asarray(Image.open(mask_path).convert("L")) >= 128


def write(path: Path, array: np.ndarray, **save) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **save)
    return path


def drive_with_masks(root: Path, drive, encode, ext: str = ".png", **save) -> Path:
    """The DRIVE images in ``root/images`` and ``encode(truth)`` as ``root/masks/<name><ext>``."""
    for image, truth in drive:
        (root / "images").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(image, root / "images" / image.name)
        write(root / "masks" / f"{image.stem}{ext}", encode(truth), **save)
    return root


def record_warnings() -> warnings.catch_warnings:
    """A context that records warnings; with ``simplefilter("always")`` inside, repeats too."""
    return warnings.catch_warnings(record=True)


def data_warnings(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, DataWarning)]


# ----------------------------------------------------------------------------- binary at any bit depth


@pytest.mark.parametrize("level", [255, 1000, 65535])
def test_16_bit_binary_masks_read_as_binary(tmp_path: Path, drive, level: int) -> None:
    root = drive_with_masks(tmp_path, drive, lambda t: (t * level).astype(np.uint16))
    ds = open_dataset(root)
    assert ds.mask_encoding.startswith(f"binary 0/{level} (16-bit")
    assert ds.class_names == ["background", "foreground"]
    for i, (_, truth) in enumerate(drive):
        np.testing.assert_array_equal(ds[i].mask, truth.astype(np.uint8))
    explicit = open_dataset(root, mask_mode="binary")
    np.testing.assert_array_equal(explicit[1].mask, drive[1][1].astype(np.uint8))


def test_jpeg_saved_binary_masks_are_binary(tmp_path: Path, drive) -> None:
    root = drive_with_masks(tmp_path, drive, lambda t: t.astype(np.uint8) * 255, ".jpg", quality=90)
    ds = open_dataset(root)
    assert ds.mask_encoding.startswith("binary, JPEG-like noise")
    for i, (_, truth) in enumerate(drive):
        mask = ds[i].mask
        assert set(np.unique(mask)) == {0, 1}
        assert (mask != truth).mean() < 0.01  # JPEG ringing moves a few edge pixels at most
    assert ds.check() == []


def test_mixed_0_1_and_0_255_masks_read_right_with_one_warning(tmp_path: Path, drive) -> None:
    encodings = iter([255, 1, 1])
    root = drive_with_masks(tmp_path, drive, lambda t: t.astype(np.uint8) * next(encodings))
    with record_warnings() as record:
        warnings.simplefilter("always")
        ds = open_dataset(root)
        masks = [ds[i].mask for i in range(3)]
    for mask, (_, truth) in zip(masks, drive, strict=True):
        np.testing.assert_array_equal(mask, truth.astype(np.uint8))
    shown = data_warnings(record)
    assert len(shown) == 1 and "foreground value 1 where the dataset's masks use 255" in shown[0]


# ----------------------------------------------------------------------------- class ids


def three_classes(truth: np.ndarray) -> np.ndarray:
    """0 background, 1 the foreground's left half, 2 its right half."""
    ids = truth.astype(np.uint8)
    ids[:, truth.shape[1] // 2 :][truth[:, truth.shape[1] // 2 :]] = 2
    return ids


def test_0_1_2_masks_are_index_and_binary_mode_refuses_them(tmp_path: Path, drive) -> None:
    root = drive_with_masks(tmp_path, drive, three_classes)
    ds = open_dataset(root)
    assert ds.mask_encoding.startswith("index: class ids 0, 1, 2 (8-bit")
    assert ds.class_names == ["class_0", "class_1", "class_2"]
    expected = drive[0][1].astype(np.uint8)
    expected[:, 282:][drive[0][1][:, 282:]] = 2
    np.testing.assert_array_equal(ds[0].mask, expected)
    named = open_dataset(root, class_names=["bg", "left", "right"])
    assert named.class_names == ["bg", "left", "right"] and named.mask_encoding.startswith("index")
    binary = open_dataset(root, mask_mode="binary")
    with pytest.raises(DataError, match=r"masks/21_training.png: values 0, 1, 2 look like class ids.*"
                                        r"mask_mode='index'"):  # fmt: skip
        binary[0]
    result = CliRunner().invoke(app, ["check-data", str(root), "-o", 'mask_mode="binary"'],
                                env={"COLUMNS": "250"})  # fmt: skip
    assert result.exit_code == 1 and result.output.count("look like class ids") == 3, result.output
    result = CliRunner().invoke(app, ["check-data", str(root)], env={"COLUMNS": "250"})
    assert result.exit_code == 0 and "masks: index: class ids 0, 1, 2" in result.output, result.output


def test_index_mode_on_jpeg_binary_masks_warns_once(tmp_path: Path, kvasir) -> None:
    root = kvasir_copy(tmp_path / "kvasir", kvasir)
    with record_warnings() as record:
        warnings.simplefilter("always")
        ds = open_dataset(root, mask_mode="index")
        for _ in range(2):
            for i in range(len(ds)):
                ds[i]
    shown = data_warnings(record)
    assert len(shown) == 1, shown
    assert "implausibly many classes" in shown[0] and "JPEG" in shown[0] and "mask_mode='binary'" in shown[0]
    found = ds.check()
    assert [p.id for p in found] == [image.stem for image, _ in kvasir]
    assert all(p.level == "warning" and p.file.endswith(".jpg") for p in found)


def test_values_that_leave_values_unmapped_warn_with_their_share(tmp_path: Path, kvasir) -> None:
    root = kvasir_copy(tmp_path / "kvasir", kvasir)
    with record_warnings() as record:
        warnings.simplefilter("always")
        ds = open_dataset(root, values={"255": 1})  # the JSON form of -o values=...
        masks = [ds[i].mask for i in range(len(ds))]
    raw = np.asarray(Image.open(kvasir[0][1]).convert("L"))
    np.testing.assert_array_equal(masks[0], (raw == 255).astype(np.uint8))
    lost = ((raw != 0) & (raw != 255)).mean()
    assert lost > 0.001  # JPEG noise: a real share of the pixels is neither 0 nor 255
    shown = data_warnings(record)
    assert len(shown) == 1 and f"{100 * lost:.3g} % of the mask's pixels" in shown[0], shown
    assert ds.mask_encoding.startswith("index") and ds.class_names == ["class_0", "class_1"]


# ----------------------------------------------------------------------------- colour masks


def colour_dataset(root: Path, kvasir, colours: dict[tuple[int, int, int], int], ext=".png", **save) -> list:
    """Kvasir images with colour masks painted from their polyps: the polyp in the colour of id 1,
    rows 200–239 in the colour of id 2, the rest in the colour of id 0; returns the painted ids."""
    by_id = {i: c for c, i in colours.items()}
    expected = []
    for image, mask in kvasir:
        ids = polyp(mask).astype(np.uint8)
        ids[200:240] = 2
        rgb = np.zeros((*ids.shape, 3), np.uint8)
        for i, colour in by_id.items():
            rgb[ids == i] = colour
        write(root / "images" / image.name, np.asarray(Image.open(image)))
        write(root / "masks" / f"{image.stem}{ext}", rgb, **save)
        expected.append(ids)
    return expected


RED_GREEN = {(0, 0, 0): 0, (255, 0, 0): 1, (0, 255, 0): 2}


def test_colour_masks_without_a_table_get_one_built_with_a_warning(tmp_path: Path, kvasir) -> None:
    expected = colour_dataset(tmp_path, kvasir, RED_GREEN)
    with record_warnings() as record:
        warnings.simplefilter("always")
        ds = open_dataset(tmp_path)
        masks = [ds[i].mask for i in range(len(ds))]
    shown = data_warnings(record)
    assert len(shown) == 1 and "no colour table given" in shown[0], shown
    assert '-o \'colors={"#000000": 0, "#00ff00": 1, "#ff0000": 2}\'' in shown[0]
    assert ds.mask_encoding.startswith("colour: 3 colours, table built from the data")
    assert ds.class_names == ["background", "#00ff00", "#ff0000"]
    built = {0: 0, 1: 2, 2: 1}  # black first, then the colours sorted: green (0,255,0) before red
    for mask, ids in zip(masks, expected, strict=True):
        np.testing.assert_array_equal(mask, np.vectorize(built.get)(ids))
    found = ds.check()
    assert len(found) == 1 and found[0].level == "warning" and found[0].id == ""


def test_colour_table_forms_python_json_and_cli(tmp_path: Path, kvasir) -> None:
    expected = colour_dataset(tmp_path, kvasir, RED_GREEN)
    forms = [
        {(0, 0, 0): 0, (255, 0, 0): 1, (0, 255, 0): 2},
        {"#000000": 0, "#ff0000": 1, "0,255,0": 2},
        json.loads('{"0, 0, 0": 0, "#FF0000": 1, "(0, 255, 0)": 2}'),
    ]
    for colors in forms:
        with record_warnings() as record:
            warnings.simplefilter("always")
            ds = open_dataset(tmp_path, colors=colors)
            np.testing.assert_array_equal(ds[2].mask, expected[2])
        assert data_warnings(record) == [] and ds.class_names == ["class_0", "class_1", "class_2"]
    result = CliRunner().invoke(
        app, ["check-data", str(tmp_path), "-o", 'colors={"#000000": 0, "#ff0000": 1, "0,255,0": 2}'],
        env={"COLUMNS": "250"},
    )  # fmt: skip
    assert result.exit_code == 0 and "no problems found" in result.output, result.output
    assert "masks: colour: 3 colours, colors= table" in result.output
    with pytest.raises(DataError, match=r"colors=: colour 'red': write '#rrggbb' or 'r,g,b'"):
        open_dataset(tmp_path, colors={"red": 1})
    with pytest.raises(DataError, match=r"colors='pascal' is not a preset \(suim\)"):
        open_dataset(tmp_path, colors="pascal")


def test_jpeg_colour_masks_load_with_a_colour_tolerance(tmp_path: Path, kvasir) -> None:
    expected = colour_dataset(tmp_path, kvasir, RED_GREEN, ".jpg", quality=90)
    strict = open_dataset(tmp_path, colors=RED_GREEN)
    with pytest.raises(DataError, match=r"\.jpg: colours not in the class table: \[\(\d+, \d+, \d+\)"):
        strict[0]
    ds = open_dataset(tmp_path, colors=RED_GREEN, color_tolerance=127)
    assert "colours within 127 per channel accepted" in ds.mask_encoding
    for i, ids in enumerate(expected):
        assert (ds[i].mask == ids).mean() > 0.99  # JPEG blurs colours only along the edges
    tight = open_dataset(tmp_path, colors=RED_GREEN, color_tolerance=10)
    with pytest.raises(DataError) as error:
        tight[0]
    text = str(error.value)
    assert (
        text.startswith(str(tmp_path / "masks" / kvasir[0][0].stem)) and ".jpg: colours farther than " in text
    )
    assert "color_tolerance=10 (per channel)" in text and "(pixels: " in text
    with pytest.raises(DataError, match=r"color_tolerance=128 is too large.*use at most 127"):
        open_dataset(tmp_path, colors=RED_GREEN, color_tolerance=128)
    unknown = open_dataset(tmp_path)  # no table and thousands of JPEG colours: no table is guessed
    assert "no colour table (JPEG-saved or noisy masks?)" in unknown.mask_encoding
    with pytest.raises(DataError, match=r"needs a colour → class table \(colors=...\).*color_tolerance="):
        unknown[0]


def suim_bands(shape=(256, 256)) -> np.ndarray:
    """Eight horizontal bands, class ids 0..7 from the top."""
    return np.repeat(np.arange(8, dtype=np.uint8), shape[0] // 8)[:, None].repeat(shape[1], 1)


def suim_dataset(root: Path, kvasir, *, folders: bool, rgb_files: bool) -> np.ndarray:
    """Kvasir images with SUIM-coded masks (``.bmp`` as SUIM saves them): eight bands of SUIM's
    colours, and/or one binary mask folder per class code; returns the painted ids."""
    ids = suim_bands()
    by_id = {i: c for c, i in SUIM_TABLE.items()}
    rgb = np.stack([np.array(by_id[i], np.uint8) for i in ids.ravel()]).reshape(*ids.shape, 3)
    for image, _ in kvasir:
        write(root / "images" / image.name, np.asarray(Image.open(image)))
        if rgb_files:
            write(root / "masks" / f"{image.stem}.bmp", rgb)
        if folders:
            for code, cls in SUIM_FOLDERS.items():
                write(root / "masks" / code / f"{image.stem}.bmp", ((ids == cls) * 255).astype(np.uint8))
    return ids


def test_suim_preset_gives_the_papers_ids_and_names(tmp_path: Path, kvasir) -> None:
    ids = suim_dataset(tmp_path, kvasir, folders=False, rgb_files=True)
    ds = open_dataset(tmp_path, colors="suim")
    assert ds.class_names == [
        "background_waterbody", "human_divers", "plants_sea_grass", "wrecks_ruins", "robots",
        "reefs_invertebrates", "fish_vertebrates", "sea_floor_rocks",
    ]  # fmt: skip
    np.testing.assert_array_equal(ds[0].mask, ids)
    assert ds.mask_encoding.startswith("colour: 8 colours, preset 'suim'")
    with record_warnings() as record:
        warnings.simplefilter("always")
        open_dataset(tmp_path)  # no table: built, with a hint at the preset
    shown = data_warnings(record)
    assert len(shown) == 1 and "colors='suim' gives its class ids and names" in shown[0]


def test_suim_layout_reads_the_rgb_files_with_the_preset(tmp_path: Path, kvasir) -> None:
    ids = suim_dataset(tmp_path, kvasir, folders=True, rgb_files=True)
    with record_warnings() as record:
        warnings.simplefilter("always")
        ds = open_dataset(tmp_path)
        mask = ds[1].mask
    assert data_warnings(record) == []
    np.testing.assert_array_equal(mask, ids)
    assert ds.num_classes == 8 and ds.class_names[6] == "fish_vertebrates"
    assert "SUIM class folders" in ds.mask_encoding and "ignored" in ds.mask_encoding
    folders_only = tmp_path / "folders"
    suim_dataset(folders_only, kvasir, folders=True, rgb_files=False)
    by_code = open_dataset(folders_only, colors="suim")  # folder codes take SUIM's ids
    np.testing.assert_array_equal(by_code[0].mask, ids)
    assert by_code.class_names[1] == "human_divers"
    sorted_folders = open_dataset(folders_only)  # without the preset: sorted folder names, as before
    assert sorted_folders.class_names == ["background", "FV", "HD", "PF", "RI", "RO", "SR", "WR"]
    assert sorted_folders[0].mask[ids == SUIM_FOLDERS["FV"]].tolist() == [1] * int((ids == 6).sum())


def test_split_folders_show_each_warning_once_and_flag_different_colour_tables(
    tmp_path: Path, kvasir
) -> None:
    kvasir_copy(tmp_path / "jpeg" / "train", kvasir[:2])
    kvasir_copy(tmp_path / "jpeg" / "test", kvasir[2:])
    with record_warnings() as record:
        warnings.simplefilter("always")
        ds = open_dataset(tmp_path / "jpeg", mask_mode="index")
        for i in range(len(ds)):
            ds[i]
    shown = data_warnings(record)
    assert len(shown) == 1 and "implausibly many classes" in shown[0], shown  # once, not once per split
    assert (
        [p.id for p in ds.check()]
        == ds.ids
        == ["test/" + i.stem for i, _ in kvasir[2:]] + ["train/" + i.stem for i, _ in kvasir[:2]]
    )
    colour_dataset(tmp_path / "colour" / "train", kvasir[:2], RED_GREEN)
    colour_dataset(tmp_path / "colour" / "test", kvasir[2:], {(0, 0, 0): 0, (255, 0, 0): 1, (0, 0, 255): 2})
    with record_warnings() as record:
        warnings.simplefilter("always")
        ds = open_dataset(tmp_path / "colour")
    shown = data_warnings(record)
    assert sum("no colour table given" in w for w in shown) == 2, shown  # each split built its own table
    assert sum("different class tables" in w for w in shown) == 1, shown
    assert (
        "['background', '#0000ff', '#ff0000']" in shown[-1]
        and "['background', '#00ff00', '#ff0000']" in shown[-1]
    )
    found = ds.check()
    assert sorted(p.id for p in found) == ["", "test", "train"] and all(p.level == "warning" for p in found)
    assert ds.mask_encoding.startswith("colour: 3 colours, table built from the data")  # the same for both


# ----------------------------------------------------------------------------- check() and slices


class PluginFormat(SegmentationDataset):
    """A plugin-style format whose reader raises a KeyError for one sample."""

    format = "plugin-style"

    def __init__(self, root: Path, images: list[Path]) -> None:
        items = [Item(p.stem, {"image": p, "meta": {}}) for p in images]
        super().__init__(root, items, class_names=["background", "foreground"])

    def read(self, item: Item) -> Sample:
        from unetzoo.data import read_image

        image = read_image(item.files["image"])
        label = item.files["meta"]["label"] if item.id == "bad" else None
        return Sample(item.id, image, label)


def test_check_reports_any_exception_as_a_row_and_goes_on(tmp_path: Path, kvasir) -> None:
    images = []
    for name, (image, _) in zip(("a", "bad", "c"), kvasir, strict=False):
        images.append(write(tmp_path / f"{name}.png", np.asarray(Image.open(image))))
    truncated = write(tmp_path / "d.png", np.asarray(Image.open(kvasir[3][0])))
    truncated.write_bytes(truncated.read_bytes()[:200])
    found = PluginFormat(tmp_path, [*images, truncated]).check()
    assert [(p.id, p.level) for p in found] == [("bad", "error"), ("d", "error")]
    assert found[0].file == str(images[1]) and found[0].message == "KeyError: 'label'"
    assert found[1].file == str(truncated) and "unreadable or truncated image" in found[1].message


def test_slices_with_16_bit_labels(tmp_path: Path, shared: Path) -> None:
    source = shared / "datasets" / "isbi2012-membrane" / "train"
    truths = []
    (tmp_path / "image").mkdir()
    for n in range(3):
        shutil.copyfile(source / "image" / f"{n}.png", tmp_path / "image" / f"{n}.png")
        truth = np.asarray(Image.open(source / "label" / f"{n}.png").convert("L")) > 127
        write(tmp_path / "label" / f"{n}.png", (truth * 1000).astype(np.uint16))
        truths.append(truth)
    ds = open_dataset(tmp_path, format="slices")
    assert ds.mask_encoding.startswith("binary 0/1000 (16-bit")
    np.testing.assert_array_equal(ds[0].mask, np.stack(truths).astype(np.uint8))
