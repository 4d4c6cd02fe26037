"""Loading goes only where the user pointed: configs cannot name other weights, tags pin config.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import unetzoo
from unetzoo.hub import ChecksumError, sha256_of
from unetzoo.weight_tags import WEIGHTS, PretrainedWeights

TINY = dict(encoder_channels=[4, 8, 8, 16], bottleneck_channels=16, decoder_channels=[8, 8, 8, 4])


@pytest.mark.parametrize("key", ["pretrained", "revision", "sha256", "cache_dir", "local_files_only"])
def test_a_config_naming_loader_arguments_is_refused(tmp_path: Path, key: str) -> None:
    folder = unetzoo.save_pretrained(unetzoo.create_model("unet", **TINY), tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config["args"][key] = "org/elsewhere" if key != "local_files_only" else True
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=f"'args' holds '{key}', an argument of the loader"):
        unetzoo.from_pretrained(folder)


def test_a_weight_tag_pins_config_json_as_well(tmp_path: Path) -> None:
    folder = unetzoo.save_pretrained(unetzoo.create_model("unet", **TINY), tmp_path / "m")
    tag = PretrainedWeights(tag="unet.pinned", repo_id=str(folder), revision="",
                            sha256=sha256_of(folder / "model.safetensors"),
                            config_sha256=sha256_of(folder / "config.json"))  # fmt: skip
    WEIGHTS.add(tag.tag, tag)
    try:
        assert unetzoo.create_model("unet", pretrained="pinned").config["encoder_channels"] == [4, 8, 8, 16]
        config = json.loads((folder / "config.json").read_text())
        config["args"]["conv_bias"] = not config["args"].get("conv_bias", True)  # same weights, other model
        (folder / "config.json").write_text(json.dumps(config))
        with pytest.raises(ChecksumError, match="config.json: sha256 .* differs from the published"):
            unetzoo.create_model("unet", pretrained="pinned")
    finally:
        WEIGHTS._entries.pop(tag.tag, None)
