"""Parity with github.com/LeeJunHyun/Image_Segmentation through unetzoo.convert.load_ljh."""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from unetzoo.convert import LJH_ARCHS, load_ljh

ARCHS = list(LJH_ARCHS)


@pytest.fixture(scope="module")
def reference(shared: Path) -> tuple[dict, dict]:
    root = shared / "reference" / "ljh-image-segmentation"
    return json.loads((root / "manifest.json").read_text()), load_file(root / "golden.safetensors")


def recipe_weights(entries: list) -> dict[str, torch.Tensor]:
    """Reference-keyed weights made by the recipe in shared/README.md."""
    sd = {}
    for key, shape, dtype in entries:
        g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        if key.endswith("num_batches_tracked"):
            v = torch.zeros(shape, dtype=getattr(torch, dtype))
        elif len(shape) >= 2:
            v = torch.randn(shape, generator=g) * math.sqrt(2.0 / math.prod(shape[1:]))
        elif key.endswith("running_var"):
            v = 0.5 + torch.rand(shape, generator=g)
        elif key.endswith("running_mean"):
            v = 0.1 * torch.randn(shape, generator=g)
        elif key.endswith("weight"):
            v = 1.0 + 0.1 * torch.randn(shape, generator=g)
        else:
            v = 0.1 * torch.randn(shape, generator=g)
        sd[key] = v
    return sd


@pytest.mark.parametrize("arch", ARCHS)
def test_outputs_match_reference(reference: tuple[dict, dict], arch: str) -> None:
    manifest, golden = reference
    info = manifest[arch]
    model = load_ljh(recipe_weights(info["state_dict"]), arch, t=info["t"])
    assert sum(p.numel() for p in model.parameters()) == info["params"]
    with torch.no_grad():
        out = model(golden["input"])
    ref = golden[f"{arch}.output"]
    torch.testing.assert_close(out, ref, rtol=1e-3, atol=1e-3 * ref.abs().max().item())


@pytest.mark.parametrize("arch", ARCHS)
def test_every_reference_key_maps_one_to_one(reference: tuple[dict, dict], arch: str) -> None:
    manifest, _ = reference
    keys = [k for k, _, _ in manifest[arch]["state_dict"]]
    model = load_ljh(recipe_weights(manifest[arch]["state_dict"]), arch)
    assert len(model.state_dict()) == len(keys)


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model", "module"])
def test_checkpoint_files_and_wrappers(reference: tuple[dict, dict], tmp_path: Path, wrap: str) -> None:
    manifest, golden = reference
    sd = recipe_weights(manifest["AttU_Net"]["state_dict"])
    if wrap == "module":  # saved from DataParallel
        payload = {f"module.{k}": v for k, v in sd.items()}
    elif wrap == "plain":
        payload = sd
    else:
        payload = {wrap: sd, "epoch": 3}
    path = tmp_path / "attu.pth"
    torch.save(payload, path)
    model = load_ljh(path, "AttU_Net")
    with torch.no_grad():
        torch.testing.assert_close(model(golden["input"]), load_ljh(sd, "attn_unet")(golden["input"]))


def test_channels_and_classes_come_from_the_weights(reference: tuple[dict, dict]) -> None:
    manifest, _ = reference
    sd = recipe_weights(manifest["R2U_Net"]["state_dict"])
    sd["RRCNN1.Conv_1x1.weight"] = torch.randn(64, 1, 1, 1)
    sd["Conv_1x1.weight"], sd["Conv_1x1.bias"] = torch.randn(4, 64, 1, 1), torch.randn(4)
    model = load_ljh(sd, "R2U_Net")
    assert model.config["in_channels"] == 1 and model.config["classes"] == 4
    assert model(torch.randn(1, 1, 33, 47)).shape == (1, 4, 33, 47)


def test_bad_checkpoints_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_ljh(tmp_path / "missing.pth", "U_Net")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read checkpoint .*junk.pth"):
        load_ljh(junk, "U_Net")
    with pytest.raises(ValueError, match="arch must be one of"):
        load_ljh({}, "SegNet")
    with pytest.raises(KeyError, match="'encoder.layer1.weight' is not part of"):
        load_ljh({"encoder.layer1.weight": torch.zeros(1)}, "U_Net")


def test_legacy_pickles_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "config": object()}, path)  # needs full unpickling
    with pytest.raises(ValueError, match="weights_only=True"):
        load_ljh(path, "U_Net")
