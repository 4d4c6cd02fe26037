"""Pretrained encoders: real ImageNet weights offline, timm's through the HF cache, local files."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision
from safetensors.torch import save_file

import unetzoo
from tests.hfcache import add_to_hf_cache
from unetzoo.encoders.encoder_weights import efficientnet_lite0_imagenet
from unetzoo.hub import WeightsUnavailableError
from unetzoo.models import model_spec

ENCODER_MODELS = [n for n in unetzoo.list_models() if model_spec(n).defaults.get("encoder") != "classic"]


@pytest.fixture(scope="module")
def lite0() -> dict[str, torch.Tensor]:
    return efficientnet_lite0_imagenet()


def imagenet_input(name: str) -> torch.Tensor:
    from skimage import data

    img = torch.from_numpy(getattr(data, name)()).permute(2, 0, 1).float()[None] / 255
    img = F.interpolate(img, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    return (img - mean) / std


def test_efficientnet_lite0_weights_are_real_imagenet_weights(lite0: dict) -> None:
    classifier = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    classifier.load_state_dict(lite0)  # strict: every tensor, the classifier too
    with torch.no_grad():
        cat = classifier(imagenet_input("chelsea")).softmax(-1)
        coffee = classifier(imagenet_input("coffee")).softmax(-1)
    assert 281 <= cat.argmax().item() <= 285  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    assert 967 in coffee.topk(3).indices[0].tolist()  # espresso


@pytest.mark.parametrize("name", ["attn_unet", *ENCODER_MODELS])
def test_every_encoder_architecture_takes_lite0_imagenet(name: str, lite0: dict) -> None:
    model = unetzoo.create_model(name, encoder="efficientnet_lite0", encoder_weights="imagenet")
    encoder = model.encoder.model.state_dict()
    for key, value in encoder.items():
        if not key.endswith("num_batches_tracked"):
            torch.testing.assert_close(value, lite0[key], rtol=0, atol=0, msg=key)
    assert model(torch.randn(1, 3, 67, 61)).shape == (1, 1, 67, 61)


@pytest.mark.parametrize("in_channels", [1, 4])
def test_first_conv_adapted_for_other_channel_counts(in_channels: int, lite0: dict) -> None:
    model = unetzoo.create_model(
        "unet_resnet34", encoder="efficientnet_lite0", encoder_weights="imagenet", in_channels=in_channels
    )
    stem = model.encoder.model.conv_stem.weight
    rgb = lite0["conv_stem.weight"]
    if in_channels == 1:
        torch.testing.assert_close(stem, rgb.sum(1, keepdim=True))
    else:  # timm repeats the RGB filters and rescales by 3 / in_channels
        torch.testing.assert_close(stem[:, :3], rgb * 3 / in_channels)
    torch.testing.assert_close(
        model.encoder.model.blocks[1][0].conv_pw.weight, lite0["blocks.1.0.conv_pw.weight"]
    )


def test_timm_imagenet_weights_through_offline_cache(tmp_path: Path, hf_cache: Path) -> None:
    reference = timm.create_model("resnet34")
    save_file(reference.state_dict(), tmp_path / "model.safetensors")
    repo = timm.models.get_pretrained_cfg("resnet34").hf_hub_id
    add_to_hf_cache(hf_cache, repo, {"model.safetensors": tmp_path / "model.safetensors"})
    model = unetzoo.create_model("unet_resnet34", encoder_weights="imagenet")
    torch.testing.assert_close(model.encoder.model.layer3[2].conv2.weight, reference.layer3[2].conv2.weight)


def test_timm_imagenet_missing_offline_names_repo_and_ways(hf_cache: Path) -> None:
    with pytest.raises(WeightsUnavailableError) as err:
        unetzoo.create_model("unet_resnet50", encoder_weights="imagenet")
    text = str(err.value)
    assert "Hugging Face repo 'timm/resnet50" in text and "model.safetensors" in text
    assert "local file" in text and "Hugging Face cache" in text


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_file_with_torchvision_key_names(tmp_path: Path, suffix: str) -> None:
    tv = torchvision.models.resnet34(weights=None).state_dict()
    path = tmp_path / f"resnet34{suffix}"
    save_file(tv, path) if suffix == ".safetensors" else torch.save({"state_dict": tv}, path)
    model = unetzoo.create_model("attn_unet_resnet34", encoder_weights=str(path), in_channels=3)
    torch.testing.assert_close(model.encoder.model.layer4[1].conv1.weight, tv["layer4.1.conv1.weight"])
    torch.testing.assert_close(model.encoder.model.bn1.running_var, tv["bn1.running_var"])


def test_wrong_encoder_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "resnet18.safetensors"
    save_file(timm.create_model("resnet18").state_dict(), path)
    with pytest.raises(ValueError, match=r"resnet18.safetensors: .*are these weights for this encoder"):
        unetzoo.create_model("unet_resnet50", encoder_weights=str(path))
    with pytest.raises(FileNotFoundError, match="encoder_weights file '/no/such.safetensors' does not exist"):
        unetzoo.create_model("unet_resnet34", encoder_weights="/no/such.safetensors")
    with pytest.raises(ValueError, match="classic encoder has no pretrained weights"):
        unetzoo.create_model("unet", encoder_weights="imagenet")


def test_freeze_encoder_and_parameter_groups() -> None:
    model = unetzoo.create_model("attn_unet_resnet34", freeze_encoder=True)
    assert not any(p.requires_grad for p in model.encoder.parameters())
    groups = model.param_groups(lr=1e-3)
    assert [g["name"] for g in groups] == ["decoder"]
    model.freeze_encoder(False)
    enc, dec = model.param_groups(lr=1e-3, encoder_lr=1e-4)
    assert (enc["name"], enc["lr"], dec["lr"]) == ("encoder", 1e-4, 1e-3)
    assert len(enc["params"]) + len(dec["params"]) == len(list(model.parameters()))
    assert {id(p) for p in enc["params"]} == {id(p) for p in model.encoder.parameters()}
    optimizer = torch.optim.AdamW(model.param_groups(lr=1e-3))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)
