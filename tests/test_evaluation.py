"""unetzoo evaluate: both aggregations, the run's own validation Dice, several processes, bad input."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

from tests.training_utils import REPO, TINY_UNET, command, copy_kvasir, invoke, run
from unetzoo.cli import app

CROP = [*TINY_UNET, "--crop", "32x32", "--batch-size", "2", "--workers", "0", "--mixed-precision", "no",
        "--quiet", "--samples", "1", "--val", "0.25", "--lr", "0.01"]  # fmt: skip


@pytest.fixture(scope="module")
def trained(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny run on 12 Kvasir images: crops for training, whole images for validation."""
    data = copy_kvasir(shared, tmp_path_factory.mktemp("kvasir"))
    out = tmp_path_factory.mktemp("runs") / "run"
    result = invoke("unet", data, "--out", out, *CROP, "--max-steps", "3")
    assert result.exit_code == 0, result.output
    return data, out


def evaluate(*args: str):
    from typer.testing import CliRunner

    return CliRunner().invoke(app, ["evaluate", *map(str, args)], env={"COLUMNS": "200"})


def test_evaluate_reproduces_the_run_validation_dice(trained, tmp_path: Path) -> None:
    _, out = trained
    result = evaluate(out, "--split", "val", "--json", tmp_path / "e.json", "--per-image", tmp_path / "e.csv")
    assert result.exit_code == 0, result.output
    assert "global: pixels pooled" in result.output and "per_image: mean of images" in result.output
    report = json.loads((tmp_path / "e.json").read_text())
    with (out / "metrics.csv").open() as f:
        logged = [row for row in csv.DictReader(f)][-1]
    assert report["samples"] == 3 and report["settings"]["split"] == "val"
    for key in ("dice", "iou", "precision", "recall"):
        assert report["global"][key] == pytest.approx(float(logged[f"val_{key}"]), abs=1e-12), key
    with (tmp_path / "e.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3
    assert report["per_image_mean"]["dice"] == pytest.approx(sum(float(r["dice"]) for r in rows) / 3, abs=1e-12)


def test_tta_window_and_auto_threshold(trained, tmp_path: Path) -> None:
    data, out = trained
    result = evaluate(out, data, "--split", "val", "--tta", "d4", "--window", "64x64", "--threshold", "auto",
                      "--json", tmp_path / "e.json")  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "e.json").read_text())
    assert 0 < report["threshold"] < 1 and report["settings"]["tta"] == "d4"
    assert report["settings"]["window"] == [64, 64]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--threshold", "high"], "--threshold 'high': give a probability"),
        (["--split", "test"], "no split folders and no run split.json"),
        (["--roi"], "has no region-of-interest masks"),
        (["--tta", "d8"], "unknown test-time augmentation 'd8'"),
    ],
)
def test_bad_evaluate_options(trained, args: list[str], needle: str) -> None:
    data, out = trained
    result = evaluate(out / "best", data, "--split", "all", *args) if args[0] != "--split" else evaluate(
        out / "best", data, *args)  # fmt: skip
    assert result.exit_code == 2, result.output
    assert needle in " ".join(result.output.split()) and "Traceback" not in result.output


@pytest.mark.slow
def test_two_processes_evaluate_exactly_as_one(trained, tmp_path: Path) -> None:
    data, out = trained
    args = ["evaluate", out / "best", data, "--split", "all", "--json"]
    one = run([sys.executable, "-m", "unetzoo", *map(str, args), tmp_path / "one.json"])
    assert one.returncode == 0, one.stderr[-2000:]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29534"]
    two = run([*torchrun, "-m", "unetzoo", *map(str, args), tmp_path / "two.json"], cwd=REPO)
    assert two.returncode == 0, two.stderr[-2000:]
    a, b = (json.loads((tmp_path / n).read_text()) for n in ("one.json", "two.json"))
    assert a["samples"] == b["samples"] == 12 and b["settings"]["processes"] == 2
    assert a["global"] == b["global"] and a["per_image_mean"] == b["per_image_mean"]
    assert two.stdout.count("global: pixels pooled") == 1


def test_command_helper_is_the_module_entry_point() -> None:
    assert command("x")[1:4] == ["-m", "unetzoo", "finetune"]


def test_window_is_rounded_to_the_stride_and_class_mismatch_refused(trained, tmp_path: Path) -> None:
    data, out = trained
    result = evaluate(out, data, "--split", "val", "--window", "50x50", "--json", tmp_path / "e.json")
    assert result.exit_code == 0, result.output
    assert "--window rounded up to 64x64, a multiple of the model's stride 16" in " ".join(result.output.split())
    assert json.loads((tmp_path / "e.json").read_text())["settings"]["window"] == [64, 64]
    import unetzoo

    unetzoo.create_model("unet", classes=3, encoder_channels=(4, 8, 8, 16), bottleneck_channels=16,
                         decoder_channels=(8, 8, 8, 4)).save_pretrained(tmp_path / "three")  # fmt: skip
    mismatch = evaluate(tmp_path / "three", data, "--split", "all")
    assert mismatch.exit_code == 2 and "the dataset has 2 classes (background, foreground), the model 3" in " ".join(
        mismatch.output.split())  # fmt: skip


def test_a_saved_model_carries_its_clahe_and_size_to_evaluate(kvasir: Path, tmp_path: Path) -> None:
    """A model trained on CLAHE images (and resized inputs) is evaluated the same way from its
    folder alone, as a shipped weight tag is: the logged validation Dice comes back."""
    import json

    import unetzoo
    from tests.training_utils import TINY_UNET, invoke, read_metrics
    from unetzoo.evaluation import evaluate, load_source, training_size

    run = tmp_path / "run"
    result = invoke("unet", kvasir, "--out", run, *TINY_UNET, "--crop", "64x64", "--clahe", "--batch-size", "2",
                    "--workers", "0", "--mixed-precision", "no", "--quiet", "--max-steps", "12", "--samples", "0",
                    "--lr", "0.01")  # fmt: skip
    assert result.exit_code == 0, result.output
    prep = json.loads((run / "best" / "config.json").read_text())["preprocessing"]
    assert prep["clahe"] is True and prep.get("input_size") is None
    alone = load_source(str(run / "best"))  # no run options: only what the folder says
    ev = evaluate(alone, kvasir, split=str(run / "split.json"))
    logged = float(read_metrics(run)[-1]["val_dice"])
    assert ev.global_scores["dice"] == pytest.approx(logged, abs=1e-4)
    config = json.loads((run / "best" / "config.json").read_text())
    config["preprocessing"]["clahe"] = False
    (run / "best" / "config.json").write_text(json.dumps(config))
    without = evaluate(load_source(str(run / "best")), kvasir, split=str(run / "split.json"))
    # without CLAHE the same weights see other inputs: other probabilities
    assert without.global_scores["auc"] != pytest.approx(ev.global_scores["auc"], abs=1e-6)

    sized = tmp_path / "sized"
    result = invoke("unet", kvasir, "--out", sized, *TINY_UNET, "--size", "32x48", "--batch-size", "2",
                    "--workers", "0", "--mixed-precision", "no", "--quiet", "--max-steps", "1", "--samples", "0")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert training_size(load_source(str(sized / "best"))) == (32, 48)
    assert unetzoo.from_pretrained(sized / "best").pretrained_info["preprocessing"]["input_size"] == [32, 48]
