"""Model arguments are checked when the model is built, and errors name the model and the argument."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from typer.testing import CliRunner

import unetzoo
from unetzoo.cli import app
from unetzoo.models import ModelArgumentError, UNet, UNetPlusPlus
from unetzoo.models.base import explain_norm_error

# Four classic stages: feature maps at strides 1, 2, 4, 8 and the pooled one at 16.
TINY = dict(encoder_channels=(4, 8, 8, 16), bottleneck_channels=16, decoder_channels=(8, 8, 8, 4))
# resnet18 offers five feature levels, at strides 2, 4, 8, 16 and 32.
TINY_TIMM = dict(encoder="resnet18", bottleneck="none", decoder_channels=(8, 8, 8, 8, 8))


@pytest.mark.parametrize(
    ("name", "overrides", "argument", "needle"),
    [
        ("unet", {"classes": -1}, "classes", "classes=-1; give a whole number >= 1"),
        ("unet", {"classes": 0}, "classes", "classes=0"),
        ("unet", {"in_channels": 0}, "in_channels", "in_channels=0; give a whole number >= 1"),
        ("unet", {"classes": "2"}, "classes", "classes='2'; give a value of type int"),
        ("unet", {"in_channels": 2.0}, "in_channels", "in_channels=2.0; give a value of type int"),
        ("unet", {"spatial_dims": 1}, "spatial_dims", "spatial_dims=1; give 2 or 3"),
        ("unet3d", {"spatial_dims": True}, "spatial_dims", "spatial_dims=True"),
        ("unet", {"encoder_channels": []}, "encoder_channels", "encoder_channels=[]; give one or more widths"),
        ("unet", {"decoder_channels": [8, 0, 4, 4]}, "decoder_channels", "decoder_channels=[8, 0, 4, 4]"),
        ("unet", {"bottleneck_channels": 0}, "bottleneck_channels", "bottleneck_channels=0"),
        ("unet", {"encoder_dropout": 1.5}, "encoder_dropout", "encoder_dropout=1.5; give a probability"),
        ("r2unet", {"t": 0}, "t", "t=0; give a whole number >= 1"),
    ],
)
def test_bad_arguments_name_the_model_and_the_argument(name: str, overrides: dict, argument: str,
                                                       needle: str) -> None:  # fmt: skip
    with pytest.raises(ModelArgumentError, match=re.escape(needle)) as caught:
        unetzoo.create_model(name, **overrides)
    assert caught.value.model == name and caught.value.argument == argument
    assert str(caught.value).startswith(f"{name}: ")


def test_an_assembler_built_directly_names_itself() -> None:
    with pytest.raises(ModelArgumentError, match=r"^UNetPlusPlus: classes=0; give a whole number >= 1$"):
        UNetPlusPlus(classes=0)
    with pytest.raises(ModelArgumentError, match=r"^UNet: encoder_channels='abc'"):
        UNet(encoder_channels="abc")


def test_decoder_widths_must_cover_every_skip() -> None:
    # four classic stages give four skips
    with pytest.raises(ModelArgumentError, match=r"decoder_channels=\[8, 4\] has 2 widths; the encoder gives 4 "
                                                 r"skips, so give at least 4") as caught:  # fmt: skip
        unetzoo.create_model("unet", **{**TINY, "decoder_channels": [8, 4]})
    assert (caught.value.model, caught.value.argument) == ("unet", "decoder_channels")
    with pytest.raises(ModelArgumentError, match="give exactly 4"):
        unetzoo.create_model("unetpp", encoder_channels=(4, 8, 8, 16), decoder_channels=(8, 8, 8, 8, 8))
    # one more decoder stage than skips upsamples without a skip (the timm U-Nets do it)
    model = unetzoo.create_model("unet", **{**TINY, "decoder_channels": [8, 8, 8, 4, 4]}).eval()
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 1, 32, 32)


def test_classic_depth_is_the_number_of_stages_given() -> None:
    two = dict(encoder_channels=(4, 8), bottleneck_channels=8, decoder_channels=(8, 4))
    model = unetzoo.create_model("unet", **two)
    assert model.config["encoder_depth"] == 3 and model.output_stride == 4
    assert unetzoo.create_model("unet", encoder_depth=3, **two).output_stride == 4
    with pytest.raises(ModelArgumentError, match=r"encoder_depth=5: the classic encoder's 2 stages .* give 3 "
                                                 r"feature levels") as caught:  # fmt: skip
        unetzoo.create_model("unet", encoder_depth=5, **two)
    assert (caught.value.model, caught.value.argument) == ("unet", "encoder_depth")
    # the four-stage default keeps the depth every saved config has recorded
    assert unetzoo.create_model("unet", **TINY).config["encoder_depth"] == 5


def test_timm_depth_is_what_the_timm_model_offers() -> None:
    assert unetzoo.create_model("unet_resnet34", **TINY_TIMM).output_stride == 32
    three = {**TINY_TIMM, "encoder_depth": 3, "decoder_channels": (8, 8, 8)}
    assert unetzoo.create_model("unet_resnet34", **three).output_stride == 8
    for depth, needle in ((6, "the timm encoder 'resnet18' offers 1 to 5 feature levels"),
                          (0, "encoder_depth=0; give a whole number >= 1")):  # fmt: skip
        with pytest.raises(ModelArgumentError, match=re.escape(needle)) as caught:
            unetzoo.create_model("unet_resnet34", **{**TINY_TIMM, "encoder_depth": depth})
        assert (caught.value.model, caught.value.argument) == ("unet_resnet34", "encoder_depth")


def test_checks_run_before_any_weights_are_built(monkeypatch: pytest.MonkeyPatch) -> None:
    built = []
    monkeypatch.setattr("unetzoo.models.unet.build_encoder", lambda *a, **k: built.append(a))
    with pytest.raises(ModelArgumentError):
        unetzoo.create_model("unet", classes=0)
    assert not built


def test_model_argument_errors_survive_pickling() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(ModelArgumentError("unet", "classes", "classes=0; give ...")))
    assert (error.model, error.argument, str(error)) == ("unet", "classes", "unet: classes=0; give ...")


def test_batch_of_one_norm_error_names_the_layer() -> None:
    model = unetzoo.create_model("unet", **TINY).train()
    x = torch.randn(1, 3, 16, 16)  # 16 / 16 = a 1×1 map at the bottleneck
    with pytest.raises(ValueError, match="Expected more than 1 value per channel") as caught:
        model(x)
    message = explain_norm_error(model, caught.value, x)
    path = re.search(r"BatchNorm2d '([\w.]+)'", message)[1]
    assert path.startswith("bottleneck.") and isinstance(dict(model.named_modules())[path], nn.BatchNorm2d)
    assert "(its input (1, 16, 1, 1))" in message and "input of size (1, 3, 16, 16)" in message
    assert "--batch-size" in message and "norm=group" in message
    assert explain_norm_error(model, ValueError("something else"), x) is None
    # what the message offers works: group norm trains on the same batch
    grouped = unetzoo.create_model("unet", norm="group", **TINY).train()
    grouped(x).mean().backward()


def tiny_dataset(root: Path, n: int = 4, size: int = 16) -> Path:
    """``n`` random RGB images with 0/255 masks, paired by name."""
    rng = np.random.default_rng(0)
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / "images" / f"{i}.png")
        mask = np.zeros((size, size), np.uint8)
        mask[: size // 2] = 255
        Image.fromarray(mask).save(root / "masks" / f"{i}.png")
    return root


def test_finetune_at_batch_one_on_a_tiny_input_is_one_line(tmp_path: Path) -> None:
    data = tiny_dataset(tmp_path / "data")
    args = ["finetune", "unet", str(data), "--out", str(tmp_path / "run"), "--model-arg", "encoder_channels=[4,8,8,16]",
            "--model-arg", "bottleneck_channels=16", "--model-arg", "decoder_channels=[8,8,8,4]",
            "--size", "16x16", "--batch-size", "1", "--workers", "0", "--mixed-precision", "no", "--quiet",
            "--samples", "0", "--max-steps", "1", "--val", "0.25"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1
    assert re.search(r"error: unet: BatchNorm2d 'bottleneck\.[\w.]+' \(its input \(1, 16, 1, 1\)\)", line), line
    assert "input of size (1, 3, 16, 16)" in line


def test_old_classic_configs_with_the_old_default_depth_still_load(tmp_path: Path) -> None:
    """Earlier releases saved encoder_depth=5 for every classic encoder, where it had no effect."""
    import json

    from unetzoo import create_model, from_pretrained, save_pretrained

    model = create_model("unet", encoder_channels=[4, 8], bottleneck_channels=8, decoder_channels=[8, 4])
    save_pretrained(model, tmp_path / "old")
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    config["args"]["encoder_depth"] = 5
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    loaded = from_pretrained(tmp_path / "old")
    assert loaded.config["encoder_depth"] == 3
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(loaded.eval()(x), model.eval()(x))
    with pytest.raises(ValueError, match="encoder_depth"):  # given by a caller, a mismatch stays an error
        create_model("unet", encoder_channels=[4, 8], bottleneck_channels=8, decoder_channels=[8, 4], encoder_depth=5)
