"""NIfTI label volumes keep their values (never wrapped into a byte); MSD paths stay inside the dataset."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.conftest import error_with_and_without
from unetzoo.data import DataError, open_dataset

# A block around the left hippocampus (AAL value 37) of the mricron ch2 volume.
BLOCK = (slice(51, 81), slice(85, 126), slice(44, 84))


@pytest.fixture(scope="module")
def ch2_block(shared: Path) -> tuple[nib.Nifti1Image, nib.Nifti1Image]:
    """The T1 image and the AAL atlas cropped to ``BLOCK`` (affines kept consistent by nibabel)."""
    folder = shared / "datasets" / "mricron-ch2"
    t1, atlas = nib.load(folder / "ch2.nii.gz"), nib.load(folder / "aal.nii.gz")
    return t1.slicer[BLOCK], atlas.slicer[BLOCK]


def save_pair(root: Path, t1: nib.Nifti1Image, label: np.ndarray) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    nib.save(t1, root / "t1.nii.gz")
    nib.save(nib.Nifti1Image(label, t1.affine), root / "label.nii.gz")
    return root


def open_pair(root: Path, **options):
    return open_dataset(root, format="volumes", pairs=[("t1.nii.gz", "label.nii.gz")], **options)


def test_label_value_300_is_refused_not_wrapped(ch2_block, tmp_path: Path) -> None:
    t1, atlas = ch2_block
    label = np.asarray(atlas.dataobj).astype(np.int16)
    assert (label == 37).sum() > 1000
    label[label == 37] = 300  # 300 would wrap to 44 through uint8
    ds = open_pair(save_pair(tmp_path, t1, label))
    with pytest.raises(
        DataError, match=r"label.nii.gz: label values \[300\] do not fit .* give values=\{300: 1"
    ):
        ds[0]


def test_values_map_300_to_a_class(ch2_block, tmp_path: Path) -> None:
    t1, atlas = ch2_block
    original = np.asarray(atlas.dataobj)
    label = original.astype(np.int16)
    label[label == 37] = 300
    sample = open_pair(save_pair(tmp_path, t1, label), values={300: 1, 38: 2})[0]
    expected = np.zeros(original.shape, np.uint8)
    expected[original == 37] = 1
    expected[original == 38] = 2
    np.testing.assert_array_equal(sample.mask, expected)
    assert sample.image.shape == (*original.shape, 1)


def test_negative_and_fractional_labels_are_refused(ch2_block, tmp_path: Path) -> None:
    t1, atlas = ch2_block
    label = np.asarray(atlas.dataobj).astype(np.int16)
    label[0, 0, :3] = -1
    with pytest.raises(DataError, match=r"label.nii.gz: label values \[-1\] do not fit"):
        open_pair(save_pair(tmp_path / "negative", t1, label))[0]
    fractional = np.asarray(atlas.dataobj).astype(np.float32)
    fractional[1, 1, 1] = 37.5
    with pytest.raises(DataError, match=r"label.nii.gz: label values \[37.5\] are not whole numbers"):
        open_pair(save_pair(tmp_path / "fraction", t1, fractional), values={37: 1})[0]


def test_whole_valued_float_labels_are_class_ids(ch2_block, tmp_path: Path) -> None:
    t1, atlas = ch2_block
    original = np.asarray(atlas.dataobj)
    sample = open_pair(save_pair(tmp_path, t1, original.astype(np.float32)))[0]
    np.testing.assert_array_equal(sample.mask, original)  # values 0..116 are kept as they are


def test_values_must_map_to_byte_class_ids(tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match=r"values= maps to class ids \[1, 300\]; class ids must lie in 0..255"
    ):
        open_dataset(tmp_path, format="volumes", pairs=[], values={5: 1, 6: 300})


# ----------------------------------------------------------------------------- MSD dataset.json paths


def msd(root: Path, training: list[dict]) -> Path:
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(exist_ok=True)
    volume = nib.Nifti1Image(np.zeros((4, 5, 6), np.float32), np.eye(4))
    nib.save(volume, root / "imagesTr" / "a.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6), np.uint8), np.eye(4)), root / "labelsTr" / "a.nii.gz")
    meta = {"labels": {"0": "background", "1": "x"}, "training": training}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


@pytest.mark.parametrize("escape", ["../outside/b.nii.gz", "imagesTr/../../outside/b.nii.gz", "ABSOLUTE"])
def test_msd_paths_outside_the_folder_are_refused_alike_whether_they_exist(
    tmp_path: Path, escape: str
) -> None:
    outside = tmp_path / "outside" / "b.nii.gz"
    escape = str(outside) if escape == "ABSOLUTE" else escape
    good = {"image": "./imagesTr/a.nii.gz", "label": "./labelsTr/a.nii.gz"}
    root = msd(tmp_path / "task", [good, {"image": escape, "label": "./labelsTr/a.nii.gz"}])

    def create(path: Path) -> None:
        path.parent.mkdir()
        nib.save(nib.Nifti1Image(np.zeros((4, 5, 6), np.float32), np.eye(4)), path)

    message = error_with_and_without(outside, create, lambda: open_dataset(root))
    assert "task/dataset.json: path" in message and repr(escape) in message
    lenient = open_dataset(root, strict=False)
    assert lenient.ids == ["a"] and [Path(p.file).name for p in lenient.problems] == ["dataset.json"]


def test_msd_label_path_outside_and_malformed_entries(tmp_path: Path) -> None:
    root = msd(
        tmp_path / "task", [{"image": "./imagesTr/a.nii.gz", "label": "../../etc/passwd"}, {"image": 3}]
    )
    ds = open_dataset(root, strict=False)
    assert ds.ids == []
    messages = [p.message for p in ds.problems]
    assert "leads outside the dataset folder" in messages[0] and "'../../etc/passwd'" in messages[0]
    assert "training[1] is not an {'image': path, 'label': path} entry" in messages[1]
    (root / "dataset.json").write_text("{not json")
    with pytest.raises(DataError, match=r"task/dataset.json: not a readable dataset.json"):
        open_dataset(root)
