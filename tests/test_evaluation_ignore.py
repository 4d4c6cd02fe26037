"""Evaluation leaves a dataset's ignore-index pixels out of every score (LabelMe ``__ignore__``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from unetzoo import create_model, save_pretrained
from unetzoo.data import open_dataset
from unetzoo.evaluation import evaluate, load_source

PROJECT = Path(__file__).parent / "data" / "labelme" / "project"


def test_ignored_pixels_count_nowhere(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(PROJECT, project)
    (project / "annotations" / "nested" / "scan.json").unlink()  # grey; the colour photos remain
    dataset = open_dataset(project)
    assert dataset.ignore_index == 255
    masks = [dataset[i].mask for i in range(len(dataset))]
    assert any((m == 255).any() for m in masks), "the fixture must hold __ignore__ pixels"
    # A model that says "background" everywhere: its background Dice is known from the masks alone.
    model = create_model("unet", classes=dataset.num_classes, encoder_channels=[4, 8], bottleneck_channels=8,
                         decoder_channels=[8, 4])  # fmt: skip
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([10.0] + [-10.0] * (dataset.num_classes - 1)))
    save_pretrained(model, tmp_path / "model")
    ev = evaluate(load_source(str(tmp_path / "model")), project, split="all")
    pixels = np.concatenate([m.ravel() for m in masks])
    kept = pixels[pixels != 255]
    tp, fp = int((kept == 0).sum()), int((kept != 0).sum())
    assert ev.global_scores["dice_0"] == pytest.approx(2 * tp / (2 * tp + fp))
    # counting the ignored pixels as background (or as misses) would give another value
    assert ev.global_scores["dice_0"] != pytest.approx(2 * tp / (2 * tp + fp + int((pixels == 255).sum())))
