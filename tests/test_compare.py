"""unetzoo compare: one run per model or loss setting, a table and a chart, resumable."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.training_utils import FAST, TINY_UNET
from unetzoo.cli import app
from unetzoo.training.compare import parse_loss_sweep
from unetzoo.training.config import ConfigError

SHORT = [*TINY_UNET, *FAST, "--epochs", "2", "--val", "0.25"]


def compare(*args) -> object:
    return CliRunner().invoke(app, ["compare", *map(str, args)])


def one_line_error(result, needle: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and needle in " ".join(result.output.split()), result.output


def test_two_models_give_both_rows_a_chart_and_no_rerun(kvasir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    result = compare(kvasir, "--models", "unet,attn_unet", "--out", out, *SHORT)
    assert result.exit_code == 0, result.output
    with (out / "comparison.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["entry"] for r in rows] == ["unet", "attn_unet"]
    for row in rows:
        run = out / row["entry"]
        metrics = list(csv.DictReader((run / "metrics.csv").open()))
        assert len(metrics) == int(row["epochs"]) == 2
        best = max(metrics, key=lambda m: float(m["val_dice"]))
        assert float(row["best_val_dice"]) == pytest.approx(float(best["val_dice"]), abs=1e-4)
        assert int(row["best_epoch"]) == int(best["epoch"]) and int(row["parameters"]) > 0
        # the same split and seed for every entry
        assert json.loads((run / "split.json").read_text())["split"] == json.loads(
            (out / "unet" / "split.json").read_text())["split"]  # fmt: skip
    assert (out / "comparison.md").read_text().count("\n") == 4
    assert (out / "comparison.png").stat().st_size > 1000
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("metrics.csv")}
    again = compare(kvasir, "--models", "unet,attn_unet", "--out", out, *SHORT)
    assert again.exit_code == 0, again.output
    assert "unet: skip" in again.output and "attn_unet: skip" in again.output
    assert {p: p.stat().st_mtime_ns for p in out.rglob("metrics.csv")} == stamps  # nothing trained again
    # a third model joins without the first two running again
    more = compare(kvasir, "--models", "unet,attn_unet,r2unet", "--out", out, *SHORT)
    assert more.exit_code == 0, more.output
    assert "r2unet: run" in more.output and "unet: skip" in more.output
    assert len(list(csv.DictReader((out / "comparison.csv").open()))) == 3


def test_loss_sweep_runs_one_entry_per_value(kvasir: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    result = compare(kvasir, "--models", "unet", "--out", out, "--loss-sweep", "dice_bce:alpha=0,1", *SHORT,
                     "--max-steps", "2")  # fmt: skip
    assert result.exit_code == 0, result.output
    for value in (0, 1):
        saved = yaml.safe_load((out / f"dice_bce-alpha={value}" / "config.yaml").read_text())
        assert saved["loss"] == "dice_bce" and saved["loss_args"] == {"alpha": value}
    assert "dice_bce alpha=1" in (out / "comparison.md").read_text()


def test_parse_loss_sweep() -> None:
    assert parse_loss_sweep("dice_bce:alpha=0,0.25,1") == ("dice_bce", "alpha", [0, 0.25, 1])
    for bad in ("dice_bce", "dice_bce:alpha=", "dice_bce:alpha=a,b", "dice_bce:alpha=1,1"):
        with pytest.raises(ConfigError, match="--loss-sweep"):
            parse_loss_sweep(bad)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--epochz", "2"], "No such option: --epochz"),
        (["--resume", "x"], "--resume: compare gives every entry its own run folder"),
        (["--loss-sweep", "dice_bce:alpha=x"], "--loss-sweep 'dice_bce:alpha=x': 'x' is not a number"),
        (["--optimizer", "adamx"], "--optimizer 'adamx'"),
    ],
)
def test_bad_options_are_one_line_errors(kvasir: Path, tmp_path: Path, args: list[str], needle: str) -> None:
    one_line_error(compare(kvasir, "--models", "unet,attn_unet", "--out", tmp_path / "c", *TINY_UNET, *args), needle)
    assert not (tmp_path / "c").exists()  # nothing trained or written


def test_changed_options_are_refused_not_skipped(kvasir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    assert compare(kvasir, "--models", "unet", "--out", out, *SHORT, "--max-steps", "2").exit_code == 0
    one_line_error(compare(kvasir, "--models", "unet", "--out", out, *SHORT, "--max-steps", "2", "--lr", "0.1"),
                   "trained with lr: 0.001, now asked 0.1")  # fmt: skip
