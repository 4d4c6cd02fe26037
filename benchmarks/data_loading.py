"""Data-loading throughput per worker: unetzoo's pipeline against a plain PIL + torchvision one.

Both loaders do the same work on the same files, one sample at a time in one process
(one DataLoader worker's view), single-threaded:

- Kvasir-SEG, 256×256, the ``standard`` preset: decode image and JPEG mask, threshold the
  mask, flips, 90° rotation, shift-scale-rotate, brightness-contrast, noise or blur,
  normalise, to tensors.
- DRIVE, 512×512 random crops of the 584×565 images: decode TIFF image, GIF vessel mask and
  GIF field-of-view mask, crop all three alike, normalise, to tensors.

Run:  python benchmarks/data_loading.py [--repeats 3]
Writes benchmarks/results/data_loading.json and data_loading.png.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from unetzoo.data import open_dataset
from unetzoo.data.augment import build_transform
from unetzoo.data.torch_dataset import TorchDataset

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
OUT = Path(__file__).resolve().parent / "results"
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


class RandomRot90:
    """90° rotations for torchvision v2 (it has none): image and mask together."""

    def __call__(self, image, mask):
        k = random.randint(0, 3)
        return torch.rot90(image, k, (-2, -1)), torch.rot90(mask, k, (-2, -1))


class PilTorchvision(torch.utils.data.Dataset):
    """The peer: PIL decoding and torchvision.transforms.v2 augmentation of image and mask."""

    def __init__(self, pairs: list[tuple[Path, ...]], standard: bool, crop: int | None) -> None:
        self.pairs, self.standard, self.crop = pairs, standard, crop
        geo = [v2.RandomHorizontalFlip(), v2.RandomVerticalFlip()]
        if standard:
            geo.append(
                v2.RandomApply(
                    [v2.RandomAffine(degrees=20, translate=(0.0625, 0.0625), scale=(0.9, 1.1))], p=0.5
                )
            )
        self.geometry = v2.Compose(geo) if standard else None
        self.photometric = v2.Compose([
            v2.RandomApply([v2.ColorJitter(brightness=0.2, contrast=0.2)], p=0.5),
            v2.RandomApply([v2.RandomChoice([v2.GaussianNoise(sigma=0.05), v2.GaussianBlur(5)])], p=0.3),
        ]) if standard else None  # fmt: skip
        self.rot90 = RandomRot90()
        self.normalize = v2.Normalize(MEAN, STD)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        image_path, mask_path, *roi_path = self.pairs[i]
        with Image.open(image_path) as im:
            image = tv_tensors.Image(v2.functional.pil_to_tensor(im.convert("RGB")))
        masks = []
        for path in (mask_path, *roi_path):
            with Image.open(path) as m:
                masks.append(tv_tensors.Mask((np.asarray(m.convert("L")) >= 128).astype(np.int64)))
        if self.crop:
            image, *masks = v2.RandomCrop(self.crop)(image, *masks)
        mask = masks[0]
        if self.standard:
            image, mask = self.geometry(image, mask)
            image, mask = self.rot90(image, mask)
        image = v2.functional.to_dtype(image, torch.float32, scale=True)
        if self.standard:
            image = self.photometric(image)
        item = {"image": self.normalize(image), "mask": torch.as_tensor(mask)}
        if roi_path:
            item["roi"] = torch.as_tensor(masks[1]).bool()
        return item


def throughput(dataset, n: int) -> float:
    """Samples per second over ``n`` samples (cycling), after one warm-up sample."""
    dataset[0]
    start = time.perf_counter()
    for i in range(n):
        item = dataset[i % len(dataset)]
        assert item["image"].dtype == torch.float32
    return n / (time.perf_counter() - start)


def cases():
    kvasir = open_dataset(SHARED / "Kvasir-SEG")
    drive = open_dataset(SHARED / "DRIVE")

    kvasir_unetzoo = TorchDataset(kvasir, build_transform("standard", size=256, mean=MEAN, std=STD))
    drive_unetzoo = TorchDataset(
        drive, build_transform("none", size=512, foreground_prob=0.0, mean=MEAN, std=STD)
    )
    drive_pairs = [(it.files["image"], it.files["mask"], it.files["roi"]) for it in drive.items]
    kvasir_pairs = [(it.files["image"], it.files["mask"]) for it in kvasir.items]
    return {
        "kvasir_256_standard": (kvasir_unetzoo, PilTorchvision(kvasir_pairs, True, None), 300),
        "drive_512_crop": (drive_unetzoo, PilTorchvision(drive_pairs, False, 512), 80),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(0)
    results = {}
    for name, (ours, peer, n) in cases().items():
        runs = {"unetzoo": [], "pil_torchvision": []}
        for _ in range(args.repeats):  # alternate, so drift hits both alike
            runs["unetzoo"].append(throughput(ours, n))
            runs["pil_torchvision"].append(throughput(peer, n))
        med = {k: statistics.median(v) for k, v in runs.items()}
        results[name] = {
            "samples": n,
            "unetzoo_samples_per_s": round(med["unetzoo"], 1),
            "pil_torchvision_samples_per_s": round(med["pil_torchvision"], 1),
            "ratio": round(med["unetzoo"] / med["pil_torchvision"], 2),
            "runs": {k: [round(x, 1) for x in v] for k, v in runs.items()},
        }
        print(f"{name}: unetzoo {med['unetzoo']:.1f}/s, PIL+torchvision {med['pil_torchvision']:.1f}/s, "
              f"ratio {results[name]['ratio']}")  # fmt: skip
    OUT.mkdir(exist_ok=True)
    meta = {"machine": platform.processor() or platform.machine(), "threads": 1, "torch": torch.__version__}
    (OUT / "data_loading.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    plot(results)


def plot(results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(x - 0.2, [results[n]["unetzoo_samples_per_s"] for n in names], 0.4, label="unetzoo")
    ax.bar(
        x + 0.2, [results[n]["pil_torchvision_samples_per_s"] for n in names], 0.4, label="PIL + torchvision"
    )
    ax.set_xticks(x, names)
    ax.set_ylabel("samples / s, one worker")
    ax.legend()
    for i, n in enumerate(names):
        ax.text(i, max(results[n]["unetzoo_samples_per_s"], results[n]["pil_torchvision_samples_per_s"]),
                f"×{results[n]['ratio']}", ha="center", va="bottom")  # fmt: skip
    fig.tight_layout()
    fig.savefig(OUT / "data_loading.png", dpi=120)


if __name__ == "__main__":
    main()
