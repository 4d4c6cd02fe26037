"""Inference speed: batched D4 test-time augmentation, sliding windows against MONAI, evaluate throughput.

One process, one intra-op thread, eval mode, ``torch.no_grad``; the same model weights and
the same inputs for both contenders of a comparison, which alternate in rounds (A, B, A, B,
...), after one untimed warm-up call each. Each call is timed with the wall clock
(``time.perf_counter``) and process CPU time (``time.process_time``); figures are medians.

1. ``tta``: ``unetzoo.inference.predict(inference_model(model), x, tta="d4")`` (what
   evaluate and predict run: batch norms folded, channels-last, the 8 views of a square
   input in chunks of 2 on a CPU) against the common loop of one forward per view on the
   model as it is (flip / rot90 the input, forward, sigmoid, map back, average the
   probabilities); beside them, for the breakdown, ``predict`` on the unchanged model
   (chunks of 2, and all 8 views in one batch) and the loop on the prepared copy. Model
   ``unet`` at widths 16…128 (bottleneck 256), input 1×3×256×256.
2. ``window``: ``unetzoo.inference.predict(model, x, window=..., overlap=0.5,
   blend="gaussian", max_batch=B)`` against ``monai.inferers.sliding_window_inference(x,
   roi, B, predictor, overlap=0.5, mode="gaussian")``, both predictors returning sigmoid
   probabilities; 2D: the same ``unet``, 1×3×320×288, window 128², batch 4; 3D:
   ``unet3d`` at widths 8…64 (bottleneck 128), 1×1×80×96×96, window 64³, batch 4.
   The largest absolute difference of the two outputs is reported, and where it exceeds
   1e-5, the parts that could differ (window grid, Gaussian weights, their clamp) are
   compared one by one.
3. ``evaluate``: ``unetzoo.evaluation.evaluate(load_source(dir), DRIVE/test, split="all",
   roi=True)`` on the 20 full-size DRIVE test images, the ``unet`` above saved with
   ``save_pretrained`` (random weights: the speed, not the scores, is measured); images per
   second of wall and CPU time, ``tta="none"`` and ``"d4"``; the whole call is timed
   (reading and decoding the images and the metrics included).

Run:  python benchmarks/inference_speed.py [--rounds 5 --eval-rounds 2 --eval-d4-rounds 1]
Writes benchmarks/results/inference_speed.json and inference_speed.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from timing import clock, cpu_model

from unetzoo import create_model
from unetzoo.hub import save_pretrained
from unetzoo.inference import importance_map, inference_model, predict, window_starts

DRIVE = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "DRIVE" / "test"
OUT = Path(__file__).resolve().parent / "results"
SEED = 0
UNET_2D = dict(
    encoder_channels=(16, 32, 64, 128), bottleneck_channels=256, decoder_channels=(128, 64, 32, 16)
)
UNET_3D = dict(encoder_channels=(8, 16, 32, 64), bottleneck_channels=128, decoder_channels=(64, 32, 16, 8))


def timed(fn: Callable[[], object]) -> tuple[float, float, object]:
    w0, c0 = clock()
    result = fn()
    w1, c1 = clock()
    return w1 - w0, c1 - c0, result


def alternate(contenders: dict[str, Callable[[], object]], rounds: int, label: str) -> dict:
    """Warm each contender once, then ``rounds`` rounds of one call each, alternating."""
    for fn in contenders.values():
        fn()
    raw = {n: [] for n in contenders}
    for r in range(rounds):
        for name, fn in contenders.items():
            wall, cpu, _ = timed(fn)
            raw[name].append((wall, cpu))
        print(f"{label} round {r + 1}: " + ", ".join(f"{n} wall {raw[n][-1][0]:.3f} s cpu {raw[n][-1][1]:.3f} s"
                                                     for n in contenders), flush=True)  # fmt: skip
    return {n: {"median_wall_s": round(statistics.median(w for w, _ in v), 4),
                "median_cpu_s": round(statistics.median(c for _, c in v), 4),
                "wall_s": [round(w, 4) for w, _ in v], "cpu_s": [round(c, 4) for _, c in v]}
            for n, v in raw.items()}  # fmt: skip


def ratios(times: dict, fast: str, slow: str) -> dict:
    """How many times faster ``fast`` is than ``slow`` (time of slow over time of fast), per clock."""
    return {c: round(times[slow][f"median_{c}_s"] / times[fast][f"median_{c}_s"], 3) for c in ("cpu", "wall")}


# ---------------------------------------------------------------------- 1. TTA


def d4_loop(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The common TTA loop: one forward per D4 view, mapped back, sigmoid probabilities averaged."""
    total = torch.zeros((x.shape[0], 1, *x.shape[2:]))
    with torch.no_grad():
        for flip in (False, True):
            for k in range(4):
                v = torch.flip(x, (-1,)) if flip else x
                v = torch.rot90(v, k, dims=(-2, -1))
                p = torch.sigmoid(model(v))
                p = torch.rot90(p, -k, dims=(-2, -1))
                total += torch.flip(p, (-1,)) if flip else p
    return total / 8


def bench_tta(model, rounds: int) -> dict:
    """unetzoo's D4 path against the common loop, with the parts of the difference apart."""
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(1))
    ready = inference_model(model)
    contenders = {
        # what evaluate / predict / explain run: the prepared copy, views in chunks of 2 on a CPU
        "unetzoo": lambda: predict(ready, x, tta="d4"),
        # the same module as the loop, views batched (chunks of 2 on a CPU, then all 8 at once)
        "unetzoo_same_module": lambda: predict(model, x, tta="d4"),
        "unetzoo_same_module_batch8": lambda: predict(model, x, tta="d4", max_batch=8),
        "loop_per_view": lambda: d4_loop(model, x),
        # the loop given the prepared copy: how much of the gain the preparation alone brings
        "loop_per_view_prepared": lambda: d4_loop(ready, x),
    }
    reference = d4_loop(model, x)
    diffs = {n: float((fn() - reference).abs().max()) for n, fn in contenders.items() if n != "loop_per_view"}
    times = alternate(contenders, rounds, "tta d4")
    return {"input": list(x.shape), "views": 8, "max_abs_diff_vs_loop": diffs, "times": times,
            "speedup_vs_loop": {n: ratios(times, n, "loop_per_view") for n in contenders if n != "loop_per_view"},
            "folded_batchnorms": sum(1 for m in ready.modules() if isinstance(m, torch.nn.Identity))}  # fmt: skip


# ---------------------------------------------------------------------- 2. sliding windows


def monai_grid(size, roi, overlap) -> list[list[int]]:
    """MONAI 1.x ``_get_scan_interval`` + ``dense_patch_slices`` start offsets per axis."""
    out = []
    for s, r in zip(size, roi, strict=True):
        interval = r if r == s else max(1, int(r * (1 - overlap)))
        num = -(-s // interval)
        count = next(d for d in range(num) if d * interval + r >= s) + 1
        out.append([min(d * interval, s - r) for d in range(count)])
    return out


def explain(roi, size, overlap) -> dict:
    """Compare the parts of the two sliding windows that could differ."""
    from monai.data.utils import compute_importance_map

    ours = importance_map(roi, "gaussian")
    theirs = compute_importance_map(tuple(roi), mode="gaussian", sigma_scale=0.125)
    ours_grid = [window_starts(s, r, overlap) for s, r in zip(size, roi, strict=True)]
    theirs_grid = monai_grid(size, roi, overlap)
    return {"grid_unetzoo": ours_grid, "grid_monai": theirs_grid, "grids_equal": ours_grid == theirs_grid,
            "weights_max_abs_diff": float((ours - theirs).abs().max()),
            "weights_max_rel_diff": float(((ours - theirs).abs() / theirs).max()),
            "weights_max_unetzoo": float(ours.max()), "weights_max_monai": float(theirs.max()),
            "weights_min_unetzoo": float(ours.min()), "weights_min_monai": float(theirs.min())}  # fmt: skip


def bench_window(model, x, roi, batch, rounds: int, label: str) -> dict:
    from monai.inferers import sliding_window_inference

    def predictor(b: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(model(b))

    def ours():
        return predict(model, x, window=roi, overlap=0.5, blend="gaussian", max_batch=batch)

    def theirs():
        with torch.no_grad():
            return sliding_window_inference(x, roi, batch, predictor, overlap=0.5, mode="gaussian")

    a, b = ours(), theirs()
    b = torch.as_tensor(b)
    diff = (a - b).abs()
    times = alternate({"unetzoo": ours, "monai": theirs}, rounds, f"window {label}")
    result = {"input": list(x.shape), "window": list(roi), "overlap": 0.5, "blend": "gaussian",
              "window_batch": batch, "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
              "times": times, "time_unetzoo_over_monai": {c: round(times["unetzoo"][f"median_{c}_s"]
                                                                   / times["monai"][f"median_{c}_s"], 3)
                                                          for c in ("cpu", "wall")},
              "check": explain(roi, x.shape[2:], 0.5)}  # fmt: skip
    return result


# ---------------------------------------------------------------------- 3. evaluate


def bench_evaluate(model, rounds: int, d4_rounds: int) -> dict:
    from unetzoo.evaluation import evaluate, load_source

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        save_pretrained(model, tmp)
        source = load_source(tmp)
        for tta, n in (("none", rounds), ("d4", d4_rounds)):
            runs = []
            for r in range(n):
                torch.set_num_threads(1)
                wall, cpu, ev = timed(lambda: evaluate(source, DRIVE, split="all", roi=True, tta=tta))  # noqa: B023
                images = len(ev.per_image)
                runs.append((wall, cpu))
                print(f"evaluate tta={tta} run {r + 1}: {images} images, wall {wall:.2f} s, cpu {cpu:.2f} s",
                      flush=True)  # fmt: skip
            if runs:
                w = statistics.median(v[0] for v in runs)
                c = statistics.median(v[1] for v in runs)
                out[tta] = {"images": images, "median_wall_s": round(w, 3), "median_cpu_s": round(c, 3),
                            "images_per_s_wall": round(images / w, 3), "images_per_s_cpu": round(images / c, 3),
                            "wall_s": [round(v[0], 3) for v in runs], "cpu_s": [round(v[1], 3) for v in runs]}  # fmt: skip
    return out


# ---------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--rounds", type=int, default=5, help="timed rounds of the TTA and window comparisons"
    )
    parser.add_argument("--eval-rounds", type=int, default=2, help="timed evaluate runs, tta none")
    parser.add_argument("--eval-d4-rounds", type=int, default=1, help="timed evaluate runs, tta d4 (0: skip)")
    parser.add_argument("--no-3d", action="store_true", help="skip the 3D sliding-window case")
    parser.add_argument("--windows-only", action="store_true",
                        help="only the sliding-window cases; writes inference_speed_windows.json")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    began = time.perf_counter()
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    model = create_model("unet", classes=1, **UNET_2D).eval()
    report: dict = {}
    if not args.windows_only:
        report["tta_d4"] = bench_tta(model, args.rounds)
    x2 = torch.rand(1, 3, 320, 288, generator=torch.Generator().manual_seed(2))
    report["window_2d"] = bench_window(model, x2, (128, 128), 4, args.rounds, "2d")
    if not args.no_3d:
        torch.manual_seed(SEED)
        model3 = create_model("unet3d", classes=1, in_channels=1, **UNET_3D).eval()
        x3 = torch.rand(1, 1, 80, 96, 96, generator=torch.Generator().manual_seed(3))
        report["window_3d"] = bench_window(model3, x3, (64, 64, 64), 4, args.rounds, "3d")
    if not args.windows_only:
        report["evaluate_drive"] = bench_evaluate(model, args.eval_rounds, args.eval_d4_rounds)
    import monai

    report["meta"] = {
        "command": " ".join(["python benchmarks/inference_speed.py", *sys.argv[1:]]),
        "cpu": cpu_model(), "cores": os.cpu_count(), "intra_op_threads": torch.get_num_threads(),
        "model_2d": {"name": "unet", **UNET_2D}, "model_3d": {"name": "unet3d", **UNET_3D},
        "parameters_2d": sum(p.numel() for p in model.parameters()),
        "rounds": args.rounds, "eval_rounds": args.eval_rounds, "eval_d4_rounds": args.eval_d4_rounds,
        "seconds_total": round(time.perf_counter() - began, 1),
        "python": platform.python_version(), "torch": torch.__version__, "monai": monai.__version__,
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    name = "inference_speed_windows" if args.windows_only else "inference_speed"
    (args.out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "meta"}, indent=1)[:6000])
    if not args.windows_only:
        plot(report, args.out)


def plot(report: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = [("tta_d4", "D4 TTA, 256²", "unetzoo", "loop_per_view", "per-view loop")]
    cases += [(k, f"sliding window {k[-2:]}", "unetzoo", "monai", "MONAI") for k in ("window_2d", "window_3d")
              if k in report]  # fmt: skip
    fig, ax = plt.subplots(figsize=(7, 3.4))
    labels = []
    for i, (key, label, ours, peer, peer_name) in enumerate(cases):
        t = report[key]["times"]
        a, b = t[ours]["median_cpu_s"], t[peer]["median_cpu_s"]
        ax.bar(i - 0.2, a, 0.4, color="C0", label="unetzoo" if i == 0 else None)
        ax.bar(i + 0.2, b, 0.4, color="C1", label="peer" if i == 0 else None)
        ax.text(i, max(a, b), f"×{b / a:.2f}", ha="center", va="bottom")
        labels.append(f"{label}\n(peer: {peer_name})")
    ax.set_xticks(range(len(cases)), labels, fontsize=8)
    ax.set_ylabel("median CPU seconds per call, one thread")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.15)
    ax.set_title("Inference, one thread (× = peer time / unetzoo time; higher is better)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "inference_speed.png", dpi=100)


if __name__ == "__main__":
    main()
