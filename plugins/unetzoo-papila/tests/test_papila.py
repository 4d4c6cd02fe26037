"""unetzoo-papila, used through unetzoo's public API once installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unetzoo.data import DataError, list_datasets, open_dataset


def make_papila(root: Path) -> Path:
    """Two fundus images; disc a square 10..50, cup a square 20..40 (expert 1), shifted for expert 2."""
    (root / "FundusImages").mkdir(parents=True)
    contours = root / "ExpertsSegmentations" / "Contours"
    contours.mkdir(parents=True)
    for name in ("RET002OD", "RET002OS"):
        Image.fromarray(np.full((64, 80, 3), 90, np.uint8)).save(root / "FundusImages" / f"{name}.jpg")
        for expert, shift in ((1, 0), (2, 5)):
            disc = np.array([[10, 10], [50, 10], [50, 50], [10, 50]]) + shift
            cup = np.array([[20, 20], [40, 20], [40, 40], [20, 40]]) + shift
            np.savetxt(contours / f"{name}_disc_exp{expert}.txt", disc, fmt="%.1f")
            np.savetxt(contours / f"{name}_cup_exp{expert}.txt", cup, fmt="%.1f")
    return root


def test_registered_and_detected(tmp_path: Path) -> None:
    assert "papila" in list_datasets()
    ds = open_dataset(make_papila(tmp_path / "PAPILA"))
    assert ds.format == "papila" and ds.ids == ["RET002OD", "RET002OS"]
    assert ds.class_names == ["background", "disc", "cup"]
    sample = ds[0]
    assert sample.image.shape == (64, 80, 3) and sample.mask.shape == (64, 80)
    assert sample.mask[30, 30] == 2 and sample.mask[12, 12] == 1 and sample.mask[5, 5] == 0
    assert (sample.mask == 2).sum() == 21 * 21  # filled polygon, edges included
    assert (sample.mask >= 1).sum() == 41 * 41


def test_expert_two(tmp_path: Path) -> None:
    ds = open_dataset(make_papila(tmp_path / "P"), format="papila", expert=2)
    assert ds[1].mask[12, 12] == 0 and ds[1].mask[16, 16] == 1
    with pytest.raises(ValueError, match="experts 1 and 2"):
        open_dataset(tmp_path / "P", format="papila", expert=3)


def test_missing_contours_name_the_image(tmp_path: Path) -> None:
    root = make_papila(tmp_path / "P")
    for f in (root / "ExpertsSegmentations" / "Contours").glob("RET002OS_*"):
        f.unlink()
    with pytest.raises(DataError, match="RET002OS.jpg: image without contours"):
        open_dataset(root)
