"""The data side of a run: dataset, split, transforms, and the per-epoch sample order."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import DataError, SegmentationDataset, open_dataset
from ..data.augment import build_transform
from ..data.splits import Split, kfold_split, load_split, make_split
from ..data.torch_dataset import TorchDataset, pad_collate
from .config import ConfigError, FinetuneConfig, parse_size


def open_training_dataset(config: FinetuneConfig) -> tuple[SegmentationDataset, dict[str, int] | None]:
    """The dataset, and the per-sample class labels when ``data_args`` names a ``labels`` CSV."""
    options = dict(config.data_args)
    labels_file = options.pop("labels", None)
    dataset = open_dataset(config.data, format=config.format, **options)
    if len(dataset) == 0:
        raise DataError(f"{config.data}: the dataset has no samples")
    labels = read_labels(labels_file, dataset) if labels_file else None
    return dataset, labels


def read_labels(path: str | Path, dataset: SegmentationDataset) -> dict[str, int]:
    """``id,label`` rows (header optional) for every sample: the classification-head targets."""
    path = Path(path)
    try:
        rows = list(csv.reader(path.read_text().splitlines()))
    except OSError as exc:
        raise DataError(f"{path}: cannot read the labels file ({exc.strerror})") from exc
    labels: dict[str, int] = {}
    for n, row in enumerate(rows, start=1):
        if len(row) < 2 or (n == 1 and not row[1].strip().lstrip("-").isdigit()):
            continue
        try:
            labels[row[0].strip()] = int(row[1])
        except ValueError as exc:
            raise DataError(f"{path}: line {n}: label {row[1]!r} is not a whole number") from exc
    missing = [i for i in dataset.ids if i not in labels]
    if missing:
        raise DataError(f"{path}: no label for {len(missing)} samples, e.g. {missing[:3]}")
    return labels


def choose_split(dataset: SegmentationDataset, config: FinetuneConfig) -> Split:
    """``--split FILE``, else ``--folds K --fold I``, else the dataset's own folders, else ``--val``."""
    if config.split:
        split = load_split(config.split, dataset)
    elif config.folds:
        if config.folds > len(dataset):
            raise ConfigError(f"--folds {config.folds}: the dataset has only {len(dataset)} samples")
        split = kfold_split(dataset.ids, k=config.folds, fold=config.fold, seed=config.seed)
    else:
        split = make_split(dataset, val=config.val, seed=config.seed)
    split = {k: list(split.get(k, [])) for k in ("train", "val", "test")}
    if not split["train"]:
        raise DataError(f"{config.data}: the split has no training samples")
    if not split["val"]:
        raise DataError(
            f"{config.data}: the split has no validation samples; give --val 0.2, --folds K or a --split file"
        )
    return split


@dataclass
class DataPlan:
    """The training and validation datasets of a run and how they are batched."""

    train: TorchDataset
    val: TorchDataset
    spatial_dims: int
    val_batch_size: int


def build_datasets(dataset: SegmentationDataset, split: Split, config: FinetuneConfig,
                   preprocessing: dict[str, Any], labels: dict[str, int] | None) -> DataPlan:  # fmt: skip
    """Transforms from the options and the model's preprocessing; validation is never augmented."""
    dims = dataset.spatial_dims
    size = full_size(parse_size(config.size, "size"), dims, "size")
    crop = full_size(parse_size(config.crop, "crop"), dims, "crop")
    common = dict(spatial_dims=dims, preprocessing=preprocessing, clahe=config.clahe)
    if crop is not None:
        train_t = build_transform(config.preset, size=crop, size_mode="crop",
                                  foreground_prob=config.crop_foreground, **common)  # fmt: skip
        val_t = build_transform("none", **common)
        if dims == 3:
            _check_crop_fits(dataset, crop)
    elif size is not None:
        mode = "resize" if dims == 2 else "center"
        train_t = build_transform(config.preset, size=size, size_mode=mode, **common)
        val_t = build_transform("none", size=size, size_mode=mode, **common)
    else:
        train_t = build_transform(config.preset, **common)
        val_t = build_transform("none", **common)
    # Each repeat is its own index, so it gets its own crop and augmentation draw.
    train = LabelledDataset(dataset, train_t, list(split["train"]) * config.repeats, seed=config.seed, labels=labels)
    val = LabelledDataset(dataset, val_t, split["val"], seed=config.seed, labels=labels)
    if config.drop_last and config.batch_size > len(train):
        raise ConfigError(
            f"--batch-size {config.batch_size} is larger than the training set ({len(train)} samples) "
            "and the last incomplete batch is dropped; lower --batch-size"
        )
    val_bs = config.val_batch_size or (1 if crop is not None else config.batch_size)
    return DataPlan(train, val, dims, val_bs)


def full_size(dims: tuple[int, ...] | None, spatial_dims: int, option: str) -> tuple[int, ...] | None:
    """``dims`` with one value repeated over ``spatial_dims``; another count than that is a ConfigError."""
    if dims is None:
        return None
    if len(dims) == 1:
        return dims * spatial_dims
    if len(dims) != spatial_dims:
        raise ConfigError(f"--{option} {'x'.join(map(str, dims))}: the dataset is {spatial_dims}D; "
                          f"give {spatial_dims} sizes")  # fmt: skip
    return dims


def _check_crop_fits(dataset: SegmentationDataset, crop: tuple[int, ...]) -> None:
    """A 3D crop larger than a volume in every sample would only train on padding: refuse it."""
    sample = dataset[0]
    shape = sample.mask.shape if sample.mask is not None else sample.image.shape[:3]
    if any(c > s for c, s in zip(crop, shape, strict=True)):
        raise ConfigError(
            f"--crop {'x'.join(map(str, crop))} is larger than volume {sample.id} "
            f"({'x'.join(map(str, shape))}); choose a crop within the volume"
        )


class LabelledDataset(TorchDataset):
    """A :class:`TorchDataset` whose items also carry ``label`` (the sample's class) when known."""

    def __init__(self, *args, labels: dict[str, int] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.labels = labels

    def __getitem__(self, index: int) -> dict:
        item = super().__getitem__(index)
        if self.labels is not None:
            item["label"] = torch.tensor(self.labels[item["id"]], dtype=torch.long)
        return item


def epoch_order(n: int, seed: int, epoch: int, world: int, rank: int, batch: int, drop_last: bool) -> list[int]:
    """This process's sample indices for one epoch, a whole number of batches.

    A permutation drawn from ``(seed, epoch)`` alone is padded by wrapping to a multiple of
    ``world`` and dealt out round-robin, so every process has the same number of batches
    and the order never depends on how many workers read it, or on a resume.
    """
    order = np.random.default_rng([seed, epoch]).permutation(n).tolist()
    per_rank = math.ceil(n / world)
    order += order[: per_rank * world - n]
    mine = order[rank::world]
    batches = len(mine) // batch if drop_last else math.ceil(len(mine) / batch)
    return mine[: batches * batch]


class EpochBatches(torch.utils.data.Sampler):
    """Batches of ``(epoch, index)`` pairs over the sample order of the current epoch.

    The loop calls :meth:`start` before each epoch with that epoch's order (from
    :func:`epoch_order`, cut where a resumed epoch goes on). Each index travels with its
    epoch, so a worker that lives across epochs augments every sample as the epoch it is
    read for (see :class:`EpochItems`), and one DataLoader serves the whole run.
    """

    def __init__(self, batch_size: int) -> None:
        self.batch_size, self.epoch, self.order = batch_size, 0, []

    def start(self, epoch: int, order: list[int]) -> None:
        self.epoch, self.order = epoch, list(order)

    def __len__(self) -> int:
        return math.ceil(len(self.order) / self.batch_size)

    def __iter__(self):
        epoch, order, size = self.epoch, self.order, self.batch_size
        for i in range(0, len(order), size):
            yield [(epoch, j) for j in order[i : i + size]]


class EpochItems(torch.utils.data.Dataset):
    """Reads ``dataset[index]`` for an ``(epoch, index)`` pair, augmented as that epoch."""

    def __init__(self, dataset: TorchDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, index = key
        self.dataset.set_epoch(epoch)
        return self.dataset[index]


def make_loader(dataset: TorchDataset, batches: int | EpochBatches, workers: int,
                pin_memory: bool) -> torch.utils.data.DataLoader:  # fmt: skip
    """A DataLoader that pads ragged batches; its workers, if any, live as long as it does.

    ``batches``: a batch size (all samples in order, as validation reads them), or an
    :class:`EpochBatches` whose order the loop sets before each epoch. Workers are started
    once, not each epoch: after a fork of a process that holds a model and its optimizer
    state, every page that training then writes is copied (copy on write), at each fork.
    """
    if workers:
        _single_threaded_opencv()
    if isinstance(batches, EpochBatches):
        source, sampling = EpochItems(dataset), {"batch_sampler": batches}
    else:
        source, sampling = dataset, {"batch_size": batches, "shuffle": False}
    return torch.utils.data.DataLoader(
        source,
        num_workers=workers,
        collate_fn=pad_collate,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
        **sampling,
    )


def close_loader(loader: torch.utils.data.DataLoader) -> None:
    """Stop a DataLoader's persistent workers now, not when it is garbage-collected.

    A later iteration starts new ones. Accelerate's prepared loaders hold the DataLoader
    whose iterator owns the workers as ``base_dataloader``.
    """
    loader = getattr(loader, "base_dataloader", loader)
    iterator = getattr(loader, "_iterator", None)
    if iterator is not None and hasattr(iterator, "_shutdown_workers"):
        iterator._shutdown_workers()
    loader._iterator = None


def _single_threaded_opencv() -> None:
    """OpenCV on one thread in this process, before DataLoader workers are forked from it.

    A forked worker inherits OpenCV's thread pool as the parent left it, without its threads;
    its first call that touches the pool (``cv2.setNumThreads``, a large resize) then waits
    forever on them. That hung every run whose parent had used OpenCV on a large image (a
    full-size DRIVE validation image) at the start of its second epoch. With one thread
    there is no pool to inherit, and the workers, which inherit the setting, do not
    oversubscribe the cores the training threads need.
    """
    import cv2

    if cv2.getNumThreads() != 1:
        cv2.setNumThreads(1)
