"""Attention maps through hooks, error maps, and `unetzoo explain` on real images and volumes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import unetzoo
from tests.training_utils import FAST, TINY_UNET, invoke, make_volumes
from unetzoo import viz
from unetzoo.cli import app
from unetzoo.inference.attention import attention_maps

WIDTHS = dict(encoder_channels=[4, 8, 8, 16], bottleneck_channels=16, decoder_channels=[8, 8, 8, 4])


def _constant_bias(conv: torch.nn.Module, value: float) -> None:
    torch.nn.init.zeros_(conv.weight)
    if conv.bias is not None:
        torch.nn.init.constant_(conv.bias, value)


def test_attention_gate_maps_per_decoder_level_without_changing_the_output() -> None:
    model = unetzoo.create_model("attn_unet", **WIDTHS).eval()
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        plain = model(x)
    # psi's convolution with zero weights and bias 2, then an eval BatchNorm with fresh
    # statistics: every coefficient is sigmoid(2 / sqrt(1 + eps)) whatever the input.
    for level in range(4):
        _constant_bias(model.decoder[level].gate.psi.conv, 2.0)
    logits, maps = attention_maps(model, x)
    assert list(maps) == [f"decoder.{i}.gate" for i in range(4)]
    # one map per level at the skip connection's resolution: 1/8, 1/4, 1/2, 1 of the input
    assert [tuple(m.shape) for m in maps.values()] == [(2, 1, 64 // 2**k, 48 // 2**k) for k in (3, 2, 1, 0)]
    expected = 1 / (1 + math.exp(-2 / math.sqrt(1 + 1e-5)))
    for m in maps.values():
        torch.testing.assert_close(m, torch.full_like(m, expected))
    assert logits.shape == plain.shape
    # the hooks are gone afterwards, and they never changed what the model computes
    assert not any(module._forward_hooks for module in model.modules())
    model2 = unetzoo.create_model("attn_unet", **WIDTHS).eval()
    torch.testing.assert_close(attention_maps(model2, x)[0], model2(x))


def test_cbam_spatial_attention_maps_in_3d() -> None:
    model = unetzoo.create_model("attn_unet3d_cbam", **WIDTHS, in_channels=1).eval()
    for name, module in model.named_modules():
        if name.endswith(".spatial"):
            _constant_bias(module.conv, 0.0)  # sigmoid(0): every coefficient 1/2
    _, maps = attention_maps(model, torch.randn(1, 1, 16, 16, 16))
    spatial = [n for n in maps if n.endswith(".spatial")]
    assert spatial and all(n.startswith(("encoder.", "decoder.")) for n in spatial)
    for name in spatial:
        assert maps[name].shape[:2] == (1, 1) and maps[name].dim() == 5
        torch.testing.assert_close(maps[name], torch.full_like(maps[name], 0.5))
    # the plain U-Net has no attention blocks
    assert attention_maps(unetzoo.create_model("unet", **WIDTHS).eval(), torch.randn(1, 3, 32, 32))[1] == {}


def test_error_map_and_evolution_colours() -> None:
    truth = np.array([[0, 1, 1], [0, 0, 2]])
    pred = np.array([[1, 1, 0], [0, 2, 1]])
    roi = np.array([[1, 1, 1], [0, 1, 1]], dtype=bool)
    colours = viz.error_map(truth, pred, roi)
    assert np.array_equal(colours[0, 0], viz.FALSE_POSITIVE)  # background predicted as class 1
    assert np.array_equal(colours[0, 1], viz.TRUE_POSITIVE)
    assert np.array_equal(colours[0, 2], viz.FALSE_NEGATIVE)  # class 1 missed
    assert np.array_equal(colours[1, 0], viz.OUTSIDE)
    assert np.array_equal(colours[1, 1], viz.FALSE_POSITIVE)
    assert np.array_equal(colours[1, 2], viz.FALSE_POSITIVE)  # wrong foreground class
    before = np.array([[1, 1, 1], [0, 0, 0]])
    shown = np.zeros((2, 3, 3), dtype=np.float32)
    picture = viz.changes(shown, truth, before, pred)
    assert np.array_equal(picture[1, 0], np.zeros(3))  # right before and now: the image
    assert picture[0, 0].any() and not np.array_equal(picture[0, 0], viz.NEWLY_WRONG)  # wrong both times: tinted
    assert np.array_equal(picture[0, 2], viz.NEWLY_WRONG)  # was 1 (right), now 0
    assert np.array_equal(picture[1, 1], viz.NEWLY_WRONG)
    right = viz.changes(shown, truth, pred, truth)
    assert np.array_equal(right[0, 0], viz.NEWLY_CORRECT) and np.array_equal(right[1, 2], viz.NEWLY_CORRECT)


def _png(path: Path) -> np.ndarray:
    assert path.is_file(), path
    return np.asarray(Image.open(path))


def test_explain_drive_images_with_ground_truth(shared: Path, tmp_path: Path) -> None:
    model = unetzoo.create_model("attn_unet", **WIDTHS)
    unetzoo.save_pretrained(model, tmp_path / "model")
    test = shared / "datasets" / "DRIVE" / "test"
    out = tmp_path / "pictures"
    result = CliRunner().invoke(app, ["explain", str(tmp_path / "model"), str(test / "images" / "01_test.tif"),
                                      str(test / "images" / "02_test.tif"), "--out", str(out),
                                      "--mask", str(test / "1st_manual" / "01_manual1.gif"),
                                      "--mask", str(test / "1st_manual" / "02_manual1.gif")])  # fmt: skip
    assert result.exit_code == 0, result.output
    for name in ("01_test", "02_test"):
        prediction, attention = _png(out / f"{name}_prediction.png"), _png(out / f"{name}_attention.png")
        assert prediction.shape[1] > 4 * prediction.shape[0] * 0.8  # five panels in a row
        assert attention.shape[1] > 4 * attention.shape[0] * 0.8  # the image and four gates
    assert "4 picture(s) written" in result.output


def test_explain_volume_writes_orthogonal_slices(tmp_path: Path) -> None:
    data = make_volumes(tmp_path / "vols", n=1)
    model = unetzoo.create_model("attn_unet3d_cbam", **WIDTHS, in_channels=1, classes=3)
    unetzoo.save_pretrained(model, tmp_path / "model")
    out = tmp_path / "pictures"
    result = CliRunner().invoke(app, ["explain", str(tmp_path / "model"), str(data / "images" / "case0.nii.gz"),
                                      "--out", str(out), "--mask", str(data / "labels" / "case0.nii.gz")])  # fmt: skip
    assert result.exit_code == 0, result.output
    for suffix in ("slices", "prediction", "attention"):
        _png(out / f"case0_{suffix}.png")


def test_mask_evolution_across_a_runs_checkpoints(kvasir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = invoke("unet", kvasir, "--out", run, *TINY_UNET, *FAST, "--epochs", "3", "--keep-checkpoints", "3")
    assert result.exit_code == 0, result.output
    images = sorted((kvasir / "images").iterdir())[:2]
    masks = [kvasir / "masks" / p.name for p in images]
    out = tmp_path / "pictures"
    args = ["explain", str(run), *map(str, images), "--out", str(out), "--evolution"]
    result = CliRunner().invoke(app, [*args, *[a for m in masks for a in ("--mask", str(m))]])
    assert result.exit_code == 0, result.output
    picture = _png(out / "evolution.png")
    assert picture.shape[1] > picture.shape[0]  # two rows, five columns (truth, 3 epochs, best)
    from unetzoo.evaluation import load_source
    from unetzoo.explanation import checkpoint_models

    labels = [label for label, _ in checkpoint_models(load_source(str(run)))]
    assert labels[:3] == ["epoch 1", "epoch 2", "epoch 3"] and labels[3].startswith("best (epoch ")


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--mask", "a.png", "--mask", "b.png"], "--mask: 2 mask(s) for 1 input(s)"),
        (["--evolution"], "--evolution needs a run folder"),
    ],
)
def test_explain_bad_input_is_one_line(shared: Path, tmp_path: Path, extra: list[str], needle: str) -> None:
    unetzoo.save_pretrained(unetzoo.create_model("unet", **WIDTHS), tmp_path / "model")
    image = shared / "datasets" / "DRIVE" / "test" / "images" / "01_test.tif"
    result = CliRunner().invoke(app, ["explain", str(tmp_path / "model"), str(image), "--out", str(tmp_path / "o"),
                                      *extra])  # fmt: skip
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert needle in " ".join(result.output.split())
