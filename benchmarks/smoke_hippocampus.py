"""3D smoke benchmark: ``attn_unet3d_cbam`` learns the left hippocampus of one brain and is
tested on the right one, mirrored. A smoke test of the 3D path, not a clinical result.

Data: ``../shared/datasets/mricron-ch2``: the ch2 T1 MRI (181×217×181, 1 mm) with the AAL
atlas aligned to it (37 = left hippocampus, 38 = right). Three 48×64×56 boxes are cut:
``left`` (centred on the left hippocampus; training), ``left_shifted`` (the same region moved
by 6 voxels; validation, which only picks the epoch) and ``right_mirrored`` (centred on the
right hippocampus, flipped left-right so that it looks like a left one; test). Each label is
that box's hippocampus (1) against everything else (0).

Training: ``unetzoo finetune`` with ``benchmarks/configs/hippocampus.yaml`` (random 32×48×48
crops). Test: Dice and HD95 in millimetres of the right hippocampus, and the attention maps
(CBAM spatial attention of every stage) drawn by ``unetzoo explain``.

Run:  python benchmarks/smoke_hippocampus.py [--run runs/bench-hippocampus]
Writes benchmarks/results/smoke_hippocampus.json and benchmarks/results/hippocampus/*.png.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from accuracy_common import REPO, SHARED, history, machine, train, training_summary

from unetzoo.data import write_volume
from unetzoo.evaluation import evaluate, load_source
from unetzoo.explanation import explain_files

HERE = Path(__file__).resolve().parent
CH2 = SHARED / "mricron-ch2"
CONFIG = HERE / "configs" / "hippocampus.yaml"
OUT = HERE / "results"
BOX = (48, 64, 56)


def make_data(folder: Path) -> Path:
    """The three boxes as NIfTI pairs in ``images/`` and ``labels/``, and the split file."""
    image = nib.load(CH2 / "ch2.nii.gz")
    volume = np.asarray(image.dataobj, dtype=np.float32)
    atlas = np.asarray(nib.load(CH2 / "aal.nii.gz").dataobj)
    for sub in ("images", "labels"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    boxes = {}
    for name, value, shift, mirror in (("left", 37, 0, False), ("left_shifted", 37, 6, False),
                                        ("right_mirrored", 38, 0, True)):  # fmt: skip
        centre = np.argwhere(atlas == value).mean(0).round().astype(int) + shift
        lo = [c - b // 2 for c, b in zip(centre, BOX, strict=True)]
        window = tuple(slice(s, s + b) for s, b in zip(lo, BOX, strict=True))
        img, lab = volume[window], (atlas[window] == value).astype(np.uint8)
        if mirror:
            img, lab = img[::-1].copy(), lab[::-1].copy()
        write_volume(folder / "images" / f"{name}.nii.gz", img, np.diag([1.0, 1.0, 1.0, 1.0]))
        write_volume(folder / "labels" / f"{name}.nii.gz", lab, np.diag([1.0, 1.0, 1.0, 1.0]))
        boxes[name] = {"start": [int(v) for v in lo], "size": list(BOX), "mirrored": mirror, "voxels": int(lab.sum())}
    split = {"split": {"train": ["left"], "val": ["left_shifted"], "test": ["right_mirrored"]}, "boxes": boxes}
    (folder / "split.json").write_text(json.dumps(split, indent=1) + "\n")
    return folder


def _first(row: dict, prefix: str) -> float:
    """The first per-image value whose name starts with ``prefix`` (``hd95_<class>``)."""
    return float(next(v for k, v in row.items() if k.startswith(prefix)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, default=REPO / "runs" / "bench-hippocampus")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if not CH2.is_dir():
        sys.exit(f"{CH2}: the mricron-ch2 data is not there (see ../shared/README.md)")
    data = make_data(REPO / "runs" / "bench-hippocampus-data")
    train(CONFIG, args.run)
    source = load_source(str(args.run))
    began = time.perf_counter()
    test = evaluate(source, data, split=str(data / "split.json"))
    row = test.per_image[0]
    pictures = args.out / "hippocampus"
    written = explain_files(source, [str(data / "images" / "right_mirrored.nii.gz")], pictures,
                            masks=[str(data / "labels" / "right_mirrored.nii.gz")])  # fmt: skip
    report = {
        "smoke_test": "one subject; trained on the left hippocampus, tested on the mirrored right one; "
                      "not a clinical result",
        "test": {"dice": round(row["dice"], 4), "hd95_mm": round(_first(row, "hd95"), 2),
                 "assd_mm": round(_first(row, "assd"), 2)},
        "boxes": json.loads((data / "split.json").read_text())["boxes"],
        "training": training_summary(CONFIG, args.run, source),
        "pictures": [str(p.relative_to(REPO)) for p in written],
        "evaluation_seconds": round(time.perf_counter() - began, 1),
        "command": "python benchmarks/smoke_hippocampus.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "smoke_hippocampus.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["test"]), len(history(args.run)), "epochs")


if __name__ == "__main__":
    main()
