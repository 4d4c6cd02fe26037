"""Kvasir-SEG polyps: an ImageNet-pretrained encoder that installs offline, then the test set once.

Protocol (as Jha et al. report ResUNet++ and the PraNet protocol reports U-Net / U-Net++):
mean over test images of each image's Dice and IoU (mDice, mIoU) of the binary polyp mask.
The split is ours, seeded and saved in ``benchmarks/splits/kvasir.json``: 800 training, 100
validation and 98 test images of the 998 in ``../shared/datasets/Kvasir-SEG`` (256×256).
Published figures come from other splits (ResUNet++: its own 80/10/10 split; PraNet: 900
training / 100 test images): comparable in protocol, not image for image.

1. Training: ``unetzoo finetune --config CONFIG`` (skipped when finished, resumed when
   interrupted); the best epoch by validation Dice is kept.
2. Settings: test-time augmentation (none or D4) and threshold chosen on the 100 validation
   images (mean per-image Dice).
3. Test: one evaluation of the 98 test images.

Two configurations: ``benchmarks/configs/kvasir.yaml`` (U-Net decoder, EfficientNet-Lite0
encoder) and ``--attention`` (``kvasir_attention.yaml``: the same with attention gates).

Run:  python benchmarks/accuracy_kvasir.py [--attention] [--run runs/bench-kvasir]
Writes benchmarks/results/accuracy_kvasir[_attention].json and .png.
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
KVASIR = SHARED / "Kvasir-SEG"
OUT = HERE / "results"
# Published mean per-image Dice / IoU, as ../shared/README.md collects them.
PUBLISHED = {
    "ResUNet++ (Jha et al. 2019)": {"mdice": 0.8133, "miou": 0.7927},
    "U-Net (PraNet protocol)": {"mdice": 0.818},
    "U-Net++ (PraNet protocol)": {"mdice": 0.821},
    "PraNet (Fan et al. 2020)": {"mdice": 0.898},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--attention", action="store_true", help="the attention-gated variant")
    parser.add_argument("--run", type=Path, default=None, help="the run folder (default: runs/bench-kvasir[-attention])")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if not KVASIR.is_dir():
        sys.exit(f"{KVASIR}: the Kvasir-SEG dataset is not there (see ../shared/README.md)")
    suffix = "_attention" if args.attention else ""
    config = HERE / "configs" / f"kvasir{suffix}.yaml"
    run = args.run or REPO / "runs" / f"bench-kvasir{suffix.replace('_', '-')}"
    train(config, run)
    source = load_source(str(run))
    began = time.perf_counter()
    chosen = choose_on_validation(source, KVASIR, "dice", "per_image")
    test = evaluate(source, KVASIR, split="test", tta=chosen["tta"], threshold=chosen["threshold"])
    p, g = test.per_image_scores, test.global_scores
    ours = {"mdice": p["dice"], "miou": p["iou"], "precision": p["precision"], "recall": p["recall"],
            "global_dice": g["dice"], "global_iou": g["iou"]}  # fmt: skip
    report = {
        "dataset": "Kvasir-SEG, split benchmarks/splits/kvasir.json: 800 train / 100 validation / 98 test",
        "protocol": "mean over test images of per-image Dice and IoU (mDice, mIoU)",
        "model": source.model.config,
        "test": {k: round(v, 4) for k, v in ours.items()},
        "test_images": len(test.per_image),
        "chosen_on_validation": chosen,
        "published": PUBLISHED,
        "training": training_summary(config, run, source),
        "evaluation_seconds": round(time.perf_counter() - began, 1),
        "command": "python benchmarks/accuracy_kvasir.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"accuracy_kvasir{suffix}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps(report["test"], indent=1))
    plot(history(run), report["test"], PUBLISHED, ["mdice", "miou"], "Kvasir-SEG test: mean per-image scores",
         args.out / f"accuracy_kvasir{suffix}.png")


if __name__ == "__main__":
    main()
