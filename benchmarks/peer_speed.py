"""Speed against the peers: unetzoo's networks against segmentation_models_pytorch and MONAI.

Pairs at equal architecture (random weights, ``classes=1``):

- ``unet_resnet34`` against ``smp.Unet("resnet34")``;
- ``unetpp_resnet34`` against ``smp.UnetPlusPlus("resnet34")``;
- ``attn_unet_resnet34`` against ``smp.Unet("resnet34", decoder_attention_type="scse")``:
  a DIFFERENT attention (additive attention gates on the skips against scSE blocks in the
  decoder), so this pair compares two attention U-Nets, not two implementations of one;
- 3D: ``unet3d`` (widths 32…512, max pooling, transposed-conv upsampling) against MONAI's
  ``BasicUNet(features=(32, 64, 128, 256, 512, 32))``, the same widths and stages.

For each pair: a forward pass (eval mode, ``torch.no_grad``) and a training step (train mode,
forward, Dice-free BCE loss, backward, SGD step), fp32, contiguous tensors, one intra-op
thread, the same input for both. Contenders alternate (ours, peer, ours, peer, ...) after one
untimed call each; each call is timed by process CPU time and wall clock; figures are medians.
The ratio is the peer's median time over ours (above 1: unetzoo is faster).

Run:  python benchmarks/peer_speed.py [--rounds 5 --rounds-3d 3]
Writes benchmarks/results/peer_speed.json and peer_speed.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from timing import clock, cpu_model

from unetzoo.models import create_model

OUT = Path(__file__).resolve().parent / "results"


def pairs() -> list[dict]:
    import monai.networks.nets as mn
    import segmentation_models_pytorch as smp

    return [
        {"name": "unet_resnet34", "ours": lambda: create_model("unet_resnet34", classes=1),
         "peer": lambda: smp.Unet("resnet34", encoder_weights=None, classes=1),
         "peer_name": 'smp.Unet("resnet34")', "input": (2, 3, 256, 256)},
        {"name": "unetpp_resnet34", "ours": lambda: create_model("unetpp_resnet34", classes=1),
         "peer": lambda: smp.UnetPlusPlus("resnet34", encoder_weights=None, classes=1),
         "peer_name": 'smp.UnetPlusPlus("resnet34")', "input": (2, 3, 256, 256)},
        {"name": "attn_unet_resnet34", "ours": lambda: create_model("attn_unet_resnet34", classes=1),
         "peer": lambda: smp.Unet("resnet34", encoder_weights=None, classes=1, decoder_attention_type="scse"),
         "peer_name": 'smp.Unet("resnet34", decoder_attention_type="scse") (a different attention)',
         "input": (2, 3, 256, 256)},
        {"name": "unet3d", "ours": lambda: create_model("unet3d", in_channels=1, classes=1),
         "peer": lambda: mn.BasicUNet(spatial_dims=3, in_channels=1, out_channels=1,
                                      features=(32, 64, 128, 256, 512, 32)),
         "peer_name": "monai.networks.nets.BasicUNet(features=(32, 64, 128, 256, 512, 32))",
         "input": (1, 1, 64, 64, 64)},
    ]  # fmt: skip


def forward(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], object]:
    def run() -> object:
        model.eval()
        with torch.no_grad():
            return model(x)

    return run


def train_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], object]:
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def run() -> object:
        model.train()
        opt.zero_grad(set_to_none=True)
        loss = F.binary_cross_entropy_with_logits(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return run


def alternate(contenders: dict[str, Callable[[], object]], rounds: int, label: str) -> dict:
    for fn in contenders.values():
        fn()
    raw: dict[str, list[tuple[float, float]]] = {n: [] for n in contenders}
    for r in range(rounds):
        for name, fn in contenders.items():
            w0, c0 = clock()
            fn()
            w1, c1 = clock()
            raw[name].append((w1 - w0, c1 - c0))
        print(f"{label} round {r + 1}: " + ", ".join(f"{n} cpu {raw[n][-1][1]:.3f} s" for n in contenders), flush=True)
    return {n: {"median_cpu_s": round(statistics.median(c for _, c in v), 4),
                "median_wall_s": round(statistics.median(w for w, _ in v), 4),
                "cpu_s": [round(c, 4) for _, c in v]} for n, v in raw.items()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds of the 2D pairs")
    parser.add_argument("--rounds-3d", type=int, default=3, help="timed rounds of the 3D pair")
    parser.add_argument("--only", default=None, help="comma-separated pair names")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    began = time.perf_counter()
    report: dict = {"pairs": {}}
    for pair in pairs():
        if args.only and pair["name"] not in args.only.split(","):
            continue
        torch.manual_seed(0)
        ours, peer = pair["ours"](), pair["peer"]()
        gen = torch.Generator().manual_seed(1)
        x = torch.rand(*pair["input"], generator=gen)
        y = (torch.rand(pair["input"][0], 1, *pair["input"][2:], generator=gen) > 0.5).float()
        rounds = args.rounds if len(pair["input"]) == 4 else args.rounds_3d
        fwd = alternate({"unetzoo": forward(ours, x), "peer": forward(peer, x)}, rounds, f"{pair['name']} forward")
        step = alternate({"unetzoo": train_step(ours, x, y), "peer": train_step(peer, x, y)}, rounds,
                         f"{pair['name']} train step")  # fmt: skip
        report["pairs"][pair["name"]] = {
            "peer": pair["peer_name"], "input": list(pair["input"]),
            "parameters": {"unetzoo": sum(p.numel() for p in ours.parameters()),
                           "peer": sum(p.numel() for p in peer.parameters())},
            "forward": fwd, "train_step": step,
            "ratio_forward": round(fwd["peer"]["median_cpu_s"] / fwd["unetzoo"]["median_cpu_s"], 3),
            "ratio_train_step": round(step["peer"]["median_cpu_s"] / step["unetzoo"]["median_cpu_s"], 3),
        }  # fmt: skip
        print(json.dumps({k: report["pairs"][pair["name"]][k] for k in ("ratio_forward", "ratio_train_step")}))
    import monai
    import segmentation_models_pytorch as smp

    report["meta"] = {
        "command": " ".join(["python benchmarks/peer_speed.py", *sys.argv[1:]]),
        "cpu": cpu_model(), "cores": os.cpu_count(), "intra_op_threads": torch.get_num_threads(),
        "seconds_total": round(time.perf_counter() - began, 1), "python": platform.python_version(),
        "torch": torch.__version__, "smp": smp.__version__, "monai": monai.__version__,
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "peer_speed.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.out / "peer_speed.png")


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["pairs"])
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for i, name in enumerate(names):
        r = report["pairs"][name]
        ax.bar(i - 0.2, r["ratio_forward"], 0.4, color="C0", label="forward" if i == 0 else None)
        ax.bar(i + 0.2, r["ratio_train_step"], 0.4, color="C1", label="training step" if i == 0 else None)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_ylabel("peer time / unetzoo time")
    ax.set_title("unetzoo against smp (2D) and MONAI (3D), one CPU thread; above 1: unetzoo faster", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
