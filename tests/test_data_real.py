"""Dataset formats on the real data in ../shared/datasets: counts, pairing, class ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unetzoo.data import open_dataset
from unetzoo.data.splits import make_split


@pytest.fixture(scope="module")
def datasets(shared: Path) -> Path:
    return shared / "datasets"


def test_drive_pairs_with_field_of_view(datasets: Path) -> None:
    ds = open_dataset(datasets / "DRIVE")
    assert len(ds) == 40 and ds.format == "paired"
    assert sum(v == "train" for v in ds.given_split.values()) == 20
    assert sum(v == "test" for v in ds.given_split.values()) == 20
    sample = ds[ds.ids.index("training/21")]
    assert sample.meta["image_path"].endswith("training/images/21_training.tif")
    assert sample.meta["mask_path"].endswith("training/1st_manual/21_manual1.gif")
    assert sample.meta["roi_path"].endswith("training/mask/21_training_mask.gif")
    assert sample.image.shape == (584, 565, 3) and sample.mask.shape == (584, 565)
    assert set(np.unique(sample.mask)) == {0, 1}
    assert sample.roi.dtype == bool and 0.6 < sample.roi.mean() < 0.75  # the circular field of view
    assert sample.mask[sample.roi].sum() > 0.99 * sample.mask.sum()  # vessels lie in the field of view
    split = make_split(ds, val=0.1, seed=0)
    assert len(split["test"]) == 20 and len(split["train"]) == 18 and len(split["val"]) == 2


def test_isbi_slices_as_pairs_and_as_one_volume(datasets: Path) -> None:
    ds = open_dataset(datasets / "isbi2012-membrane")
    assert len(ds) == 30 and ds.ids[:3] == ["train/0", "train/1", "train/2"]
    sample = ds[ds.ids.index("train/10")]
    assert sample.image.shape == (512, 512, 1)
    assert set(np.unique(sample.mask)) == {0, 1}  # 1 = cell interior (255), 0 = membrane
    volume = open_dataset(datasets / "isbi2012-membrane" / "train", format="slices")
    assert len(volume) == 1 and volume.spatial_dims == 3
    v = volume[0]
    assert v.image.shape == (30, 512, 512, 1) and v.mask.shape == (30, 512, 512)
    np.testing.assert_array_equal(v.image[10], sample.image)  # natural order: slice 10 is 10.png
    np.testing.assert_array_equal(v.mask[10], sample.mask)


def test_kvasir_998_pairs_jpeg_masks_thresholded(datasets: Path) -> None:
    ds = open_dataset(datasets / "Kvasir-SEG")
    assert len(ds) == 998 and ds.format == "paired"
    for i in (0, 500, 997):
        sample = ds[i]
        assert sample.image.shape == (256, 256, 3)
        assert set(np.unique(sample.mask)) <= {0, 1} and sample.mask.any()


def test_mricron_t1_with_hippocampus_labels(datasets: Path) -> None:
    ds = open_dataset(
        datasets / "mricron-ch2", format="volumes", pairs=[("ch2.nii.gz", "aal.nii.gz")],
        values={37: 1, 38: 2}, class_names=["background", "hippocampus_l", "hippocampus_r"],
    )  # fmt: skip
    sample = ds[0]
    assert sample.image.shape == (181, 217, 181, 1) and sample.mask.shape == (181, 217, 181)
    counts = np.bincount(sample.mask.ravel(), minlength=3)
    assert counts[1] == 7469 and counts[2] == 7606 and len(counts) == 3
    assert sample.meta["spacing"] == (1.0, 1.0, 1.0) and sample.meta["affine"].shape == (4, 4)
    # left hippocampus on the left of the head: smaller world x than the right one
    ijk_l = np.argwhere(sample.mask == 1).mean(0)
    ijk_r = np.argwhere(sample.mask == 2).mean(0)
    x_l, x_r = (sample.meta["affine"] @ np.r_[ijk_l, 1])[0], (sample.meta["affine"] @ np.r_[ijk_r, 1])[0]
    assert x_l < x_r


def test_check_data_on_real_sets_finds_nothing(datasets: Path) -> None:
    ds = open_dataset(datasets / "DRIVE", strict=False)
    assert ds.check() == []
