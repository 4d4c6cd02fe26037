"""unetzoo finetune in fresh processes: SIGKILL then --resume, several processes, a full disk."""

from __future__ import annotations

import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import unetzoo
from tests.training_utils import FAST, REPO, TINY_UNET, command, read_metrics, run

# Twelve steps over three epochs with a checkpoint after each step.
RESUMABLE = [*TINY_UNET, *FAST, "--epochs", "3", "--val", "0.25", "--deterministic", "--checkpoint-every", "1",
             "--lr", "0.01", "--model-arg", "encoder_dropout=0.2"]  # fmt: skip


def assert_same_weights(a: Path, b: Path) -> None:
    left, right = load_file(a), load_file(b)
    assert left.keys() == right.keys()
    different = [k for k in left if not torch.equal(left[k], right[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def watch(argv: list[str], run_dir: Path, kill_after: float | None = None) -> tuple[float, float, bool]:
    """Run a command; return (seconds to its first checkpoint, seconds to its end, whether it was killed).

    With ``kill_after``, the run gets SIGKILL that many seconds after its first checkpoint
    appeared, unless it has ended by then.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    start = time.monotonic()
    checkpoints = run_dir / "checkpoints"
    while not (checkpoints.is_dir() and any(p.name.startswith("step_") for p in checkpoints.iterdir())):
        assert proc.poll() is None, f"the run ended before its first checkpoint: {proc.stderr.read()[-2000:]}"
        assert time.monotonic() - start < 240
        time.sleep(0.01)
    first = time.monotonic() - start
    killed = False
    if kill_after is not None:
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            killed = True
    proc.wait()
    assert killed or proc.returncode == 0, proc.stderr.read()[-2000:]
    return first, time.monotonic() - start, killed


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_sigkill_then_resume_gives_bitwise_identical_weights(kvasir: Path, tmp_path: Path, workers: int) -> None:
    args = [*RESUMABLE, "--workers", str(workers)]
    reference = tmp_path / "reference"
    first, end, _ = watch(command("unet", kvasir, "--out", reference, *args), reference)
    rng = random.Random(1234 + workers)
    for attempt in range(3):  # a kill that comes after the end proves nothing: try again, earlier
        killed = tmp_path / f"killed{attempt}"
        moment = rng.uniform(0, (end - first) * 0.8**attempt)
        if watch(command("unet", kvasir, "--out", killed, *args), killed, kill_after=moment)[2]:
            break
    else:
        pytest.fail("three runs ended before their kill")
    resumed = run(command("--resume", killed, "--quiet"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming" in resumed.stdout

    assert_same_weights(reference / "last" / "model.safetensors", killed / "last" / "model.safetensors")
    assert_same_weights(reference / "best" / "model.safetensors", killed / "best" / "model.safetensors")
    ref_rows, new_rows = read_metrics(reference), read_metrics(killed)
    assert [r["step"] for r in new_rows] == [r["step"] for r in ref_rows] == ["4", "8", "12"]
    for key in ("train_loss", "val_loss", "val_dice", "val_iou"):
        assert [r[key] for r in new_rows] == [r[key] for r in ref_rows], key
    assert not list(killed.glob(".*.tmp")) and not list((killed / "checkpoints").glob(".tmp-*"))
    unetzoo.from_pretrained(killed / "best")


@pytest.mark.slow
def test_two_processes_validate_exactly_as_one(kvasir: Path, tmp_path: Path) -> None:
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533"]
    args = [*TINY_UNET, *FAST, "--val", "0.42", "--val-batch-size", "2", "--max-steps", "0"]
    one = run(command("unet", kvasir, "--out", tmp_path / "one", *args))
    assert one.returncode == 0, one.stderr[-3000:]
    two = run(command("unet", kvasir, "--out", tmp_path / "two", *args, launcher=torchrun))
    assert two.returncode == 0, two.stderr[-3000:]
    assert "2 process(es)" in two.stdout
    row_one, row_two = read_metrics(tmp_path / "one")[0], read_metrics(tmp_path / "two")[0]
    for key in ("val_dice", "val_iou", "val_precision", "val_recall"):
        assert row_one[key] == row_two[key], key
    assert float(row_two["val_loss"]) == pytest.approx(float(row_one["val_loss"]), rel=1e-6)

    # A real two-process training run: one set of files, written once.
    ddp = run(command("unet", kvasir, "--out", tmp_path / "ddp", *TINY_UNET, *FAST, "--epochs", "2",
                      launcher=torchrun))  # fmt: skip
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    rows = read_metrics(tmp_path / "ddp")
    assert [r["epoch"] for r in rows] == ["1", "2"] and rows[-1]["step"] == "4"  # 10 samples / (2 × 2) per step
    assert ddp.stdout.count("best: ") == 1
    unetzoo.from_pretrained(tmp_path / "ddp" / "best")


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead


@pytest.mark.slow
def test_a_full_disk_is_a_one_line_error_and_loses_nothing(kvasir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = run(command("unet", kvasir, "--out", run_dir, *TINY_UNET, *FAST, "--epochs", "1"))
    assert first.returncode == 0, first.stderr[-3000:]
    before = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    full = run(command("--resume", run_dir, "--epochs", "2", "--quiet"), preexec_fn=_limit_file_size)
    assert full.returncode == 2, full.stderr[-3000:]
    assert "Traceback" not in full.stderr and "cannot write (no space left" in full.stderr
    assert len(full.stderr.strip().splitlines()) == 1
    for path in ("best/model.safetensors", "best/config.json", "last/model.safetensors", "config.yaml"):
        assert (run_dir / path).read_bytes() == before[Path(path)], path
    assert not list((run_dir / "checkpoints").glob(".tmp-*")) and not list(run_dir.glob(".*.tmp"))
    unetzoo.from_pretrained(run_dir / "best")
    again = run(command("--resume", run_dir, "--epochs", "2", "--quiet"))
    assert again.returncode == 0, again.stderr[-3000:]
    assert [r["epoch"] for r in read_metrics(run_dir)] == ["1", "2"]
