"""Small datasets and command lines shared by the fine-tuning tests."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from unetzoo.cli import app

REPO = Path(__file__).resolve().parents[1]
# A U-Net a few hundred parameters wide: trains a step in milliseconds at 32×32.
TINY_UNET_ARGS = {"encoder_channels": [4, 8, 8, 16], "bottleneck_channels": 16, "decoder_channels": [8, 8, 8, 4]}
# The same as finetune options: --model-arg encoder_channels=[4,8,8,16] ...
TINY_UNET = [part for key, value in TINY_UNET_ARGS.items()
             for part in ("--model-arg", f"{key}={value}".replace(" ", ""))]  # fmt: skip
FAST = ["--size", "32x32", "--batch-size", "2", "--workers", "0", "--mixed-precision", "no", "--quiet",
        "--samples", "2"]  # fmt: skip


def copy_kvasir(shared: Path, dest: Path, n: int = 12) -> Path:
    """The first ``n`` Kvasir-SEG image/mask pairs copied into ``dest`` (real JPEG data)."""
    source = shared / "datasets" / "Kvasir-SEG"
    for sub in ("images", "masks"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    for image in sorted((source / "images").iterdir())[:n]:
        shutil.copyfile(image, dest / "images" / image.name)
        shutil.copyfile(source / "masks" / image.name, dest / "masks" / image.name)
    return dest


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    """The rows of a run's metrics.csv."""
    with (run_dir / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def make_volumes(dest: Path, n: int = 6, shape: tuple[int, int, int] = (20, 24, 24)) -> Path:
    """``n`` small NIfTI volumes with two labelled boxes each (values 1 and 2), paired by name."""
    from unetzoo.data import write_volume

    rng = np.random.default_rng(0)
    for sub in ("images", "labels"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        label = np.zeros(shape, dtype=np.uint8)
        z, y, x = (int(rng.integers(2, s // 2)) for s in shape)
        label[z : z + 6, y : y + 8, x : x + 8] = 1
        label[2:6, 2:6, -8:-2] = 2
        image = rng.normal(0, 0.3, shape).astype(np.float32) + label
        write_volume(dest / "images" / f"case{i}.nii.gz", image, np.eye(4))
        write_volume(dest / "labels" / f"case{i}.nii.gz", label, np.eye(4))
    return dest


def invoke(*args: str):
    """``unetzoo finetune ARGS`` in this process; returns the click result."""
    return CliRunner().invoke(app, ["finetune", *map(str, args)], env={"COLUMNS": "200"})


def command(*args: str, launcher: list[str] | None = None) -> list[str]:
    """The argv of ``python -m unetzoo finetune ARGS`` (optionally under a launcher such as torchrun)."""
    return [*(launcher or [sys.executable]), "-m", "unetzoo", "finetune", *map(str, args)]


def run(argv: list[str], timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """Run a command in a fresh interpreter with one intra-op thread; fail the test on a timeout."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **kwargs.pop("env", {})}
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, **kwargs)
