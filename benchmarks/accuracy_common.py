"""What the accuracy benchmarks share: finish a training run, choose the inference settings on
validation data, evaluate the test data once, describe the machine.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import torch
from timing import cpu_model

from unetzoo.evaluation import Evaluation, Source, evaluate
from unetzoo.training.config import read_yaml
from unetzoo.training.run_folder import RunFolder

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"


def train(config: Path, run: Path) -> None:
    """Finish the run of ``config`` in ``run``: new, resumed, or nothing when its last epoch is logged."""
    folder = RunFolder(run)
    epochs = int(read_yaml(config)["epochs"])
    if len(history(run)) >= epochs and (run / "best").is_dir():
        return
    argv = [sys.executable, "-m", "unetzoo", "finetune", "--quiet"]
    argv += ["--resume", str(run)] if folder.latest_checkpoint() else ["--config", str(config), "--out", str(run)]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    subprocess.run(argv, check=True, cwd=REPO, env=env)


def history(run: Path) -> list[dict[str, str]]:
    """The rows of the run's metrics.csv (none before its first epoch)."""
    return RunFolder(run).read_metrics()


def choose_on_validation(source: Source, data: Path, metric: str, aggregation: str, **opts) -> dict:
    """TTA (none or D4) and threshold (``auto``: the best global Dice) from the run's validation
    split alone; the candidate that scores best on ``metric`` of ``aggregation`` wins."""
    candidates = {}
    for tta in ("none", "d4"):
        ev = evaluate(source, data, split="val", tta=tta, threshold="auto", **opts)
        value = scores_of(ev, aggregation)[metric]
        candidates[tta] = {"threshold": ev.threshold, f"val_{metric}": round(value, 4)}
        print(f"validation, tta {tta}: threshold {ev.threshold}, {metric} {value:.4f}", flush=True)
    tta = max(candidates, key=lambda k: candidates[k][f"val_{metric}"])
    return {"tta": tta, "threshold": candidates[tta]["threshold"], "candidates": candidates}


def scores_of(ev: Evaluation, aggregation: str) -> dict[str, float]:
    return ev.global_scores if aggregation == "global" else ev.per_image_scores


def machine() -> dict:
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "python": platform.python_version(), "torch": torch.__version__}  # fmt: skip


def training_summary(config: Path, run: Path, source: Source) -> dict:
    rows = history(run)
    best = max(rows, key=lambda r: float(r["val_dice"]))
    return {"config": str(config.relative_to(REPO)), "epochs": len(rows), "best_epoch": int(best["epoch"]),
            "best_val_dice": round(float(best["val_dice"]), 4),
            "seconds": round(sum(float(r["seconds"]) for r in rows), 1),
            "parameters": sum(p.numel() for p in source.model.parameters())}  # fmt: skip


def plot(rows: list[dict[str, str]], ours: dict, published: dict, names: list[str], title: str, path: Path,
         low: float = 0.7) -> None:  # fmt: skip
    """Validation Dice and training loss per epoch beside bars of our test metrics and the papers'."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    epochs = [int(r["epoch"]) for r in rows]
    left.plot(epochs, [float(r["val_dice"]) for r in rows], label="validation Dice")
    left.plot(epochs, [float(r["train_loss"]) for r in rows], label="training loss")
    left.set_xlabel("epoch")
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    contenders = {"unetzoo (test)": ours, **published}
    width = 0.8 / len(contenders)
    for i, (label, values) in enumerate(contenders.items()):
        right.bar([j + i * width for j in range(len(names))], [values.get(n, 0) or 0 for n in names], width,
                  label=label.split(" (")[0])  # fmt: skip
    right.set_xticks([j + 0.4 - width / 2 for j in range(len(names))], names, fontsize=8)
    right.set_ylim(low, 1.0)
    right.legend(fontsize=7)
    right.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
