"""Fine-tuning speed: unetzoo's loop against a plain PyTorch loop and a bare Accelerate loop.

Kvasir-SEG at 256×256, batch 8, ``unet_resnet34`` from random init, the ``dice_bce`` loss,
AdamW; one intra-op thread, contenders alternating in rounds, in one process:

- ``unetzoo``: the real :class:`unetzoo.training.Trainer` with its defaults
  (``--mixed-precision auto``, channels-last in 2D, cosine schedule, per-step seeding, mask
  check, progress bar), driven through its own ``_train_epoch``. A subclass only records the
  clock and skips the end-of-epoch work (validation, checkpoint, saved models), which is
  not part of a training step.
- ``plain_fp32``: a hand-written loop; fp32, contiguous tensors, no autocast.
- ``accelerate``: ``Accelerator(mixed_precision=<what unetzoo's auto resolved to>)``,
  ``prepare``, ``autocast``, ``backward``, with unetzoo's memory format (channels-last), so
  that the ratio to ``unetzoo`` is the loop's own overhead.
- ``plain_bf16_cl``: the plain loop under ``torch.autocast("cpu", bfloat16)``, channels-last.

The plain and Accelerate loops build ``torch.optim.AdamW(model.parameters(), ...)`` as a
hand-written loop does, which on a CPU is torch's one-parameter-at-a-time implementation;
unetzoo's own optimizer step is fused (``benchmarks/optimizer_step.py`` times the two alone).

Every contender trains on the same batches: made ONCE, before timing, by unetzoo's own
training dataset (``standard`` preset, the model's preprocessing, seeded per sample) and
``pad_collate``, and fed to unetzoo's loop in place of its DataLoader. A step is timed from
taking its batch to taking the next one (wall clock and process CPU time); start-up, the
warm-up steps and validation are outside. Peak memory of one training step with and
without gradient checkpointing is measured in a fresh subprocess per configuration
(``ru_maxrss`` after the step minus before it, checked against ``VmHWM``).

Run:  python benchmarks/finetune_speed.py [--rounds 3 --steps 6 --warmup 3 --bf16-steps N]
Writes benchmarks/results/finetune_speed.json and finetune_speed.png.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch
from timing import clock, cpu_model

from unetzoo.data.torch_dataset import mix_seed, pad_collate
from unetzoo.losses import create_loss
from unetzoo.models import create_model
from unetzoo.training import FinetuneConfig, Trainer
from unetzoo.training.data import epoch_order
from unetzoo.training.setup import cpu_supports_bf16, resolve_mixed_precision

KVASIR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "Kvasir-SEG"
OUT = Path(__file__).resolve().parent / "results"
MODEL, BATCH, SIZE, SEED, LR, WEIGHT_DECAY = "unet_resnet34", 8, 256, 0, 1e-3, 1e-4
NAMES = {
    "unetzoo": "unetzoo Trainer, defaults",
    "accelerate": "bare Accelerate loop",
    "plain_fp32": "plain PyTorch, fp32",
    "plain_bf16_cl": "plain PyTorch, bf16 autocast + channels-last",
}


def steps_between(marks: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(wall, cpu) seconds of each step from the clock marks at its boundaries."""
    return [(b[0] - a[0], b[1] - a[1]) for a, b in itertools.pairwise(marks)]


# ---------------------------------------------------------------------- unetzoo


class TimedTrainer(Trainer):
    """The real Trainer; the clock is read where the loop takes a batch and where the epoch ends.

    ``_end_of_epoch`` keeps only the bookkeeping that the next epoch needs (close the progress
    bar, reset the epoch's counters): validation and checkpoints are not training steps.
    """

    marks: list[tuple[float, float]]
    own_rate: list[float]

    def _end_of_epoch(self, seconds: float) -> None:
        self.marks.append(clock())
        s = self.state
        self.own_rate.append(s.samples / seconds if seconds else 0.0)  # what metrics.csv would say
        self.reporter.close()
        s.epoch += 1
        s.epoch_step, s.loss_sum, s.loss_count, s.samples, s.seconds = 0, 0.0, 0, 0, 0.0

    def run_steps(self, batches: list[dict]) -> list[tuple[float, float]]:
        """Train ``len(batches)`` optimizer steps through ``_train_epoch`` on these batches."""
        self.marks = []

        def loader():
            for batch in batches:
                self.marks.append(clock())
                yield batch

        self.total_steps = self.state.step + len(batches)
        with mock.patch.object(self, "train_loader", loader()):
            self._train_epoch()
        return steps_between(self.marks)


def build_trainer(out: Path, gradient_checkpointing: bool = False) -> TimedTrainer:
    config = FinetuneConfig(model=MODEL, data=str(KVASIR), out=str(out), size=str(SIZE), batch_size=BATCH,
                            workers=0, max_steps=10_000, seed=SEED,
                            gradient_checkpointing=gradient_checkpointing)  # fmt: skip
    trainer = TimedTrainer(config)
    trainer.own_rate = []
    return trainer


def make_batches(trainer: Trainer, count: int) -> list[dict]:
    """``count`` batches of epoch 0, exactly as unetzoo's training DataLoader would collate them."""
    train = trainer.plan.train
    train.set_epoch(0)
    order = epoch_order(len(train), SEED, 0, 1, 0, BATCH, True)
    return [pad_collate([train[i] for i in order[b * BATCH : (b + 1) * BATCH]]) for b in range(count)]


# ---------------------------------------------------------------------- peers


def fresh_model() -> torch.nn.Module:
    torch.manual_seed(SEED)  # the same initial weights as the Trainer's model
    return create_model(MODEL, classes=1, in_channels=3)


class PlainLoop:
    """Hand-written loop: forward, loss, zero_grad, backward, AdamW step, read the loss."""

    def __init__(self, bf16_channels_last: bool) -> None:
        self.bf16 = bf16_channels_last
        self.format = torch.channels_last if bf16_channels_last else torch.contiguous_format
        self.model = fresh_model().to(memory_format=self.format).train()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
        self.criterion = create_loss("dice_bce", mode="binary")

    def run_steps(self, batches: list[dict]) -> list[tuple[float, float]]:
        marks = []
        for batch in batches:
            marks.append(clock())
            image = batch["image"]
            if self.bf16:
                image = image.contiguous(memory_format=self.format)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                out = self.model(image)
            loss = self.criterion(out.float(), batch["mask"])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            float(loss.detach())
        marks.append(clock())
        return steps_between(marks)


class AccelerateLoop:
    """Bare Accelerate: ``prepare``, ``autocast``, ``backward``; unetzoo's precision and memory format."""

    def __init__(self, mixed_precision: str, memory_format: torch.memory_format) -> None:
        from accelerate import Accelerator

        self.accelerator = Accelerator(cpu=True, mixed_precision=mixed_precision)
        self.format = memory_format
        model = fresh_model().to(memory_format=memory_format).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.criterion = create_loss("dice_bce", mode="binary")

    def run_steps(self, batches: list[dict]) -> list[tuple[float, float]]:
        acc, marks = self.accelerator, []
        for batch in batches:
            marks.append(clock())
            image = batch["image"].to(acc.device).contiguous(memory_format=self.format)
            with acc.autocast():
                out = self.model(image)
            loss = self.criterion(out.float(), batch["mask"].to(acc.device))
            acc.backward(loss)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            float(loss.detach())
        marks.append(clock())
        return steps_between(marks)


# ---------------------------------------------------------------------- memory


def vm_kib(field: str) -> int:
    """``VmHWM`` (peak) or ``VmRSS`` (now) of this process, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def memory_probe(gradient_checkpointing: bool) -> dict:
    """In a fresh process: peak resident memory added by a training step of unetzoo's loop.

    ``step_peak_MiB`` is the first step's peak above the resting size (AdamW's state, made in
    that step, included). The second step's extra RSS is smaller than its real use, as the
    allocator keeps and reuses what the first step freed.

    Two readings of the peak: ``ru_maxrss`` (which on Linux also carries the parent's peak
    across fork + exec, hence the probes run before the parent builds its models) and this
    process's own high-water mark ``VmHWM``, reset to the current size just before the step
    (``5 > /proc/self/clear_refs``), so that set-up peaks cannot hide the step's.
    """
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer(Path(tmp) / "run", gradient_checkpointing)
        batches = make_batches(trainer, 2)
        ru_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        Path("/proc/self/clear_refs").write_text("5")
        rss_before, hwm_before = vm_kib("VmRSS"), vm_kib("VmHWM")
        first = trainer.run_steps(batches[:1])
        hwm_after = vm_kib("VmHWM")
        ru_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        Path("/proc/self/clear_refs").write_text("5")  # the second step: AdamW state already there
        rss_before2 = vm_kib("VmRSS")
        second = trainer.run_steps(batches[1:])
        hwm_after2 = vm_kib("VmHWM")
    mib = 1024
    return {"gradient_checkpointing": gradient_checkpointing,
            "rss_before_MiB": round(rss_before / mib, 1), "hwm_after_reset_MiB": round(hwm_before / mib, 1),
            "hwm_after_step_MiB": round(hwm_after / mib, 1),
            "step_peak_MiB": round((hwm_after - rss_before) / mib, 1),
            "rss_before_second_MiB": round(rss_before2 / mib, 1),
            "second_step_extra_rss_MiB": round((hwm_after2 - rss_before2) / mib, 1),
            "ru_maxrss_before_MiB": round(ru_before / mib, 1), "ru_maxrss_after_MiB": round(ru_after / mib, 1),
            "ru_maxrss_delta_MiB": round((ru_after - ru_before) / mib, 1),
            "first_step_wall_s": round(first[0][0], 3), "second_step_wall_s": round(second[0][0], 3),
            "second_step_cpu_s": round(second[0][1], 3)}  # fmt: skip


def run_memory_probes() -> dict:
    results = {}
    for on in (False, True):
        proc = subprocess.run([sys.executable, __file__, "--memory-probe", str(int(on))], capture_output=True,
                              text=True, check=True)  # fmt: skip
        results["on" if on else "off"] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(
            f"memory, gradient checkpointing {'on' if on else 'off'}: {results['on' if on else 'off']}",
            flush=True,
        )
    results["saved_fraction"] = round(1 - results["on"]["step_peak_MiB"] / results["off"]["step_peak_MiB"], 3)
    results["second_step_cpu_ratio_on_vs_off"] = round(
        results["on"]["second_step_cpu_s"] / results["off"]["second_step_cpu_s"], 3
    )  # one step each
    return results


# ---------------------------------------------------------------------- loop overhead parts


def overhead_parts(trainer: TimedTrainer, batch: dict, repeats: int = 200) -> dict:
    """Microseconds per call of the per-step work unetzoo's loop adds to a bare loop."""
    s, acc = trainer.state, trainer.accelerator
    model = trainer.model
    parts = {
        "seed_per_step (mix_seed + torch.manual_seed)": lambda: torch.manual_seed(mix_seed(SEED, s.step, 0, 1)),
        "check_masks (mask.max)": lambda: trainer._check_masks(batch),
        "to_channels_last (input copy)": lambda: batch["image"].to(acc.device).contiguous(
            memory_format=trainer.memory_format),
        "scheduler.step (LambdaLR cosine)": trainer.scheduler.step,
        "reporter.step (progress bar, stdout not a terminal)": lambda: trainer.reporter.step(0.5, 1.0),
        "unwrap_model + encoder lookup (per epoch; per step with --ema)": lambda: getattr(acc.unwrap_model(model), "encoder", None),
    }  # fmt: skip
    trainer.reporter.start_epoch(0, 1, repeats * len(parts), 0)
    out = {}
    for name, fn in parts.items():
        fn()
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        out[name] = round((time.perf_counter() - start) / repeats * 1e6, 1)
    trainer.reporter.close()
    return out


# ---------------------------------------------------------------------- main


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per contender and round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per contender before round 1")
    parser.add_argument(
        "--bf16-steps", type=int,
        help="timed bf16 steps per round; default --steps on a CPU with native bf16, else 1 (emulated bf16 is slow)",
    )  # fmt: skip
    parser.add_argument("--bf16-warmup", type=int, help="default --warmup with native bf16, else 1")
    parser.add_argument("--batches", type=int, default=8, help="distinct pre-augmented batches, cycled")
    parser.add_argument("--no-memory", action="store_true", help="skip the gradient-checkpointing probes")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--memory-probe", type=int, choices=(0, 1), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_probe is not None:
        with contextlib.redirect_stdout(sys.stderr):
            result = memory_probe(bool(args.memory_probe))
        print(json.dumps(result))
        return

    native = cpu_supports_bf16()
    if args.bf16_steps is None:
        args.bf16_steps = args.steps if native else 1
    if args.bf16_warmup is None:
        args.bf16_warmup = args.warmup if native else 1
    began = time.perf_counter()
    torch.set_num_threads(1)
    memory = None if args.no_memory else run_memory_probes()  # first: see memory_probe
    tmp = tempfile.TemporaryDirectory()
    trainer = build_trainer(Path(tmp.name) / "run")
    threads_after_trainer = torch.get_num_threads()
    torch.set_num_threads(1)
    resolved = trainer.config.mixed_precision
    batches = make_batches(trainer, args.batches)
    contenders = {
        "unetzoo": trainer,
        "accelerate": AccelerateLoop(resolved, trainer.memory_format),
        "plain_fp32": PlainLoop(bf16_channels_last=False),
        "plain_bf16_cl": PlainLoop(bf16_channels_last=True),
    }
    steps = {n: args.bf16_steps if n == "plain_bf16_cl" else args.steps for n in contenders}
    warm = {n: args.bf16_warmup if n == "plain_bf16_cl" else args.warmup for n in contenders}
    steps = {n: k for n, k in steps.items() if k > 0}
    print(f"set-up {time.perf_counter() - began:.0f} s; auto precision -> {resolved!r}, "
          f"memory format {trainer.memory_format}, threads {torch.get_num_threads()}", flush=True)  # fmt: skip

    cursor = 0

    def take(n: int) -> list[dict]:
        return [batches[(cursor + i) % len(batches)] for i in range(n)]

    for name in steps:  # warm-up, alternating like the rounds
        if warm[name]:
            contenders[name].run_steps(take(warm[name]))
    cursor += args.warmup
    raw: dict[str, list[list[tuple[float, float]]]] = {n: [] for n in steps}
    for r in range(args.rounds):
        for name in steps:  # same batches for every contender within a round
            times = contenders[name].run_steps(take(steps[name]))
            raw[name].append(times)
            print(f"round {r + 1} {name}: wall {[round(w, 2) for w, _ in times]} "
                  f"cpu {[round(c, 2) for _, c in times]}", flush=True)  # fmt: skip
        cursor += args.steps
    timed_s = time.perf_counter() - began

    parts = overhead_parts(trainer, batches[0])

    results = {}
    for name, rounds in raw.items():
        wall = [w for rnd in rounds for w, _ in rnd]
        cpu = [c for rnd in rounds for _, c in rnd]
        results[name] = {
            "what": NAMES[name],
            "median_step_wall_s": round(median(wall), 3),
            "median_step_cpu_s": round(median(cpu), 3),
            "samples_per_s_wall": round(BATCH / median(wall), 3),
            "samples_per_s_cpu": round(BATCH / median(cpu), 3),
            "round_medians_wall_s": [round(median([w for w, _ in rnd]), 3) for rnd in rounds],
            "steps_wall_s": [[round(w, 4) for w, _ in rnd] for rnd in rounds],
            "steps_cpu_s": [[round(c, 4) for _, c in rnd] for rnd in rounds],
        }  # fmt: skip
    results["unetzoo"]["own_samples_per_s_per_round"] = [
        round(x, 3) for x in trainer.own_rate[-args.rounds :]
    ]

    def ratio(a: str, b: str, clock_: str) -> float | None:
        """How many times faster ``a`` is than ``b`` (samples/s of a over samples/s of b)."""
        if a not in results or b not in results:
            return None
        return round(results[b][f"median_step_{clock_}_s"] / results[a][f"median_step_{clock_}_s"], 3)

    ratios = {}
    for clock_ in ("cpu", "wall"):
        ratios[clock_] = {
            "unetzoo_vs_plain_fp32": ratio("unetzoo", "plain_fp32", clock_),
            "unetzoo_overhead_vs_accelerate": round(1 / ratio("unetzoo", "accelerate", clock_) - 1, 4),
            "accelerate_vs_plain_fp32": ratio("accelerate", "plain_fp32", clock_),
            "plain_bf16_cl_vs_plain_fp32": ratio("plain_bf16_cl", "plain_fp32", clock_),
            "unetzoo_vs_plain_bf16_cl": ratio("unetzoo", "plain_bf16_cl", clock_),
        }
    import accelerate

    flags = sorted({f for f in ("avx512_bf16", "amx_bf16") if f in Path("/proc/cpuinfo").read_text().split()})
    meta = {
        "command": " ".join(["python benchmarks/finetune_speed.py", *sys.argv[1:]]),
        "cpu": cpu_model(), "cores": os.cpu_count(),
        "intra_op_threads": torch.get_num_threads(), "threads_after_trainer_init": threads_after_trainer,
        "cpu_bf16_flags": flags, "native_bf16": native,
        "auto_mixed_precision_resolved_to": resolved, "resolve_check": resolve_mixed_precision("auto", True),
        "unetzoo_channels_last": trainer.memory_format == torch.channels_last,
        "model": MODEL, "parameters": sum(p.numel() for p in trainer.model.parameters()),
        "data": "Kvasir-SEG", "size": SIZE, "batch": BATCH, "preset": trainer.config.preset,
        "loss": trainer.config.loss, "optimizer": "AdamW", "lr": LR, "weight_decay": WEIGHT_DECAY,
        "rounds": args.rounds, "steps_per_round": args.steps, "warmup_steps": args.warmup,
        "bf16_steps_per_round": args.bf16_steps, "bf16_warmup_steps": args.bf16_warmup,
        "distinct_batches": args.batches, "seconds_setup_and_timed_steps": round(timed_s, 1),
        "seconds_total": round(time.perf_counter() - began, 1),
        "python": platform.python_version(), "torch": torch.__version__, "accelerate": accelerate.__version__,
    }  # fmt: skip
    report = {"meta": meta, "results": results, "ratios": ratios, "unetzoo_per_step_extras_us": parts,
              "memory": memory}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "finetune_speed.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"ratios": ratios, "extras_us": parts}, indent=2))
    plot(results, ratios, args.out, resolved)
    tmp.cleanup()


def plot(results: dict, ratios: dict, out: Path, resolved: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in NAMES if n in results]
    cpu = [results[n]["samples_per_s_cpu"] for n in names]
    wall = [results[n]["samples_per_s_wall"] for n in names]
    x = range(len(names))
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.bar([i - 0.2 for i in x], cpu, 0.4, label="per CPU second")
    ax.bar([i + 0.2 for i in x], wall, 0.4, label="per wall second")
    base = results["plain_fp32"]["samples_per_s_cpu"] if "plain_fp32" in results else None
    for i in x:
        if base:
            ax.text(i, max(cpu[i], wall[i]), f"×{cpu[i] / base:.2f}", ha="center", va="bottom")
    precision = {"no": "fp32", "bf16": "bf16", "fp16": "fp16"}[resolved]
    labels = {
        **NAMES,
        "unetzoo": f"unetzoo Trainer, defaults\n(auto = {precision}, channels-last)",
        "accelerate": f"bare Accelerate loop\n({precision}, channels-last)",
    }
    ax.set_xticks(list(x), [labels[n].replace(", ", ",\n", 1) if "\n" not in labels[n] else labels[n]
                            for n in names], fontsize=8)  # fmt: skip
    ax.set_ylim(0, max(cpu + wall) * 1.35)
    ax.set_ylabel("samples / s, one thread")
    ax.set_title("unet_resnet34, Kvasir-SEG 256², batch 8 (× = vs plain fp32)", fontsize=9)
    ax.legend(fontsize=8, loc="upper center", ncol=2, framealpha=1)
    fig.tight_layout()
    fig.savefig(out / "finetune_speed.png", dpi=100)


if __name__ == "__main__":
    main()
