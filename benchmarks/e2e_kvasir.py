"""End to end on Kvasir-SEG: ``unetzoo finetune`` against segmentation_models_pytorch in a plain loop.

All contenders train U-Net with a ResNet-34 encoder from random weights (no ImageNet ResNet
weights can be fetched here) on the 800 training images of ``benchmarks/splits/kvasir.json``,
for the same number of epochs, validating on its 100 validation images after every epoch:

- ``unetzoo``: ``unetzoo finetune`` with ``benchmarks/configs/e2e_kvasir.yaml`` and its
  defaults otherwise: mixed precision ``auto`` (bf16 on a CPU that computes it natively, fp32
  on one that does not), channels-last, a fused optimizer step, the ``standard`` preset;
- ``unetzoo_fp32``: the same with ``--mixed-precision no``, to compare at equal precision;
- ``smp``: ``smp.Unet("resnet34")`` in a hand-written loop of the kind its examples show: a
  ``Dataset`` reading the files with OpenCV, albumentations (the same transforms as unetzoo's
  ``standard`` preset, written out), a ``DataLoader``, ``DiceLoss + BCEWithLogitsLoss``, AdamW
  with a cosine schedule, fp32;
- ``smp_bf16``: that loop under ``torch.autocast("cpu", bfloat16)`` with channels-last
  tensors, the precision unetzoo's default chooses (only on a CPU with native bf16).

The same settings everywhere: 128×128 inputs (resized), batch 8, one DataLoader worker,
AdamW (lr 1e-3, weight decay 1e-4), cosine decay over the run, one intra-op thread. Each run
is its own subprocess; its wall clock and CPU time (its own and its loader worker's, from
``RUSAGE_CHILDREN``) cover everything from start to exit: start-up, data reading, training
and the validation after each epoch (for unetzoo also its checkpoint, ``best/``, ``last/``
and curves). The contenders alternate in rounds (one run of each per round) and the figures
are medians over the rounds. The throughput is training samples (800 × epochs) over those
seconds.

The final validation Dice is measured the same way for every run, by this script, in fp32:
each of the 100 validation images resized to 128×128, ImageNet-normalised, the logits resized
back to the mask's size, threshold 0.5 on the probability, Dice per image, mean over images.
The validation split is used; the test split is not touched.

Run:  python benchmarks/e2e_kvasir.py [--epochs 4] [--rounds 3] [--out benchmarks/results]
Writes benchmarks/results/e2e_kvasir.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from timing import cpu_model

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
KVASIR = REPO.parent / "shared" / "datasets" / "Kvasir-SEG"
SPLIT = HERE / "splits" / "kvasir.json"
CONFIG = HERE / "configs" / "e2e_kvasir.yaml"
SIZE, BATCH, LR, WEIGHT_DECAY, SEED = 128, 8, 1e-3, 1e-4, 0
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def ids(split: str) -> list[str]:
    return json.loads(SPLIT.read_text())["split"][split]


def files(name: str) -> tuple[Path, Path]:
    return KVASIR / "images" / f"{name}.jpg", KVASIR / "masks" / f"{name}.jpg"


# ------------------------------------------------------------------ the smp contender


def smp_train(epochs: int, out: Path, bf16: bool) -> None:
    """A plain training loop with segmentation_models_pytorch (runs in its own process).

    ``bf16``: forward passes under ``torch.autocast("cpu", bfloat16)``, channels-last tensors.
    """
    import albumentations as A
    import cv2
    import segmentation_models_pytorch as smp
    from torch.utils.data import DataLoader, Dataset

    torch.manual_seed(SEED)
    np.random.seed(SEED)

    class Polyps(Dataset):
        def __init__(self, names: list[str], transform) -> None:
            self.names, self.transform = names, transform

        def __len__(self) -> int:
            return len(self.names)

        def __getitem__(self, i: int):
            image_path, mask_path = files(self.names[i])
            image = cv2.cvtColor(cv2.imread(str(image_path)), cv2.COLOR_BGR2RGB)
            mask = (cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE) > 127).astype(np.float32)
            t = self.transform(image=image, mask=mask)
            image = (t["image"] / 255.0 - MEAN) / STD
            return torch.from_numpy(image.transpose(2, 0, 1)).float(), torch.from_numpy(t["mask"])[None]

    border = dict(border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0)
    train_tf = A.Compose([
        A.Resize(SIZE, SIZE), A.HorizontalFlip(), A.VerticalFlip(), A.RandomRotate90(),
        A.Affine(translate_percent=(-0.0625, 0.0625), scale=(0.9, 1.1), rotate=(-20, 20), p=0.5, **border),
        A.RandomBrightnessContrast(p=0.5),
        A.OneOf([A.GaussNoise(std_range=(0.02, 0.08)), A.GaussianBlur(blur_limit=(3, 5))], p=0.3),
    ], seed=SEED)  # fmt: skip
    val_tf = A.Compose([A.Resize(SIZE, SIZE)])
    train = DataLoader(Polyps(ids("train"), train_tf), batch_size=BATCH, shuffle=True, num_workers=1,
                       drop_last=True, persistent_workers=True)  # fmt: skip
    val = DataLoader(Polyps(ids("val"), val_tf), batch_size=BATCH, num_workers=1, persistent_workers=True)
    memory_format = torch.channels_last if bf16 else torch.contiguous_format
    model = smp.Unet("resnet34", encoder_weights=None, classes=1).to(memory_format=memory_format)
    precision = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * len(train))
    dice, bce = smp.losses.DiceLoss("binary", from_logits=True), torch.nn.BCEWithLogitsLoss()
    for epoch in range(1, epochs + 1):
        model.train()
        began, total = time.perf_counter(), 0.0
        for image, mask in train:
            optimizer.zero_grad()
            with precision:
                logits = model(image.contiguous(memory_format=memory_format)).float()
            loss = dice(logits, mask) + bce(logits, mask)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item()
        model.eval()
        hits = []
        with torch.no_grad():
            for image, mask in val:
                with precision:
                    pred = (model(image.contiguous(memory_format=memory_format)) > 0).float()
                inter = (pred * mask).sum((1, 2, 3))
                hits += (2 * inter / (pred.sum((1, 2, 3)) + mask.sum((1, 2, 3))).clamp_min(1e-6)).tolist()
        print(f"epoch {epoch}: train_loss {total / len(train):.4f}  val_dice@128 {np.mean(hits):.4f}  "
              f"{time.perf_counter() - began:.0f} s", flush=True)  # fmt: skip
    torch.save(model.state_dict(), out / "smp_unet_resnet34.pt")


# ------------------------------------------------------------------ measuring


def run(argv: list[str], env: dict[str, str]) -> dict[str, float]:
    """Wall and CPU seconds of a subprocess and everything it waited for."""
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(argv, check=True, cwd=REPO, env=env)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1)}


def validation_dice(predict) -> float:
    """Mean per-image Dice on the validation split, the same procedure for every run."""
    import cv2

    scores = []
    for name in ids("val"):
        image_path, mask_path = files(name)
        image = cv2.cvtColor(cv2.imread(str(image_path)), cv2.COLOR_BGR2RGB)
        truth = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE) > 127
        x = (cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR) / 255.0 - MEAN) / STD
        x = torch.from_numpy(x.transpose(2, 0, 1)).float()[None]
        with torch.no_grad():
            logits = torch.nn.functional.interpolate(predict(x), size=truth.shape, mode="bilinear")
        pred = (torch.sigmoid(logits)[0, 0] > 0.5).numpy()
        total = pred.sum() + truth.sum()
        scores.append(2 * (pred & truth).sum() / total if total else 1.0)
    return float(np.mean(scores))


def contenders(epochs: int, bf16_native: bool) -> dict[str, list[str]]:
    """Each contender's command line, with ``{work}`` for its own temporary folder.

    Without native bf16, ``unetzoo``'s default is fp32, so ``unetzoo_fp32`` would repeat it
    and ``smp_bf16`` would measure emulated bf16: both are left out.
    """
    finetune = [sys.executable, "-m", "unetzoo", "finetune", "--config", str(CONFIG), "--out", "{work}/run",
                "--epochs", str(epochs), "--quiet"]  # fmt: skip
    plain = [sys.executable, str(Path(__file__).resolve()), "--epochs", str(epochs), "--smp-worker", "{work}"]
    commands = {"unetzoo": finetune, "smp": plain}
    if bf16_native:
        commands["unetzoo_fp32"] = [*finetune, "--mixed-precision", "no"]
        commands["smp_bf16"] = [*plain, "--bf16"]
    return commands


def printable(command: list[str]) -> str:
    """A command line as recorded in the report: ``python`` and paths relative to the checkout."""
    root = str(HERE.parent) + os.sep
    return " ".join(command).replace(sys.executable, "python").replace(root, "")


def trained_model(name: str, work: Path) -> torch.nn.Module:
    """The weights a run ended with, in eval mode."""
    if name.startswith("unetzoo"):
        from unetzoo import from_pretrained

        return from_pretrained(str(work / "run" / "last")).eval()
    import segmentation_models_pytorch as smp

    peer = smp.Unet("resnet34", encoder_weights=None, classes=1)
    peer.load_state_dict(torch.load(work / "smp_unet_resnet34.pt", weights_only=True))
    return peer.eval()


def summarise(runs: list[dict], epochs: int) -> dict:
    """Medians over the rounds, and the throughput they give."""
    wall = statistics.median(r["wall_s"] for r in runs)
    cpu = statistics.median(r["cpu_s"] for r in runs)
    samples = 800 * epochs
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "samples_per_s_wall": round(samples / wall, 3), "samples_per_s_cpu": round(samples / cpu, 3),
            "final_val_dice": sorted({r["final_val_dice"] for r in runs}), "runs": runs}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--smp-worker", type=Path, help=argparse.SUPPRESS)  # the smp subprocess
    parser.add_argument("--bf16", action="store_true", help=argparse.SUPPRESS)  # its precision
    args = parser.parse_args()
    if args.smp_worker:
        torch.set_num_threads(1)
        smp_train(args.epochs, args.smp_worker, args.bf16)
        return
    if not KVASIR.is_dir():
        sys.exit(f"{KVASIR}: the Kvasir-SEG dataset is not there (see ../shared/README.md)")
    import segmentation_models_pytorch as smp

    from unetzoo.training.setup import cpu_supports_bf16

    torch.set_num_threads(1)
    # The unetzoo in this checkout, also for the subprocesses, whatever is installed.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}  # fmt: skip
    bf16_native = cpu_supports_bf16()
    commands = contenders(args.epochs, bf16_native)
    runs: dict[str, list[dict]] = {name: [] for name in commands}
    for round_ in range(1, args.rounds + 1):
        for name, command in commands.items():
            with tempfile.TemporaryDirectory() as tmp:
                measured = run([part.format(work=tmp) for part in command], env)
                measured["final_val_dice"] = round(validation_dice(trained_model(name, Path(tmp))), 4)
            measured["round"] = round_
            runs[name].append(measured)
            print(f"round {round_} {name}: {measured}", flush=True)
    results = {name: summarise(r, args.epochs) for name, r in runs.items()}
    pairs = {"unetzoo/smp": ("unetzoo", "smp"), "unetzoo_fp32/smp": ("unetzoo_fp32", "smp"),
             "unetzoo/smp_bf16": ("unetzoo", "smp_bf16")}  # fmt: skip
    ratios = {
        label: {k: round(results[a][k] / results[b][k], 3) for k in ("samples_per_s_wall", "samples_per_s_cpu")}
        for label, (a, b) in pairs.items() if a in results and b in results
    }  # fmt: skip
    report = {
        "what": "unetzoo finetune vs smp.Unet('resnet34') in a plain loop, Kvasir-SEG 800 train / 100 val",
        "command": "python benchmarks/e2e_kvasir.py " + " ".join(sys.argv[1:]),
        "epochs": args.epochs, "rounds": args.rounds, "size": SIZE, "batch": BATCH, "threads": 1,
        "loader_workers": 1,
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "native_bf16": bf16_native,
                    "torch": torch.__version__, "smp": smp.__version__},
        "commands": {name: printable(c) for name, c in commands.items()},
        "results": results,
        "ratios": ratios,
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "e2e_kvasir.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({"results": {k: {m: v for m, v in r.items() if m != "runs"} for k, r in results.items()},
                      "ratios": ratios}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
