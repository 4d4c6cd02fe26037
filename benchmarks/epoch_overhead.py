"""What a fine-tuning run writes after each epoch, in CPU seconds: the price of surviving a crash.

``unet_resnet34`` (random weights) with AdamW state after one step, as after an epoch of
``unetzoo finetune``; each piece is what the ``Trainer`` calls at the end of an epoch, timed
by process CPU time and wall clock, median of ``--rounds``:

- ``checkpoint``: ``Accelerator.save_state`` of model, optimizer, scheduler and RNG states
  into a temporary folder, then moved into place (what ``--resume`` reads);
- ``best/`` and ``last/``: ``save_pretrained`` into a temporary folder, swapped in whole;
- ``curves.png``: the loss and metric curves of the run so far (10 epochs).

Run:  python benchmarks/epoch_overhead.py [--rounds 5]
Prints JSON; the figures go to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from pathlib import Path

import torch
from accelerate import Accelerator
from timing import clock

from unetzoo import create_model, save_pretrained
from unetzoo.training.run_folder import RunFolder
from unetzoo.viz import save_curves


def timed(fn) -> tuple[float, float]:
    start = clock()
    fn()
    end = clock()
    return end[0] - start[0], end[1] - start[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = create_model("unet_resnet34", classes=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.rand(2, 3, 64, 64)).mean().backward()
    optimizer.step()
    acc = Accelerator(cpu=True)
    model, optimizer = acc.prepare(model, optimizer)
    rows = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1 / e, "val_dice": 1 - 1 / e} for e in range(1, 11)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = RunFolder(Path(tmp) / "run")
        folder.path.mkdir()

        def checkpoint() -> None:
            target = folder.temporary_checkpoint(100)
            acc.save_state(str(target))
            shutil.rmtree(target)

        pieces = {
            "checkpoint (model + optimizer + RNG)": checkpoint,
            "best/ or last/ (save_pretrained, swapped in)": lambda: folder.replace_folder(
                "last", lambda t: save_pretrained(acc.unwrap_model(model), t)),
            "curves.png": lambda: save_curves(folder.path / "curves.png", rows),
        }  # fmt: skip
        for fn in pieces.values():
            fn()  # warm-up: imports, first allocation
        times = {name: [] for name in pieces}
        for _ in range(args.rounds):
            for name, fn in pieces.items():
                times[name].append(timed(fn))
    result = {name: {"wall_s": round(statistics.median(t[0] for t in ts), 3),
                     "cpu_s": round(statistics.median(t[1] for t in ts), 3)} for name, ts in times.items()}  # fmt: skip
    per_epoch = (result["checkpoint (model + optimizer + RNG)"]["cpu_s"]
                 + 2 * result["best/ or last/ (save_pretrained, swapped in)"]["cpu_s"] + result["curves.png"]["cpu_s"])  # fmt: skip
    print(json.dumps({"pieces": result, "per_epoch_cpu_s_when_best_improves": round(per_epoch, 3),
                      "parameters": sum(p.numel() for p in model.parameters())}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
