"""One optimizer step over ``unet_resnet34``'s weights: torch's three implementations on a CPU.

- ``loop``: ``foreach=False``, one elementwise pass per term of the update rule and per
  parameter; what ``torch.optim.AdamW(model.parameters())`` runs on a CPU by default;
- ``foreach``: the multi-tensor implementation (the default on CUDA);
- ``fused``: one kernel per group of tensors, what ``unetzoo finetune`` uses on CPU and CUDA.

The parameters are grouped as fine-tuning groups them (encoder and decoder, weights and
undecayed biases/norms), with random gradients; lr 1e-3, weight decay 1e-4 (SGD: momentum 0.9,
Nesterov). One intra-op thread; the three alternate in rounds after one untimed step each;
each round times ``--steps`` steps by process CPU time and wall clock; medians over rounds.

Run:  python benchmarks/optimizer_step.py [--rounds 7 --steps 5]
Writes benchmarks/results/optimizer_step.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import torch
from timing import clock, cpu_model

from unetzoo.models import create_model
from unetzoo.training.optim import parameter_groups

OUT = Path(__file__).resolve().parent / "results"
KINDS = {"loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
OPTIMIZERS = {
    "adamw": lambda groups, kw: torch.optim.AdamW(groups, lr=1e-3, **kw),
    "sgd": lambda groups, kw: torch.optim.SGD(groups, lr=1e-3, momentum=0.9, nesterov=True, **kw),
}


def optimizer(name: str, kind: str) -> torch.optim.Optimizer:
    model = create_model("unet_resnet34", classes=1, encoder_weights=None)
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    return OPTIMIZERS[name](parameter_groups(model, 1e-3, 1e-3, 1e-4), KINDS[kind])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results: dict[str, dict] = {}
    for name in OPTIMIZERS:
        contenders = {kind: optimizer(name, kind) for kind in KINDS}
        parameters = sum(p.numel() for group in contenders["loop"].param_groups for p in group["params"])
        for opt in contenders.values():
            opt.step()  # untimed: allocates the state
        cpu: dict[str, list[float]] = {kind: [] for kind in KINDS}
        wall: dict[str, list[float]] = {kind: [] for kind in KINDS}
        for _ in range(args.rounds):
            for kind, opt in contenders.items():
                w0, c0 = clock()
                for _ in range(args.steps):
                    opt.step()
                w1, c1 = clock()
                cpu[kind].append((c1 - c0) / args.steps * 1000)
                wall[kind].append((w1 - w0) / args.steps * 1000)
        loop = statistics.median(cpu["loop"])
        results[name] = {
            kind: {"cpu_ms": round(statistics.median(cpu[kind]), 1), "wall_ms": round(statistics.median(wall[kind]), 1),
                   "loop_over_this": round(loop / statistics.median(cpu[kind]), 2),
                   "cpu_ms_per_round": [round(v, 1) for v in cpu[kind]]}
            for kind in KINDS
        }  # fmt: skip
        print(name, {k: (v["cpu_ms"], v["loop_over_this"]) for k, v in results[name].items()}, flush=True)
    report = {
        "what": "one optimizer step over unet_resnet34's parameters, loop vs foreach vs fused",
        "command": " ".join(["python benchmarks/optimizer_step.py", *sys.argv[1:]]),
        "parameters": parameters, "rounds": args.rounds, "steps": args.steps, "threads": 1,
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__},
        "results": results,
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "optimizer_step.json").write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
