"""TorchDataset: samples as tensors, splits, regions of interest, volumes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from unetzoo.data import open_dataset
from unetzoo.data.augment import build_transform
from unetzoo.data.splits import make_split
from unetzoo.data.torch_dataset import TorchDataset


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


def _identical_samples(root: Path, n: int = 4) -> Path:
    """``n`` copies of one image and mask: any difference between items comes from augmentation."""
    from PIL import Image

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
    mask = np.zeros((40, 40), np.uint8)
    mask[10:25, 5:30] = 255
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
    for i in range(n):
        Image.fromarray(image).save(root / "images" / f"{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"{i}.png")
    return root


def _volumes(root: Path, n: int = 4) -> Path:
    from unetzoo.data import write_volume

    rng = np.random.default_rng(0)
    volume = rng.normal(size=(12, 16, 16)).astype(np.float32)
    label = np.zeros((12, 16, 16), np.uint8)
    label[3:9, 4:12, 2:10] = 1
    for sub in ("images", "labels"):
        (root / sub).mkdir(parents=True)
    for i in range(n):
        write_volume(root / "images" / f"v{i}.nii.gz", volume, np.eye(4))
        write_volume(root / "labels" / f"v{i}.nii.gz", label, np.eye(4))
    return root


def _images(dataset: TorchDataset, workers: int) -> list[torch.Tensor]:
    loader = torch.utils.data.DataLoader(dataset, batch_size=1, num_workers=workers)
    return [batch["image"][0] for batch in loader]


@pytest.mark.parametrize("dims", [2, 3])
def test_workers_draw_different_augmentations_reproducibly(tmp_path: Path, dims: int) -> None:
    if dims == 2:
        ds = open_dataset(_identical_samples(tmp_path / "d"))
        transform = build_transform("heavy", size=32)
    else:
        ds = open_dataset(_volumes(tmp_path / "v"))
        transform = build_transform("heavy", size=(8, 8, 8), spatial_dims=3)
    # Unseeded: each of two workers draws its own augmentation (they once shared one state).
    first, second = _images(TorchDataset(ds, transform), workers=2)[:2]
    assert not torch.equal(first, second)
    # Seeded: the same items whatever the number of workers, new ones each epoch.
    seeded = TorchDataset(ds, transform, seed=7)
    by_main, by_workers = _images(seeded, workers=0), _images(seeded, workers=2)
    assert all(torch.equal(a, b) for a, b in zip(by_main, by_workers, strict=True))
    assert len({tuple(x.flatten()[:64].tolist()) for x in by_main}) == len(by_main)
    seeded.set_epoch(1)
    assert not any(torch.equal(a, b) for a, b in zip(by_main, _images(seeded, workers=0), strict=True))


def test_pad_collate_pads_ragged_batches_and_marks_the_padding() -> None:
    from unetzoo.data.torch_dataset import pad_collate

    items = [
        {"image": torch.ones(3, 4, 5), "mask": torch.ones(4, 5, dtype=torch.long), "id": "a"},
        {"image": torch.ones(3, 6, 3), "mask": torch.ones(6, 3, dtype=torch.long), "id": "b",
         "roi": torch.tensor([[True, False, True]] * 6)},
    ]  # fmt: skip
    batch = pad_collate(items)
    assert (
        batch["image"].shape == (2, 3, 6, 5)
        and batch["mask"].shape == (2, 6, 5)
        and batch["id"] == ["a", "b"]
    )
    assert int(batch["roi"][0].sum()) == 20 and int(batch["roi"][1].sum()) == 12
    assert float(batch["image"][0, :, 4:].abs().sum()) == 0 and int(batch["mask"][1, :, 3:].sum()) == 0


class _WithPid(TorchDataset):
    """Items that say which process read them."""

    def __getitem__(self, index: int) -> dict:
        return {**super().__getitem__(index), "pid": os.getpid()}


def test_the_training_loader_keeps_its_workers_and_augments_each_epoch_as_that_epoch(tmp_path: Path) -> None:
    from unetzoo.training.data import EpochBatches, close_loader, make_loader

    seeded = _WithPid(
        open_dataset(_identical_samples(tmp_path / "d")), build_transform("heavy", size=32), seed=3
    )
    batches = EpochBatches(batch_size=3)
    loader = make_loader(seeded, batches, workers=1, pin_memory=False)
    order = [2, 0, 3, 1]
    epochs, pids = [], set()
    for epoch in (0, 1, 1):  # epoch 1 twice: a resumed epoch reads the same items again
        batches.start(epoch, order)
        assert len(loader) == 2
        got = list(loader)
        assert [len(b["id"]) for b in got] == [3, 1]
        epochs.append(torch.cat([b["image"] for b in got]))
        pids |= {int(p) for b in got for p in b["pid"]}
    close_loader(loader)
    assert len(pids) == 1 and os.getpid() not in pids  # one worker, started once
    for epoch, images in zip((0, 1), epochs, strict=False):
        seeded.set_epoch(epoch)
        expected = torch.stack([seeded[i]["image"] for i in order])
        assert torch.equal(images, expected)  # as the main process reads epoch `epoch`
    assert not torch.equal(epochs[0], epochs[1]) and torch.equal(epochs[1], epochs[2])


# OpenCV's thread pool is started in the parent (a large resize), then a loader is made and
# its worker calls cv2.setNumThreads, as a dataset plugin or a worker_init_fn may.
OPENCV_IN_WORKER = """
import cv2, numpy as np, torch
from unetzoo.training.data import make_loader

cv2.resize(np.zeros((3000, 3000, 3), np.uint8), (1500, 1500))


class SetsThreads(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        cv2.setNumThreads(1)
        return {"id": str(i), "image": torch.zeros(1, 4, 4), "mask": torch.zeros(1, 4, 4)}


print(sum(len(b["image"]) for b in make_loader(SetsThreads(), 2, workers=1, pin_memory=False)))
"""


def test_a_worker_forked_after_opencv_started_its_threads_does_not_hang() -> None:
    import signal
    import subprocess
    import sys

    from tests.training_utils import REPO

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("OMP_NUM_THREADS", None)  # the default threads, as a user runs it
    proc = subprocess.Popen([sys.executable, "-c", OPENCV_IN_WORKER], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the hung worker too
        proc.communicate()
        pytest.fail("the worker hung in cv2.setNumThreads (no end within 120 s)")
    assert proc.returncode == 0, err[-2000:]
    assert out.split() == ["4"]
