"""ISBI 2012 EM membranes: a U-Net on 25 of the 30 training slices, tested on the other 5.

NOT comparable with the challenge leaderboard: the challenge scores a hidden 30-slice test
stack (Ronneberger et al. 2015 report a pixel error of 0.0611 and a Rand error of 0.0382
there); the test slices here are slices 25-29 of the public training stack, next to the
training slices in the same volume.

The labels mark cell interiors 255 and membranes 0; "foreground" is the cell interior, as the
label files encode it. Pixel error is 1 - accuracy over all pixels of the 5 test slices;
foreground F1 is the Dice of the pooled cell-interior pixels, membrane F1 that of the
membrane pixels. Threshold and test-time augmentation are chosen on slices 22-24.

Run:  python benchmarks/accuracy_isbi.py [--run runs/bench-isbi]
Writes benchmarks/results/accuracy_isbi.json and accuracy_isbi.png.
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
ISBI = SHARED / "isbi2012-membrane" / "train"
CONFIG = HERE / "configs" / "isbi.yaml"
SPLIT = HERE / "splits" / "isbi.json"
OUT = HERE / "results"


def membrane_f1(g: dict[str, float]) -> float:
    """F1 of the membrane (the negative class) from the pooled foreground scores and the test
    slices' pixel counts: ``tp = recall * P``, ``fp = tp / precision - tp``, ``tn = N - tp - fn - fp``."""
    from unetzoo.data import open_dataset

    dataset = open_dataset(ISBI)
    test_ids = json.loads(SPLIT.read_text())["split"]["test"]
    masks = [dataset[dataset.ids.index(i)].mask for i in test_ids]
    positives = sum(int((m > 0).sum()) for m in masks)
    total = sum(m.size for m in masks)
    tp = g["recall"] * positives
    fn = positives - tp
    fp = tp / g["precision"] - tp if g["precision"] > 0 else 0.0
    tn = total - tp - fn - fp
    return 2 * tn / (2 * tn + fp + fn)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, default=REPO / "runs" / "bench-isbi")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if not ISBI.is_dir():
        sys.exit(f"{ISBI}: the ISBI 2012 stack is not there (see ../shared/README.md)")
    train(CONFIG, args.run)
    source = load_source(str(args.run))
    began = time.perf_counter()
    chosen = choose_on_validation(source, ISBI, "dice", "global")
    test = evaluate(source, ISBI, split=str(SPLIT), tta=chosen["tta"], threshold=chosen["threshold"])
    g = test.global_scores
    ours = {"pixel_error": 1 - g["accuracy"], "foreground_f1": g["dice"], "membrane_f1": membrane_f1(g),
            "foreground_iou": g["iou"]}  # fmt: skip
    report = {
        "not_comparable": "test = slices 25-29 of the public training stack, not the challenge's hidden test stack",
        "test": {k: round(v, 4) for k, v in ours.items()},
        "chosen_on_validation": chosen,
        "training": training_summary(CONFIG, args.run, source),
        "evaluation_seconds": round(time.perf_counter() - began, 1),
        "command": "python benchmarks/accuracy_isbi.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "accuracy_isbi.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["test"], indent=1))
    plot(history(args.run), report["test"], {}, ["foreground_f1", "membrane_f1"], "ISBI 2012, slices 25-29",
         args.out / "accuracy_isbi.png")


if __name__ == "__main__":
    main()
