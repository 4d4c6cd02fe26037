"""Samples as tensors for training: a ``torch.utils.data.Dataset`` over any dataset format."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .base import SegmentationDataset


def mix_seed(*parts: int) -> int:
    """A 63-bit seed mixed from non-negative integers, e.g. ``(run seed, epoch, sample index)``."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, np.uint64)[0]) >> 1


def seed_transform(transform: Callable, seed: int) -> None:
    """Give ``transform`` (an albumentations ``Compose`` or a volume pipeline) one fresh random state.

    One numpy and one Python generator are shared by every transform of the pipeline, so
    their draws are independent of each other (``Compose.set_random_seed`` would seed each
    child with the same number, and a horizontal and a vertical flip would always agree).
    """
    if hasattr(transform, "set_random_state"):
        transform.set_random_state(np.random.default_rng(seed), random.Random(seed))


def zscore(volume: np.ndarray) -> np.ndarray:
    """A volume scaled to mean 0 and standard deviation 1 over all its voxels, as 3D models are trained."""
    return (volume - volume.mean()) / (volume.std() + 1e-6)


class TorchDataset(torch.utils.data.Dataset):
    """``dataset[i]`` as ``{"image": float (C, *S), "mask": long (*S), "id": str}`` (+ ``"roi"``,
    and for volumes ``"spacing"``: the voxel size per axis).

    ``transform`` is an albumentations pipeline (see :func:`unetzoo.data.augment.build_transform`);
    ``ids`` restricts the samples (a split). 3D images are z-scored per volume after the
    transform; 2D images are expected normalised by the transform. Regions of interest go
    through the transform as a second mask.

    Randomness: with ``seed`` given, sample ``i`` of epoch ``e`` (see :meth:`set_epoch`) is
    augmented from a random state made of ``(seed, e, i)`` alone, whatever the worker,
    process or order that reads it, so runs repeat exactly and DataLoader workers never
    share draws. Without ``seed``, each sample draws its state from torch's generator, which
    PyTorch seeds differently in every worker and every epoch.
    """

    def __init__(
        self,
        dataset: SegmentationDataset,
        transform: Callable | None = None,
        ids: Sequence[str] | None = None,
        *,
        seed: int | None = None,
    ) -> None:
        self.dataset = dataset
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        position = {sample_id: i for i, sample_id in enumerate(dataset.ids)}
        self.indices = [position[i] for i in ids] if ids is not None else list(range(len(dataset)))

    def set_epoch(self, epoch: int) -> None:
        """Augment the next reads as epoch ``epoch`` (set before a DataLoader starts its workers)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict:
        sample = self.dataset[self.indices[index]]
        image, mask, roi = sample.image, sample.mask, sample.roi
        volume = self.dataset.spatial_dims == 3
        if self.transform is not None:
            if self.seed is None:
                seed = int(torch.randint(0, 2**62, ()).item())
            else:
                seed = mix_seed(self.seed, self.epoch, index)
            seed_transform(self.transform, seed)
            if volume:
                out = self.transform(volume=image, mask3d=mask)
                image, mask = out["volume"], out["mask3d"]
            else:
                masks = [mask] if roi is None else [mask, roi.astype(np.uint8)]
                out = self.transform(image=image, masks=masks)
                image, mask = out["image"], out["masks"][0]
                roi = out["masks"][1].astype(bool) if roi is not None else None
        image = np.asarray(image, dtype=np.float32)
        if volume:
            image = zscore(image)
        item = {
            "image": torch.from_numpy(np.ascontiguousarray(np.moveaxis(image, -1, 0))),
            "mask": torch.from_numpy(np.ascontiguousarray(mask).astype(np.int64)),
            "id": sample.id,
        }
        if roi is not None:
            item["roi"] = torch.from_numpy(np.ascontiguousarray(roi))
        if volume and sample.meta.get("spacing") is not None:
            item["spacing"] = torch.tensor([float(v) for v in sample.meta["spacing"]][:3], dtype=torch.float64)
        return item


def pad_collate(items: list[dict]) -> dict:
    """Batch samples of different sizes: pad each to the largest size in the batch (bottom/right).

    Images are padded with zeros, masks with 0, and every item gets a ``roi`` that is ``False``
    on the padding (and keeps its own region of interest), so metrics never count padded pixels.
    Samples that already share one size are stacked as the default collate would; other
    entries (a class ``label``) go through the default collate.
    """
    shapes = [tuple(it["mask"].shape) for it in items]
    size = [max(s[d] for s in shapes) for d in range(len(shapes[0]))]
    with_roi = any("roi" in it for it in items) or len(set(shapes)) > 1
    batch: dict = {"id": [it["id"] for it in items]}
    for key in items[0].keys() - {"id", "image", "mask", "roi"}:
        batch[key] = torch.utils.data.default_collate([it[key] for it in items])
    images, masks, rois = [], [], []
    for it in items:
        pad: list[int] = []
        for have, want in zip(reversed(it["mask"].shape), reversed(size), strict=True):
            pad += [0, want - have]
        images.append(F.pad(it["image"], pad))
        masks.append(F.pad(it["mask"], pad))
        if with_roi:
            roi = it.get("roi", torch.ones_like(it["mask"], dtype=torch.bool))
            rois.append(F.pad(roi, pad, value=False))
    batch["image"], batch["mask"] = torch.stack(images), torch.stack(masks)
    if with_roi:
        batch["roi"] = torch.stack(rois)
    return batch
