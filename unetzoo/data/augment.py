"""Augmentation presets (albumentations) for 2D images and 3D volumes.

Presets: ``none``, ``light`` (flips, 90° rotations), ``standard`` (+ shift-scale-rotate,
brightness-contrast, noise or blur), ``heavy`` (+ elastic/grid/optical distortion, CLAHE or
hue-saturation, coarse dropout). Geometric transforms move image and mask together and
masks are resampled with nearest neighbour, so class ids stay exact.
"""

from __future__ import annotations

from collections.abc import Sequence

import albumentations as A
import cv2
import numpy as np

PRESETS = ("none", "light", "standard", "heavy")


def _size2(size: int | Sequence[int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def size_transforms(size: int | Sequence[int] | None, mode: str, foreground_prob: float) -> list:
    """Bring samples to ``size``: ``crop`` (pad if smaller, then a crop that keeps foreground
    with probability ``foreground_prob``), ``center`` (pad, centre crop), ``resize`` or ``pad``."""
    if size is None:
        return []
    h, w = _size2(size)
    pad = A.PadIfNeeded(min_height=h, min_width=w, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0)
    if mode == "resize":
        return [A.Resize(h, w)]
    if mode == "pad":
        return [pad]
    if mode == "center":
        return [pad, A.CenterCrop(h, w)]
    if mode == "crop":
        crops = [
            A.CropNonEmptyMaskIfExists(h, w, p=foreground_prob),
            A.RandomCrop(h, w, p=1 - foreground_prob),
        ]
        return [pad, A.OneOf([c for c in crops if c.p > 0], p=1.0)]
    raise ValueError(f"unknown size mode {mode!r}; choose crop, center, resize or pad")


def preset_2d(name: str) -> list:
    """The augmentations of a 2D preset (without sizing and normalisation)."""
    light = [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5), A.RandomRotate90(p=0.5)]
    standard = [
        *light,
        A.Affine(translate_percent=(-0.0625, 0.0625), scale=(0.9, 1.1), rotate=(-20, 20),
                 border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0, p=0.5),
        A.RandomBrightnessContrast(p=0.5),
        A.OneOf([A.GaussNoise(std_range=(0.02, 0.08)), A.GaussianBlur(blur_limit=(3, 5))], p=0.3),
    ]  # fmt: skip
    heavy = [
        *standard,
        A.OneOf([A.ElasticTransform(alpha=30, sigma=6), A.GridDistortion(), A.OpticalDistortion()], p=0.3),
        A.OneOf([A.CLAHE(), A.HueSaturationValue()], p=0.3),
        A.CoarseDropout(num_holes_range=(1, 6), hole_height_range=(0.03, 0.1), hole_width_range=(0.03, 0.1),
                        fill=0, p=0.3),
    ]  # fmt: skip
    return {"none": [], "light": light, "standard": standard, "heavy": heavy}[_check(name)]


def preset_3d(name: str) -> tuple[list, list]:
    """A 3D preset: albumentations transforms for the volume and its mask (slice-wise 2D flips and
    rotations, 3D dropout), and volume intensity transforms (albumentations' own brightness and
    noise transforms take no volumes)."""
    geometry = {
        "none": [],
        "light": [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)],
        "standard": [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5), A.RandomRotate90(p=0.5)],
    }
    geometry["heavy"] = [
        *geometry["standard"],
        A.CoarseDropout3D(num_holes_range=(1, 3), hole_depth_range=(0.05, 0.15), hole_height_range=(0.05, 0.15),
                          hole_width_range=(0.05, 0.15), fill=0, p=0.3),
    ]  # fmt: skip
    intensity = {
        "none": [],
        "light": [],
        "standard": [VolumeBrightnessContrast(p=0.5)],
        "heavy": [VolumeBrightnessContrast(p=0.5), VolumeGaussNoise(p=0.3)],
    }
    return geometry[_check(name)], intensity[name]


class VolumeBrightnessContrast:
    """``v * (1 + c) + b * range``, with ``c`` and ``b`` uniform in ``±limit``; applied with probability ``p``."""

    def __init__(self, brightness: float = 0.2, contrast: float = 0.2, p: float = 0.5) -> None:
        self.brightness, self.contrast, self.p = brightness, contrast, p

    def __call__(self, volume: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() >= self.p:
            return volume
        v = volume.astype(np.float32)
        span = float(v.max() - v.min()) or 1.0
        c, b = rng.uniform(-self.contrast, self.contrast), rng.uniform(-self.brightness, self.brightness)
        return v * (1 + c) + b * span


class VolumeGaussNoise:
    """Gaussian noise with a standard deviation of ``std`` times the volume's intensity range."""

    def __init__(self, std: tuple[float, float] = (0.02, 0.06), p: float = 0.3) -> None:
        self.std, self.p = std, p

    def __call__(self, volume: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() >= self.p:
            return volume
        v = volume.astype(np.float32)
        span = float(v.max() - v.min()) or 1.0
        return v + rng.normal(0, rng.uniform(*self.std) * span, v.shape).astype(np.float32)


class ForegroundCrop3D:
    """Pad to ``size`` where smaller, then crop a ``D×H×W`` window that contains a random
    foreground voxel with probability ``foreground_prob`` (else a uniformly random window)."""

    def __init__(self, size: tuple[int, int, int], foreground_prob: float = 0.7) -> None:
        self.size, self.foreground_prob = tuple(size), foreground_prob

    def __call__(self, volume: np.ndarray, mask: np.ndarray, rng: np.random.Generator):
        pad = [(0, max(0, s - d)) for s, d in zip(self.size, mask.shape, strict=True)]
        if any(after for _, after in pad):
            volume = np.pad(volume, pad + [(0, 0)] * (volume.ndim - 3))
            mask = np.pad(mask, pad)
        limit = np.array(mask.shape) - np.array(self.size)
        foreground = np.flatnonzero(mask) if rng.random() < self.foreground_prob else np.empty(0)
        if foreground.size:
            voxel = np.array(np.unravel_index(foreground[rng.integers(foreground.size)], mask.shape))
            start = np.clip(voxel - rng.integers(0, self.size), 0, limit)
        else:
            start = np.array([rng.integers(0, m + 1) for m in limit])
        window = tuple(slice(int(a), int(a) + s) for a, s in zip(start, self.size, strict=True))
        return volume[window], mask[window]


class VolumePipeline:
    """An optional foreground-aware crop, albumentations 3D transforms, then intensity transforms.

    Called as ``pipeline(volume=..., mask3d=...)`` and returns the same keys, like ``A.Compose``.
    """

    def __init__(
        self,
        compose: A.Compose,
        intensity: list,
        crop: ForegroundCrop3D | None = None,
        seed: int | None = None,
    ) -> None:
        self.compose, self.intensity, self.crop = compose, intensity, crop
        self.rng = np.random.default_rng(seed)

    def set_random_state(self, random_generator: np.random.Generator, py_random) -> None:
        """Draw the crop, the albumentations transforms and the intensity changes from these generators."""
        self.rng = random_generator
        self.compose.set_random_state(random_generator, py_random)

    def __call__(self, *, volume: np.ndarray, mask3d: np.ndarray) -> dict:
        if self.crop is not None:
            volume, mask3d = self.crop(volume, mask3d, self.rng)
        out = self.compose(volume=volume, mask3d=mask3d)
        for step in self.intensity:
            out["volume"] = step(out["volume"], self.rng)
        return out


def _check(name: str) -> str:
    if name not in PRESETS:
        raise ValueError(f"unknown augmentation preset {name!r}; choose one of {', '.join(PRESETS)}")
    return name


def clahe_transform() -> A.CLAHE:
    """Contrast-limited adaptive histogram equalisation as a fixed preprocessing step (clip
    limit 2, 8×8 tiles; albumentations would otherwise draw the clip limit from 1–4 per call),
    so that training, evaluation and prediction see the same image."""
    return A.CLAHE(clip_limit=(2.0, 2.0), tile_grid_size=(8, 8), p=1.0)


def build_transform(
    preset: str = "standard",
    *,
    size: int | Sequence[int] | None = None,
    size_mode: str = "crop",
    foreground_prob: float = 0.7,
    clahe: bool = False,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    scale: float = 1 / 255,
    spatial_dims: int = 2,
    preprocessing: dict | None = None,
) -> A.Compose | VolumePipeline:
    """A complete 2D or 3D pipeline: optional CLAHE, sizing, the preset, normalisation.

    Call it as ``t(image=img, mask=mask)`` in 2D and ``t(volume=vol, mask3d=mask)`` in 3D.
    ``mean``/``std`` (after multiplying by ``scale``) come from a model's preprocessing
    config: pass ``preprocessing=model.pretrained_info["preprocessing"]`` (or
    ``unetzoo.hub.default_preprocessing(model)``); without them 2D images are only scaled. Volumes are not normalised here (see
    :class:`unetzoo.data.torch_dataset.TorchDataset`, which z-scores each volume). 3D sizing pads
    and crops to a ``D×H×W`` size: a crop that keeps foreground with probability
    ``foreground_prob``, or a centre crop for ``size_mode="center"``.
    """
    if preprocessing:
        mean, std = preprocessing.get("mean", mean), preprocessing.get("std", std)
        scale = preprocessing.get("scale", scale)
        clahe = clahe or bool(preprocessing.get("clahe"))  # a model trained on CLAHE images
    steps: list = []
    if spatial_dims == 3:
        crop = None
        if size is not None:
            zyx = (size,) * 3 if isinstance(size, int) else tuple(size)
            if size_mode == "center":
                steps += [A.PadIfNeeded3D(min_zyx=zyx, fill=0, fill_mask=0), A.CenterCrop3D(size=zyx)]
            elif size_mode == "crop":
                crop = ForegroundCrop3D(zyx, foreground_prob)
            else:
                raise ValueError(f"3D sizing is 'crop' or 'center', got {size_mode!r}")
        geometry, intensity = preset_3d(preset)
        return VolumePipeline(A.Compose(steps + geometry), intensity, crop)
    if clahe:
        steps.append(clahe_transform())
    steps += size_transforms(size, size_mode, foreground_prob)
    steps += preset_2d(preset)
    mean, std = (mean, std) if mean is not None and std is not None else (0.0, 1.0)
    steps.append(A.Normalize(mean=mean, std=std, max_pixel_value=1 / scale))
    return A.Compose(steps)
