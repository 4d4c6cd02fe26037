"""save_pretrained replaces a model folder as a whole: killed at any moment, the folder holds
the old model or the new one; leftovers are cleaned by the next save; normal permissions."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import torch

import unetzoo
from tests.conftest import REPO
from unetzoo import checkpoint

TINY = dict(encoder_channels=[4, 8, 8, 16], bottleneck_channels=16, decoder_channels=[8, 8, 8, 4])


def test_files_get_the_usual_permissions_and_extra_files_stay(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        folder = unetzoo.save_pretrained(unetzoo.create_model("unet", **TINY), tmp_path / "m")
        assert {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()} == {
            "config.json": 0o644, "model.safetensors": 0o644, "README.md": 0o644}  # fmt: skip
        assert folder.stat().st_mode & 0o777 == 0o755
        (folder / "notes.txt").write_text("mine")
        unetzoo.save_pretrained(unetzoo.create_model("unet", classes=2, **TINY), folder)
        assert (folder / "notes.txt").read_text() == "mine"
        assert unetzoo.from_pretrained(folder).config["classes"] == 2
        assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # nothing left beside it
    finally:
        os.umask(old)


def test_leftovers_of_a_killed_save_are_cleaned_and_an_orphaned_old_folder_returns(tmp_path: Path) -> None:
    folder = unetzoo.save_pretrained(unetzoo.create_model("unet", **TINY), tmp_path / "m")
    (tmp_path / ".m.tmp-abc").mkdir()
    (tmp_path / ".m.tmp-abc" / "model.safetensors").write_bytes(b"half")
    (folder / ".model.safetensors.x1.tmp").write_bytes(b"half")
    unetzoo.save_pretrained(unetzoo.create_model("unet", **TINY), folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    assert not list(folder.glob(".*"))
    # killed between the two renames of the portable path: only the old folder exists
    os.rename(folder, tmp_path / ".m.old-123")
    checkpoint._clean_leftovers(folder)
    assert unetzoo.from_pretrained(folder).config["classes"] == 1


def test_a_kill_at_any_moment_leaves_a_loadable_consistent_model(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    unetzoo.save_pretrained(unetzoo.create_model("unet", classes=1, **TINY), folder)
    # A process saving models of 1 and 3 classes in turn into the same folder, as fast as it can.
    code = textwrap.dedent(f"""
        import unetzoo
        models = [unetzoo.create_model("unet", classes=c, **{TINY!r}) for c in (3, 1)]
        print("ready", flush=True)
        i = 0
        while True:
            unetzoo.save_pretrained(models[i % 2], {str(folder)!r})
            i += 1
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    rng = random.Random(0)
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        model = unetzoo.from_pretrained(folder)  # loads: config and weights belong together
        head = next(v for k, v in model.state_dict().items() if k.startswith("head"))
        assert head.shape[0] == model.config["classes"] in (1, 3)
        with torch.no_grad():
            assert model(torch.randn(1, 3, 32, 32)).shape[1] == model.config["classes"]
    unetzoo.save_pretrained(unetzoo.create_model("unet", **TINY), folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    assert not list(folder.glob(".*"))
