"""The unetzoo command line: list and info."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

import unetzoo
from unetzoo.cli import app

runner = CliRunner()


def test_list_shows_every_model_with_parameters() -> None:
    result = runner.invoke(app, ["list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in unetzoo.list_models():
        assert re.search(rf"│ {name}\s+│", result.output), name
    # each row holds that model's own figures (counts as published in docs/models.md)
    assert re.search(r"│ unet\s+│ 2D, 3D\s+│ 34,527,041 │ Ronneberger 2015\s+│", result.output)
    assert re.search(r"│ attn_r2unet\s+│ 2D, 3D\s+│ 39,442,925 │ Alom 2018, Oktay 2018\s+│", result.output)


def test_list_pattern_filters() -> None:
    result = runner.invoke(app, ["list", "*3d*"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "unet3d" in result.output and "attn_unet3d_cbam" in result.output
    assert "resnet" not in result.output


def test_list_pattern_without_match_fails() -> None:
    result = runner.invoke(app, ["list", "segformer*"])
    assert result.exit_code == 2
    assert "no model matches 'segformer*'" in result.output


def test_info_shows_config_params_macs_and_constraints() -> None:
    result = runner.invoke(app, ["info", "unet", "--size", "64x64"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "parameters: 34,527,041" in result.output
    assert "MACs at 1×3×64×64:" in result.output
    macs = float(re.search(r"MACs at .*: ([\d.]+) G", result.output)[1])
    assert abs(macs - 65.35 / 16) < 0.05  # 65.35 GMACs at 256², and MACs scale with the area
    assert "multiple of 16" in result.output
    assert '"architecture": "unet"' in result.output
    assert "arXiv:1505.04597" in result.output


def test_info_3d_and_overrides() -> None:
    result = runner.invoke(app, ["info", "unet", "--spatial-dims", "3", "--classes", "4", "--size", "32"])
    assert result.exit_code == 0, result.output
    assert "1×3×32×32×32" in result.output and '"classes": 4' in result.output


def test_info_unknown_name_suggests() -> None:
    result = runner.invoke(app, ["info", "atention_unet"])
    assert result.exit_code == 2
    assert "closest: attn_unet" in result.output


def test_info_bad_size() -> None:
    result = runner.invoke(app, ["info", "unet", "--size", "64x"])
    assert result.exit_code == 2
    assert "--size '64x'" in result.output


def test_pretrained_tags_download_and_push(tmp_path, hf_cache, monkeypatch) -> None:
    from tests.test_pretrained import TINY, publish
    from unetzoo.weight_tags import TABLE_ENV

    model = unetzoo.create_model("unet", **TINY)
    publish(tmp_path, hf_cache, model, "org/tiny")
    monkeypatch.setenv(TABLE_ENV, str(tmp_path / "weights.json"))
    result = runner.invoke(app, ["list", "--pretrained"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "unet.mine" in result.output and "org/tiny" in result.output

    result = runner.invoke(app, ["download", "unet", "--to", str(tmp_path / "copy")])
    assert result.exit_code == 0, result.output
    assert unetzoo.from_pretrained(tmp_path / "copy").config["encoder_channels"] == [4, 8, 16, 32]
    result = runner.invoke(app, ["download", "org/absent"])
    assert result.exit_code == 2 and "download of 'org/absent' failed" in result.output

    pushed = {}

    class FakeApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, private=None, exist_ok=False):
            pushed["repo"] = (repo_id, private)

        def upload_folder(self, repo_id, folder_path, revision=None, commit_message=""):
            pushed["files"] = sorted(p.name for p in Path(folder_path).iterdir())
            return f"https://example.invalid/{repo_id}/commit/1"

    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    result = runner.invoke(app, ["push", str(tmp_path / "copy"), "me/tiny", "--private"])
    assert result.exit_code == 0, result.output
    assert pushed == {"repo": ("me/tiny", True), "files": ["README.md", "config.json", "model.safetensors"]}
    result = runner.invoke(app, ["push", str(tmp_path / "nothing"), "me/tiny"])
    assert result.exit_code == 2 and "not a loadable unetzoo model folder" in result.output


def test_piped_tables_are_never_cut() -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    out = subprocess.run([sys.executable, "-m", "unetzoo", "list"], capture_output=True, text=True, env=env,
                         check=True).stdout  # fmt: skip
    assert "…" not in out and "attn_unet_efficientnet_lite0" in out
    assert "Oktay 2018, Chen 2017, Hu 2018" in out  # the longest paper cell, whole
