"""Save, load and share: local folders, the offline Hugging Face cache, tags, checksums."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import unetzoo
from tests.conftest import REPO
from tests.hfcache import add_to_hf_cache
from unetzoo.hub import ChecksumError, WeightsUnavailableError, sha256_of
from unetzoo.weight_tags import TABLE_ENV, PretrainedWeights, write_table

MODELS = unetzoo.list_models()
TINY = dict(encoder_channels=(4, 8, 16, 32), bottleneck_channels=32, decoder_channels=(16, 8, 8, 4))
FILES = ("config.json", "model.safetensors", "README.md")


def sample(model: torch.nn.Module) -> torch.Tensor:
    size = (19, 23, 17) if model.config.get("spatial_dims", 2) == 3 else (67, 61)
    return torch.randn(1, model.config.get("in_channels", 3), *size)


def publish(tmp_path: Path, cache: Path, model: torch.nn.Module, repo_id: str) -> PretrainedWeights:
    """Save ``model``, put it into the cache as ``repo_id``, and make a tag table naming it."""
    saved = model.save_pretrained(tmp_path / repo_id.replace("/", "_"))
    commit = add_to_hf_cache(cache, repo_id, {n: saved / n for n in FILES})
    name = model.config["architecture"]
    tag = PretrainedWeights(
        f"{name}.mine", repo_id, commit, sha256_of(saved / "model.safetensors"), default=True
    )
    write_table(tmp_path / "weights.json", [tag])
    return tag


@pytest.mark.parametrize("name", MODELS)
def test_round_trip_every_model(tmp_path: Path, name: str) -> None:
    model = unetzoo.create_model(name, classes=2).eval()
    model.save_pretrained(tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted(FILES)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architecture"] == name and config["args"]["classes"] == 2
    assert config["args"].get("encoder_weights") is None
    assert "http" not in (tmp_path / "config.json").read_text()
    loaded = unetzoo.from_pretrained(tmp_path)
    x = sample(model)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_saved_encoder_is_not_downloaded_again(tmp_path: Path) -> None:
    model = unetzoo.create_model("unet_resnet34", encoder="efficientnet_lite0", encoder_weights="imagenet")
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["args"]["encoder_weights"] is None
    loaded = unetzoo.from_pretrained(tmp_path)
    assert loaded.config["encoder_weights"] is None
    torch.testing.assert_close(loaded.encoder.model.conv_stem.weight, model.encoder.model.conv_stem.weight)


def test_config_and_card_carry_preprocessing_classes_and_metrics(tmp_path: Path) -> None:
    model = unetzoo.create_model("attn_unet_resnet34", classes=2)
    model.save_pretrained(tmp_path, class_names=["background", "polyp"], dataset="Kvasir-SEG",
                          metrics={"dice": 0.91})  # fmt: skip
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["unetzoo_version"] == unetzoo.__version__
    assert config["preprocessing"]["mean"] == [0.485, 0.456, 0.406]
    assert config["preprocessing"]["pad_multiple"] == 32
    assert config["class_names"] == ["background", "polyp"] and config["metrics"] == {"dice": 0.91}
    card = (tmp_path / "README.md").read_text()
    assert "library_name: unetzoo" in card and "parameters: " in card
    assert "unetzoo.from_pretrained(" in card and "Kvasir-SEG" in card and "dice: 0.9100" in card
    loaded = unetzoo.from_pretrained(tmp_path)
    assert loaded.pretrained_info["class_names"] == ["background", "polyp"]
    with pytest.raises(ValueError, match="class_names has 3 names but the model has classes=2"):
        model.save_pretrained(tmp_path / "x", class_names=["a", "b", "c"])


def test_override_classes_reinitialises_only_the_head(tmp_path: Path) -> None:
    model = unetzoo.create_model("attn_unet", classes=1, **TINY)
    model.save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match=r"2 tensors were not loaded .*head.bias, head.weight"):
        loaded = unetzoo.from_pretrained(tmp_path, classes=3)
    assert loaded.config["classes"] == 3
    for key, value in model.state_dict().items():
        if not key.startswith("head."):
            torch.testing.assert_close(loaded.state_dict()[key], value)


def test_a_failed_save_keeps_the_previous_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = unetzoo.create_model("unet", **TINY)
    model.save_pretrained(tmp_path)
    before = {n: (tmp_path / n).read_bytes() for n in FILES}

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("unetzoo.models.saving.save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        unetzoo.create_model("unet", **TINY).save_pretrained(tmp_path)
    assert {n: (tmp_path / n).read_bytes() for n in FILES} == before
    assert sorted(os.listdir(tmp_path)) == sorted(FILES)  # no temporary file left behind


def test_legacy_pth_loads_only_with_weights_only(tmp_path: Path) -> None:
    model = unetzoo.create_model("unet", **TINY).eval()
    model.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save({"state_dict": model.state_dict()}, tmp_path / "model.pth")
    loaded = unetzoo.from_pretrained(tmp_path)
    x = sample(model)
    torch.testing.assert_close(loaded(x), model(x))
    torch.save({"state_dict": model.state_dict(), "hook": print}, tmp_path / "model.pth")
    with pytest.raises(ValueError, match=r"model.pth: cannot be read with torch.load\(weights_only=True\)"):
        unetzoo.from_pretrained(tmp_path)


def test_load_from_offline_hf_cache(tmp_path: Path, hf_cache: Path) -> None:
    model = unetzoo.create_model("attn_r2unet", **TINY).eval()
    publish(tmp_path, hf_cache, model, "org/tiny-r2")
    loaded = unetzoo.from_pretrained("org/tiny-r2")
    x = sample(model)
    torch.testing.assert_close(loaded(x), model(x))


def test_missing_file_names_repo_file_and_three_ways(tmp_path: Path, hf_cache: Path) -> None:
    with pytest.raises(WeightsUnavailableError) as err:
        unetzoo.from_pretrained("org/not-cached")
    text = str(err.value)
    assert "'config.json' of Hugging Face repo 'org/not-cached'" in text
    assert "local directory" in text and "Hugging Face cache" in text and "local file" in text
    # a cached config without its weights names the weights file
    saved = unetzoo.create_model("unet", **TINY).save_pretrained(tmp_path / "s")
    add_to_hf_cache(hf_cache, "org/half", {"config.json": saved / "config.json"})
    with pytest.raises(WeightsUnavailableError, match="'model.safetensors' of Hugging Face repo 'org/half'"):
        unetzoo.from_pretrained("org/half")


def test_tags_pretrained_true_named_and_checksum(
    tmp_path: Path, hf_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = unetzoo.create_model("unet", **TINY).eval()
    tag = publish(tmp_path, hf_cache, model, "org/tiny-unet")
    monkeypatch.setenv(TABLE_ENV, str(tmp_path / "weights.json"))
    assert unetzoo.list_pretrained("unet.*") == ["unet.mine"]
    x = sample(model)
    for pretrained in (True, "mine", "unet.mine"):
        loaded = unetzoo.create_model("unet", pretrained=pretrained)
        torch.testing.assert_close(loaded(x), model(x))
    with pytest.raises(ValueError, match="weights 'unet.mine' are for 'unet', not 'attn_unet'"):
        unetzoo.create_model("attn_unet", pretrained="unet.mine")
    with pytest.raises(FileNotFoundError, match="no published weights for 'r2unet'"):
        unetzoo.create_model("r2unet", pretrained=True)
    # a table whose sha256 differs from the file's
    bad = PretrainedWeights(tag.tag, tag.repo_id, tag.revision, "0" * 64, default=True)
    write_table(tmp_path / "bad.json", [bad])
    monkeypatch.setenv(TABLE_ENV, str(tmp_path / "bad.json"))
    with pytest.raises(ChecksumError, match="sha256 .* differs from the published 0000"):
        unetzoo.create_model("unet", pretrained=True)


def test_pretrained_local_dir_and_file(tmp_path: Path) -> None:
    model = unetzoo.create_model("unet", **TINY).eval()
    saved = model.save_pretrained(tmp_path / "run")
    x = sample(model)
    torch.testing.assert_close(unetzoo.create_model("unet", pretrained=str(saved))(x), model(x))
    weights = saved / "model.safetensors"
    torch.testing.assert_close(unetzoo.create_model("unet", pretrained=weights)(x), model(x))
    with pytest.raises(ValueError, match="holds a 'unet' model, not 'r2unet'"):
        unetzoo.create_model("r2unet", pretrained=str(saved))


def test_torch_hub_pretrained_from_cache(
    tmp_path: Path, hf_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = unetzoo.create_model(
        "attn_r2unet_resnet34", encoder="resnet18", decoder_channels=(32, 16, 16, 8, 8)
    )
    publish(tmp_path, hf_cache, model.eval(), "org/r2-resnet")
    monkeypatch.setenv(TABLE_ENV, str(tmp_path / "weights.json"))
    loaded = torch.hub.load(str(REPO), "attn_r2unet_resnet34", pretrained=True, source="local")
    x = torch.randn(1, 3, 67, 61)
    torch.testing.assert_close(loaded(x), model(x))


def test_new_user_saves_in_one_process_and_loads_offline_in_another(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "UNETZOO_"))}
    cache = tmp_path / "cache"
    env.update(HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    writer = f"""
import sys, torch, unetzoo
sys.path.insert(0, {str(REPO)!r})
from tests.test_pretrained import publish
from pathlib import Path
torch.manual_seed(3)
model = unetzoo.create_model("unet_resnet34", encoder="resnet18").eval()
publish(Path({str(tmp_path)!r}), Path({str(cache)!r}), model, "me/my-unet")
torch.save({{"x": (x := torch.randn(1, 3, 67, 61)), "y": model(x).detach()}}, {str(tmp_path / "io.pt")!r})
"""
    subprocess.run([sys.executable, "-c", writer], check=True, env=env, cwd=tmp_path)
    env[TABLE_ENV] = str(tmp_path / "weights.json")
    reader = f"""
import torch
io = torch.load({str(tmp_path / "io.pt")!r})
model = torch.hub.load({str(REPO)!r}, "unet_resnet34", pretrained=True, source="local")
torch.testing.assert_close(model(io["x"]), io["y"])
print("loaded", model.pretrained_info["source"])
"""
    out = subprocess.run([sys.executable, "-c", reader], check=True, env=env, cwd=tmp_path,
                         capture_output=True, text=True)  # fmt: skip
    assert "loaded me/my-unet" in out.stdout
