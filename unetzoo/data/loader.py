"""Samples as tensors for training: a ``torch.utils.data.Dataset`` over any dataset format."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from .base import SegmentationDataset


class TorchDataset(torch.utils.data.Dataset):
    """``dataset[i]`` as ``{"image": float (C, *S), "mask": long (*S), "id": str}`` (+ ``"roi"``).

    ``transform`` is an albumentations pipeline (see :func:`unetzoo.data.augment.build_transform`);
    ``ids`` restricts the samples (a split). 3D images are z-scored per volume after the
    transform; 2D images are expected normalised by the transform. Regions of interest go
    through the transform as a second mask.
    """

    def __init__(
        self,
        dataset: SegmentationDataset,
        transform: Callable | None = None,
        ids: Sequence[str] | None = None,
    ) -> None:
        self.dataset = dataset
        self.transform = transform
        position = {sample_id: i for i, sample_id in enumerate(dataset.ids)}
        self.indices = [position[i] for i in ids] if ids is not None else list(range(len(dataset)))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict:
        sample = self.dataset[self.indices[index]]
        image, mask, roi = sample.image, sample.mask, sample.roi
        volume = self.dataset.spatial_dims == 3
        if self.transform is not None:
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
            image = (image - image.mean()) / (image.std() + 1e-6)
        item = {
            "image": torch.from_numpy(np.ascontiguousarray(np.moveaxis(image, -1, 0))),
            "mask": torch.from_numpy(np.ascontiguousarray(mask).astype(np.int64)),
            "id": sample.id,
        }
        if roi is not None:
            item["roi"] = torch.from_numpy(np.ascontiguousarray(roi))
        return item
