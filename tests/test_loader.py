"""TorchDataset: samples as tensors, splits, regions of interest, volumes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from unetzoo.data import open_dataset
from unetzoo.data.augment import build_transform
from unetzoo.data.loader import TorchDataset
from unetzoo.data.splits import make_split


def test_drive_batches_with_roi(shared: Path) -> None:
    ds = open_dataset(shared / "datasets" / "DRIVE")
    split = make_split(ds, val=0.1)
    train = TorchDataset(ds, build_transform("standard", size=128), ids=split["train"])
    assert len(train) == 18
    loader = torch.utils.data.DataLoader(train, batch_size=4)
    batch = next(iter(loader))
    assert batch["image"].shape == (4, 3, 128, 128) and batch["image"].dtype == torch.float32
    assert batch["mask"].shape == (4, 128, 128) and batch["mask"].dtype == torch.int64
    assert batch["roi"].dtype == torch.bool and batch["id"][0].startswith("training/")
    assert not (batch["mask"].bool() & ~batch["roi"]).sum() > 0.01 * batch["mask"].sum()


def test_volume_is_z_scored(shared: Path) -> None:
    ds = open_dataset(shared / "datasets" / "mricron-ch2", format="volumes",
                      pairs=[("ch2.nii.gz", "aal.nii.gz")], values={37: 1, 38: 2})  # fmt: skip
    item = TorchDataset(ds, build_transform("light", size=(48, 48, 48), spatial_dims=3))[0]
    assert item["image"].shape == (1, 48, 48, 48) and item["mask"].shape == (48, 48, 48)
    assert abs(float(item["image"].mean())) < 1e-4 and abs(float(item["image"].std()) - 1) < 1e-3
    assert set(np.unique(item["mask"].numpy())) <= {0, 1, 2}
