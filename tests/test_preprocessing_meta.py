"""Each registered model carries its preprocessing: mean, std, input multiple, expected size."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import unetzoo
from unetzoo.models import MODELS, Preprocessing, UNet, model_spec, preprocessing_of, register_model
from unetzoo.models.saving import saved_config

ZOO = unetzoo.list_models()
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
# The stride of the deepest level: four classic stages pool four times; timm ResNets and
# EfficientNets reach /32 at their fifth level.
EXPECTED_MULTIPLE = {name: 16 for name in ("unet", "attn_unet", "r2unet", "attn_r2unet", "unetpp", "unet3d",
                                           "attn_unet3d_cbam")}  # fmt: skip


def tiny(name: str) -> dict:
    """Overrides that keep the model's encoder and layout but make every width of ours tiny."""
    spec = model_spec(name)
    args = spec.arguments()
    out: dict = {}
    if args.get("encoder", "classic") == "classic":
        out["encoder_channels"] = [4] * len(args["encoder_channels"])
    if args.get("decoder_channels"):
        out["decoder_channels"] = [4] * len(args["decoder_channels"])
    if args.get("bottleneck_channels") and args.get("bottleneck") != "none":
        out["bottleneck_channels"] = 4
    if args.get("attention_reduction"):
        out["attention_reduction"] = 2
    return out


@pytest.mark.parametrize("name", ZOO)
def test_every_model_has_its_preprocessing(name: str) -> None:
    prep = model_spec(name).preprocessing()
    assert isinstance(prep, Preprocessing) and prep == preprocessing_of(name)
    assert len(prep.mean) in (1, 3) and len(prep.std) == len(prep.mean) and min(prep.std) > 0
    assert isinstance(prep.input_multiple, int) and prep.input_multiple >= 1
    encoder = model_spec(name).arguments().get("encoder", "classic")
    if encoder == "classic":
        assert (prep.mean, prep.std, prep.expected_size) == ((0.0,), (1.0,), None)
        assert prep.input_multiple == EXPECTED_MULTIPLE[name]
    else:  # every timm encoder of the zoo is an ImageNet model pretrained at 224×224
        assert (prep.mean, prep.std) == IMAGENET
        assert prep.expected_size == (224, 224) and prep.input_multiple == 32


@pytest.mark.parametrize("name", ZOO)
def test_a_forward_at_the_input_multiple_needs_no_padding(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    multiple = model_spec(name).preprocessing().input_multiple
    model = unetzoo.create_model(name, **tiny(name)).eval()
    dims = model_spec(name).spatial_dims
    seen = []
    inner = model._forward_padded
    monkeypatch.setattr(model, "_forward_padded", lambda x: seen.append(tuple(x.shape[2:])) or inner(x))
    with torch.no_grad():
        out = model(torch.randn(1, 3, *[multiple] * dims))
        assert out.shape == (1, 1, *[multiple] * dims)
        model(torch.randn(1, 3, *[multiple + 1] * dims))
    # the input multiple is what the network pads to: nothing at that size, one more multiple above it
    assert seen == [(multiple,) * dims, (2 * multiple,) * dims]


def test_the_saved_preprocessing_follows_the_built_encoder() -> None:
    with torch.device("meta"):
        mobilenet = unetzoo.create_model("unet_resnet34", encoder="mobilenetv1_100", in_channels=3)
        grey = unetzoo.create_model("unet_resnet34", in_channels=1, encoder_depth=4,
                                    decoder_channels=(8, 8, 8, 8))  # fmt: skip
    prep = saved_config(mobilenet)["preprocessing"]
    assert prep["mean"] == [0.5, 0.5, 0.5] and prep["std"] == [0.5, 0.5, 0.5]  # timm's Inception-style stats
    assert prep["input_multiple"] == 32 and prep["expected_size"] == [224, 224]
    prep = saved_config(grey)["preprocessing"]
    assert prep["mean"] == [pytest.approx(sum(IMAGENET[0]) / 3)] and prep["std"] == [pytest.approx(sum(IMAGENET[1]) / 3)]
    assert prep["input_multiple"] == 16  # four ResNet levels reach /16


@pytest.fixture
def registered():
    """Register models for one test; they are removed afterwards."""
    added: list[str] = []

    def add(name: str, obj) -> None:
        MODELS.add(name, obj, source="test-plugin")
        added.append(name)

    yield add
    for name in added:
        MODELS._entries.pop(name, None)


class Identity1(nn.Module):
    """A one-class 'network' whose logits are its normalised input times a weight of 1."""

    def __init__(self, in_channels: int = 1, classes: int = 1, spatial_dims: int = 2) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))
        self.config = {"in_channels": in_channels, "classes": classes, "spatial_dims": spatial_dims}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1] * self.weight


def grey_identity(**kwargs) -> nn.Module:
    """A plugin factory with its own preprocessing."""
    return Identity1(**kwargs)


grey_identity.preprocessing = {"mean": [0.5], "std": [0.25]}


def test_a_plugin_model_carries_its_preprocessing_into_config_and_prediction(tmp_path: Path, registered) -> None:
    from unetzoo.evaluation import load_source
    from unetzoo.prediction import predict_files

    registered("grey_identity", grey_identity)
    model = unetzoo.create_model("grey_identity", in_channels=1)
    assert preprocessing_of("grey_identity", model) == Preprocessing((0.5,), (0.25,), 1, None)
    folder = unetzoo.save_pretrained(model, tmp_path / "saved")
    saved = json.loads((folder / "config.json").read_text())["preprocessing"]
    assert saved["mean"] == [0.5] and saved["std"] == [0.25] and saved["input_multiple"] == 1
    values = np.array([[0, 64, 100, 128], [140, 200, 230, 255]], dtype=np.uint8)
    Image.fromarray(values).save(tmp_path / "in.png")
    report = predict_files(load_source(str(folder)), [str(tmp_path / "in.png")], tmp_path / "out",
                           probabilities=True)  # fmt: skip
    assert not report.failures
    probs = np.load(next((tmp_path / "out").glob("*.npy"))).astype(np.float64)
    expected = 1 / (1 + np.exp(-(values / 255 - 0.5) / 0.25))
    np.testing.assert_allclose(probs.reshape(values.shape), expected, atol=2e-3)  # float16 file
    mask = np.asarray(Image.open(next((tmp_path / "out").glob("*.png"))))
    np.testing.assert_array_equal(mask > 0, values > 127.5)  # p > 0.5 exactly where x/255 > mean


def test_register_model_takes_preprocessing(registered) -> None:
    registered_name = "tiny_grey_unet"

    def tiny_grey_unet():
        """A small grey U-Net."""
        return dict(in_channels=1, encoder_channels=(4, 8), bottleneck_channels=8, decoder_channels=(8, 4))

    tiny_grey_unet.__name__ = registered_name
    before = set(MODELS._entries)
    register_model(UNet, mean=[0.3], std=[0.1], expected_size=(64, 64))(tiny_grey_unet)
    for name in set(MODELS._entries) - before:
        registered(name, MODELS._entries.pop(name).obj)
    prep = model_spec(registered_name).preprocessing()
    assert prep == Preprocessing((0.3,), (0.1,), 4, (64, 64))  # two stages: strides 1, 2, and 4 below
    saved = saved_config(unetzoo.create_model(registered_name))["preprocessing"]
    assert saved["mean"] == [0.3] and saved["std"] == [0.1] and saved["expected_size"] == [64, 64]
    with pytest.raises(ValueError, match=r"preprocessing std=\[0\]; every value must be > 0"):
        register_model(UNet, std=[0])


def test_a_plugin_without_preprocessing_gets_the_defaults(registered) -> None:
    registered("bare_identity", lambda **kwargs: Identity1(**kwargs))
    model = unetzoo.create_model("bare_identity", in_channels=3)
    prep = saved_config(model)["preprocessing"]
    assert prep["mean"] == [0.0, 0.0, 0.0] and prep["std"] == [1.0, 1.0, 1.0]
    assert prep["input_multiple"] == 1 and prep["expected_size"] is None
    assert math.isclose(prep["scale"], 1 / 255)


def test_info_shows_the_models_preprocessing() -> None:
    from typer.testing import CliRunner

    from unetzoo.cli import app

    result = CliRunner().invoke(app, ["info", "unet_resnet34", "--size", "64"])
    assert result.exit_code == 0, result.output
    assert "mean [0.485, 0.456, 0.406], std [0.229, 0.224, 0.225]" in result.output
    assert "input multiple 32" in result.output and "expected size 224×224" in result.output
    classic = CliRunner().invoke(app, ["info", "unet", "--size", "64"])
    assert "mean [0.0, 0.0, 0.0], std [1.0, 1.0, 1.0]" in classic.output and "input multiple 16" in classic.output
