"""Augmentation presets: exact class ids, image-mask alignment, mask-aware crops, 3D."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from unetzoo.data.augment import PRESETS, build_transform

IDS = {0, 1, 2, 5}


def blobs(h: int = 96, w: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A grey image whose brightness encodes its mask: 30 on background, 200 on the blobs.

    The blobs are asymmetric, so a flip or rotation applied to only one of the two shows.
    """
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), np.uint8)
    for cls in (1, 2, 5):
        for _ in range(2):
            cy, cx = rng.integers(10, h - 10), rng.integers(10, w - 10)
            cv2.ellipse(mask, (int(cx), int(cy)), (int(rng.integers(4, 14)), int(rng.integers(3, 8))),
                        float(rng.integers(0, 180)), 0, 360, cls, -1)  # fmt: skip
    grey = np.where(mask > 0, 200, 30).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1), mask


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("size_mode", ["crop", "resize", "center"])
def test_presets_keep_exact_class_ids(preset: str, size_mode: str) -> None:
    transform = build_transform(preset, size=64, size_mode=size_mode)
    for seed in range(8):
        image, mask = blobs(seed=seed)
        out = transform(image=image, mask=mask)
        assert out["image"].shape == (64, 64, 3) and out["mask"].shape == (64, 64)
        assert set(np.unique(out["mask"])) <= IDS


@pytest.mark.parametrize("preset", PRESETS)
def test_image_and_mask_stay_aligned(preset: str) -> None:
    transform = build_transform(preset, size=80, size_mode="crop", foreground_prob=1.0)
    agreement = []
    for seed in range(10):
        image, mask = blobs(seed=seed)
        out = transform(image=image, mask=mask)
        bright = out["image"][..., 0] > 115 / 255  # normalised to [0, 1]: 30/255 vs 200/255
        agreement.append(((out["mask"] > 0) == bright).mean())
    # geometry moves both together; blur, noise, CLAHE and dropout holes only touch a few pixels
    assert np.mean(agreement) > 0.95 and min(agreement) > 0.85


def test_misaligned_pipeline_would_be_caught() -> None:
    image, mask = blobs(seed=1)
    flipped = image[:, ::-1]
    assert ((mask > 0) == (flipped[..., 0] > 115)).mean() < 0.95


def test_mask_aware_crop_keeps_foreground() -> None:
    image = np.full((512, 512, 3), 30, np.uint8)
    mask = np.zeros((512, 512), np.uint8)
    mask[400:410, 100:110] = 1
    always = build_transform("none", size=64, foreground_prob=1.0)
    assert all(always(image=image, mask=mask)["mask"].any() for _ in range(20))
    never = build_transform("none", size=64, foreground_prob=0.0)
    hits = sum(never(image=image, mask=mask)["mask"].any() for _ in range(50))
    assert hits < 10  # a plain random crop rarely finds a 10×10 object in 512×512


def test_small_images_are_padded_and_normalised_from_model_config() -> None:
    image = np.full((20, 30, 3), 255, np.uint8)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    out = build_transform("none", size=32, mean=mean, std=std)(image=image, mask=np.ones((20, 30), np.uint8))
    assert out["image"].shape == (32, 32, 3)
    np.testing.assert_allclose(out["image"][16, 16], (1 - np.array(mean)) / np.array(std), rtol=1e-5)
    assert out["mask"].sum() == 20 * 30  # padding adds background only


def test_clahe_preprocessing_and_unknown_preset() -> None:
    image, mask = blobs()
    out = build_transform("none", clahe=True)(image=image, mask=mask)
    assert out["image"].shape == image.shape
    with pytest.raises(ValueError, match="unknown augmentation preset 'extreme'"):
        build_transform("extreme")


@pytest.mark.parametrize("preset", PRESETS)
def test_3d_presets_keep_ids_and_alignment(preset: str) -> None:
    mask = np.zeros((20, 40, 36), np.uint8)
    mask[3:9, 5:20, 4:12], mask[10:18, 22:35, 20:30], mask[12:15, 8:12, 25:33] = 1, 2, 5
    volume = np.where(mask > 0, 200, 30).astype(np.uint8)[..., None]
    transform = build_transform(preset, size=(16, 32, 32), spatial_dims=3)
    for _ in range(5):
        out = transform(volume=volume, mask3d=mask)
        vol, m = out["volume"], out["mask3d"]
        assert vol.shape[:3] == (16, 32, 32) and m.shape == (16, 32, 32)
        assert set(np.unique(m)) <= IDS
        agree = ((m > 0) == (vol[..., 0] > 115)).mean()
        assert agree > (0.9 if preset == "heavy" else 0.97), float(agree)


def test_normalisation_from_a_model_config() -> None:
    import unetzoo
    from unetzoo.hub import default_preprocessing

    model = unetzoo.create_model("unet_resnet34", in_channels=3)
    t = build_transform("none", preprocessing=default_preprocessing(model))
    out = t(image=np.full((8, 8, 3), 255, np.uint8), mask=np.zeros((8, 8), np.uint8))
    np.testing.assert_allclose(
        out["image"][0, 0], (1 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225]), rtol=1e-5
    )


def test_3d_crop_keeps_small_foreground() -> None:
    mask = np.zeros((60, 80, 70), np.uint8)
    mask[50:53, 5:8, 60:63] = 2
    volume = mask[..., None].astype(np.float32)
    keep = build_transform("none", size=(16, 16, 16), spatial_dims=3, foreground_prob=1.0)
    assert all((keep(volume=volume, mask3d=mask)["mask3d"] == 2).any() for _ in range(20))
    plain = build_transform("none", size=(16, 16, 16), spatial_dims=3, foreground_prob=0.0)
    assert sum((plain(volume=volume, mask3d=mask)["mask3d"] == 2).any() for _ in range(40)) < 10
    small = plain(volume=volume[:10], mask3d=mask[:10])  # padded where smaller than the crop
    assert small["volume"].shape[:3] == (16, 16, 16)
