"""Augmentation presets: exact class ids, image-mask alignment, mask-aware crops, 3D."""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import pytest

from unetzoo.data.augment import PRESETS, VolumePipeline, build_transform, preset_2d, preset_3d

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


# What each transform of the presets is: geometric ones move image and mask alike, pixel ones
# change the image only (dropout holes are filled in the image, never in the mask).
GEOMETRIC = {"HorizontalFlip", "VerticalFlip", "RandomRotate90", "Affine", "ElasticTransform", "GridDistortion",
             "OpticalDistortion"}  # fmt: skip
PIXEL = {"RandomBrightnessContrast", "GaussNoise", "GaussianBlur", "CLAHE", "HueSaturationValue", "CoarseDropout",
         "CoarseDropout3D"}  # fmt: skip


def leaves(transforms: list) -> list:
    """The single transforms of a list, with those inside ``OneOf`` groups taken out of them."""
    out = []
    for t in transforms:
        out += leaves(list(t.transforms)) if isinstance(t, A.OneOf) else [t]
    return out


def marker(h: int = 48, w: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A grey image (30) with one bright (200) rectangle off the centre, and its mask (1 on the rectangle)."""
    mask = np.zeros((h, w), np.uint8)
    mask[8:20, 10:26] = 1
    grey = np.where(mask > 0, 200, 30).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1), mask


def centroid(region: np.ndarray) -> np.ndarray:
    return np.argwhere(region).mean(axis=0)


def applied_alone(transform, seed: int) -> A.Compose:
    """``transform`` applied every time (``p=1``) in a pipeline of its own seeded with ``seed``."""
    transform.p = 1.0
    return A.Compose([transform], seed=seed)


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_are_made_of_known_geometric_and_pixel_transforms(preset: str) -> None:
    names = {type(t).__name__ for t in leaves(preset_2d(preset))}
    assert names <= GEOMETRIC | PIXEL, names - GEOMETRIC - PIXEL
    geometry, _ = preset_3d(preset)
    assert {type(t).__name__ for t in geometry} <= GEOMETRIC | PIXEL
    light = {"HorizontalFlip", "VerticalFlip", "RandomRotate90"}
    expected_geometry = {"none": set(), "light": light, "standard": light | {"Affine"}, "heavy": GEOMETRIC}
    assert names & GEOMETRIC == expected_geometry[preset]


@pytest.mark.parametrize("preset", PRESETS[1:])
def test_each_geometric_transform_moves_image_and_mask_together(preset: str) -> None:
    image, mask = marker()
    for transform in (t for t in leaves(preset_2d(preset)) if type(t).__name__ in GEOMETRIC):
        name = type(transform).__name__
        moved = False
        for seed in range(6):
            out = applied_alone(transform, seed)(image=image, mask=mask)
            bright, labelled = out["image"][..., 0] > 115, out["mask"] == 1
            assert set(np.unique(out["mask"])) <= {0, 1}, name
            # the marker and its mask land at the same place, to within a pixel
            assert np.abs(centroid(bright) - centroid(labelled)).max() <= 1.0, (name, seed)
            assert (bright == labelled).mean() > 0.97, (name, seed)
            moved = moved or labelled.shape != mask.shape or not np.array_equal(labelled, mask == 1)
        assert moved, f"{name} never moved the mask"


@pytest.mark.parametrize("preset", ["standard", "heavy"])
def test_pixel_transforms_leave_the_mask_unchanged(preset: str) -> None:
    image, mask = marker()
    pixel = [t for t in leaves(preset_2d(preset)) if type(t).__name__ in PIXEL]
    assert pixel
    for transform in pixel:
        changed = False
        for seed in range(6):
            out = applied_alone(transform, seed)(image=image, mask=mask)
            np.testing.assert_array_equal(out["mask"], mask, err_msg=type(transform).__name__)
            changed = changed or not np.array_equal(out["image"], image)
        assert changed, f"{type(transform).__name__} never changed the image"


@pytest.mark.parametrize("preset", PRESETS)
def test_whole_preset_keeps_the_marker_on_its_mask(preset: str) -> None:
    image, mask = marker()
    transform = build_transform(preset)
    moved = 0
    for seed in range(20):
        transform.set_random_seed(seed)
        out = transform(image=image, mask=mask)
        bright, labelled = out["image"][..., 0] > 115 / 255, out["mask"] == 1
        iou = (bright & labelled).sum() / (bright | labelled).sum()
        assert iou > 0.6, (seed, float(iou))
        moved += labelled.shape != mask.shape or not np.array_equal(labelled, mask == 1)
    assert moved == 0 if preset == "none" else moved >= 5


@pytest.mark.parametrize("preset", PRESETS[1:])
def test_3d_geometry_moves_volume_and_mask_together_and_intensity_spares_the_mask(preset: str) -> None:
    mask = np.zeros((6, 12, 16), np.uint8)
    mask[1:4, 2:5, 3:9] = 1
    volume = np.where(mask > 0, 200.0, 30.0).astype(np.float32)[..., None]
    geometry, intensity = preset_3d(preset)
    for transform in geometry:
        out = applied_alone(transform, 0)(volume=volume, mask3d=mask)
        if type(transform).__name__ in PIXEL:
            np.testing.assert_array_equal(out["mask3d"], mask)
            continue
        assert not np.array_equal(out["mask3d"], mask), type(transform).__name__
        np.testing.assert_array_equal(out["volume"][..., 0] > 115, out["mask3d"] == 1)
    for step in intensity:
        step.p = 1.0
    out = VolumePipeline(A.Compose([]), intensity, seed=0)(volume=volume, mask3d=mask)
    np.testing.assert_array_equal(out["mask3d"], mask)
    assert np.array_equal(out["volume"], volume) == (not intensity)


def test_validation_transforms_are_deterministic_and_exact() -> None:
    rng = np.random.default_rng(3)
    blocks = rng.integers(0, 256, (10, 15, 3), dtype=np.uint8).repeat(2, 0).repeat(2, 1)  # 20×30, 2×2 blocks
    labels = rng.integers(0, 3, (10, 15), dtype=np.uint8).repeat(2, 0).repeat(2, 1)
    expected = {
        "center": (blocks[2:18, 7:23] / 255, labels[2:18, 7:23], 16),
        "resize": (blocks[::2, ::2] / 255, labels[::2, ::2], (10, 15)),
        None: (blocks / 255, labels, None),
    }
    for mode, (want_image, want_mask, size) in expected.items():
        transform = build_transform("none", size=size, size_mode=mode or "crop")
        for seed in (0, 1, 2):
            transform.set_random_seed(seed)
            out = transform(image=blocks, mask=labels)
            np.testing.assert_allclose(out["image"], want_image, atol=1e-6, err_msg=str(mode))
            np.testing.assert_array_equal(out["mask"], want_mask, err_msg=str(mode))
    volume = rng.normal(size=(10, 12, 10, 1)).astype(np.float32)
    mask3d = rng.integers(0, 3, (10, 12, 10), dtype=np.uint8)
    transform = build_transform("none", size=(8, 8, 8), size_mode="center", spatial_dims=3)
    for seed in (0, 1, 2):
        transform.set_random_state(np.random.default_rng(seed), __import__("random").Random(seed))
        out = transform(volume=volume, mask3d=mask3d)
        np.testing.assert_array_equal(out["volume"], volume[1:9, 2:10, 1:9])
        np.testing.assert_array_equal(out["mask3d"], mask3d[1:9, 2:10, 1:9])


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
