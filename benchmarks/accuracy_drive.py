"""DRIVE retinal vessels: train a zoo model, choose the inference settings on validation, test once.

Protocol (as Alom et al. 2018 report R2U-Net, and SA-UNet, Guo et al. 2020): the official 20
training / 20 test images, the first observer's manual segmentation as ground truth, all
metrics within the field-of-view masks, the pixels of the 20 test images pooled before one
score per metric ("global"). F1 is the Dice of the pooled pixels; ROC-AUC comes from the
pooled probabilities.

1. Training: ``unetzoo finetune --config benchmarks/configs/drive.yaml`` (16 training images,
   4 validation images from the training set, seeded); skipped when the run has finished,
   resumed when it was interrupted.
2. Settings: test-time augmentation (none or D4) and the probability threshold are chosen
   on the 4 validation images (global F1 within the field of view); the test images are not
   looked at.
3. Test: one evaluation of the 20 test images with those settings.

Run:  python benchmarks/accuracy_drive.py [--run runs/bench-drive]
Writes benchmarks/results/accuracy_drive.json and accuracy_drive.png.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from accuracy_common import (
    REPO,
    SHARED,
    choose_on_validation,
    history,
    machine,
    plot,
    train,
    training_summary,
)

from unetzoo.evaluation import evaluate, load_source

HERE = Path(__file__).resolve().parent
DRIVE = SHARED / "DRIVE"
CONFIG = HERE / "configs" / "drive.yaml"
OUT = HERE / "results"
# Published figures on the same protocol, as ../shared/README.md collects them (missing: not listed there).
PUBLISHED = {
    "U-Net (as reported by Alom et al. 2018)": {"f1": 0.8142, "roc_auc": 0.9755},
    "R2U-Net (Alom et al. 2018)": {"f1": 0.8171, "sensitivity": 0.7792, "accuracy": 0.9556, "roc_auc": 0.9784},
    "IterNet": {"roc_auc": 0.9816},
    "SA-UNet (Guo et al. 2020)": {"f1": 0.8263},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, default=REPO / "runs" / "bench-drive", help="the run folder")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if not DRIVE.is_dir():
        sys.exit(f"{DRIVE}: the DRIVE dataset is not there (see ../shared/README.md)")
    train(CONFIG, args.run)
    source = load_source(str(args.run))
    began = time.perf_counter()
    chosen = choose_on_validation(source, DRIVE / "training", "dice", "global", roi=True)
    test = evaluate(source, DRIVE / "test", split="all", roi=True, tta=chosen["tta"], threshold=chosen["threshold"])
    g = test.global_scores
    ours = {"f1": g["dice"], "sensitivity": g["recall"], "specificity": g["specificity"],
            "accuracy": g["accuracy"], "roc_auc": g["auc"], "iou": g["iou"], "precision": g["precision"]}  # fmt: skip
    report = {
        "dataset": "DRIVE, official split: 20 training (16 train + 4 validation) / 20 test images, first observer",
        "protocol": "global (pixels of all test images pooled) within the field-of-view masks",
        "test": {k: round(v, 4) for k, v in ours.items()},
        "per_image_mean_f1": round(test.per_image_scores["dice"], 4),
        "chosen_on_validation": chosen,
        "published": PUBLISHED,
        "training": training_summary(CONFIG, args.run, source),
        "evaluation_seconds": round(time.perf_counter() - began, 1),
        "command": "python benchmarks/accuracy_drive.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "accuracy_drive.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["test"], indent=1))
    plot(history(args.run), report["test"], PUBLISHED, ["f1", "roc_auc", "sensitivity", "specificity", "accuracy"],
         "DRIVE test: global within the field of view", args.out / "accuracy_drive.png")


if __name__ == "__main__":
    main()
