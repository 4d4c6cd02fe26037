"""Optimizer, learning-rate schedule and weight EMA for fine-tuning."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from .config import FinetuneConfig


def parameter_groups(model: nn.Module, lr: float, encoder_lr: float, weight_decay: float) -> list[dict]:
    """Encoder and decoder groups, each split into decayed weights and undecayed biases/norms.

    Every parameter is in a group, frozen or not, so that an encoder frozen for the first
    epochs joins training later without rebuilding the optimizer. Biases and 1-D norm
    parameters get no weight decay (as timm's ``train.py`` does).
    """
    encoder = getattr(model, "encoder", None)
    encoder_ids = {id(p) for p in encoder.parameters()} if encoder is not None else set()
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for p in model.parameters():
        part = "encoder" if id(p) in encoder_ids else "decoder"
        groups.setdefault((part, p.ndim > 1), []).append(p)
    out = []
    for (part, decayed), params in groups.items():
        out.append({
            "name": f"{part}{'' if decayed else '_no_decay'}",
            "params": params,
            "lr": encoder_lr if part == "encoder" else lr,
            "weight_decay": weight_decay if decayed else 0.0,
        })  # fmt: skip
    return out


FUSED_DEVICES = ("cpu", "cuda")  # where torch has fused Adam, AdamW and SGD kernels


def fused_step(model: nn.Module) -> bool:
    """Whether the optimizer can update ``model`` with torch's fused kernels.

    A fused step updates each parameter in one pass instead of one elementwise pass per
    term of the update rule (five for AdamW), with the same result up to float rounding.
    On one CPU thread it takes 28 ms instead of 108 ms for AdamW over ``unet_resnet34``'s
    24 M parameters (BENCHMARKS.md, "Optimizer step"). It needs
    every parameter to be a floating-point tensor on a device that has the kernels.
    """
    params = list(model.parameters())
    return bool(params) and all(p.device.type in FUSED_DEVICES and p.is_floating_point() for p in params)


def build_optimizer(model: nn.Module, config: FinetuneConfig) -> torch.optim.Optimizer:
    """AdamW, Adam or SGD (Nesterov momentum) over :func:`parameter_groups`, fused where possible.

    Build it after the model is on its device: :func:`fused_step` reads where the
    parameters are. SGD with momentum is not fused under fp16 loss scaling: when the
    scaler skips the first step (an overflow, usual at its initial scale), torch's fused
    SGD leaves the momentum buffers it has just allocated uninitialised and uses them from
    the next step on.
    """
    groups = parameter_groups(model, config.lr, config.lr * config.encoder_lr_mult, config.weight_decay)
    fused = fused_step(model) or None  # None: torch's own choice (foreach on CUDA, a loop elsewhere)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, fused=fused)
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr, fused=fused)
    if config.mixed_precision == "fp16" and config.momentum > 0:
        fused = None
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.momentum > 0,
                           fused=fused)  # fmt: skip


IMPLEMENTATION_KEYS = ("fused", "foreach")


def implementation(optimizer: torch.optim.Optimizer) -> list[dict]:
    """Each parameter group's choice of kernels (fused, foreach), to keep across a checkpoint load."""
    return [{key: group.get(key) for key in IMPLEMENTATION_KEYS} for group in optimizer.param_groups]


def restore_implementation(optimizer: torch.optim.Optimizer, built: list[dict]) -> None:
    """Undo what ``load_state_dict`` changed of the kernels an optimizer was built with.

    Loading a state dict takes every group setting from the checkpoint, ``fused`` included,
    while torch fixes at construction whether the optimizer steps with a gradient scaler's
    inputs: a checkpoint of an unfused optimizer (or a fused one loaded where fusing is off)
    would leave the two disagreeing, and fp16 training would fail at its first step. The
    step counters move to where the restored kernels keep them: on the parameter's device
    when fused, on the CPU otherwise.
    """
    optimizer = getattr(optimizer, "optimizer", optimizer)  # Accelerate's wrapper
    for group, kernels in zip(optimizer.param_groups, built, strict=True):
        group.update(kernels)
        on_device = bool(kernels.get("fused")) or bool(group.get("capturable"))
        for param in group["params"]:
            state = optimizer.state.get(param)
            if state and torch.is_tensor(state.get("step")):
                device = param.device if on_device else torch.device("cpu")
                state["step"] = state["step"].to(device=device, dtype=torch.float32)


class WarmupSchedule:
    """Multiplier of the base learning rate at an optimizer step.

    ``cosine``: linear warm-up over ``warmup`` steps, then half a cosine down to ``min_ratio``;
    ``poly``: warm-up, then ``(1 - t) ** 0.9`` (nnU-Net's schedule); ``none``: warm-up, then 1;
    ``onecycle`` (Smith's one-cycle policy): half a cosine up from 1/25 over the warm-up (30 %
    of the steps when no warm-up is given), then half a cosine down to ``min_ratio``. A plain
    object, not a lambda, so the scheduler's ``state_dict`` keeps it.
    """

    def __init__(self, kind: str, total: int, warmup: int, min_ratio: float) -> None:
        self.kind, self.total, self.min_ratio = kind, max(total, 1), min_ratio
        self.warmup = warmup or (round(0.3 * self.total) if kind == "onecycle" else 0)

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            if self.kind == "onecycle":
                return 1 / 25 + (1 - 1 / 25) * 0.5 * (1 - math.cos(math.pi * step / self.warmup))
            return (step + 1) / (self.warmup + 1)
        t = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        if self.kind in ("cosine", "onecycle"):
            return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * t))
        if self.kind == "poly":
            return self.min_ratio + (1 - self.min_ratio) * (1 - t) ** 0.9
        return 1.0


def build_scheduler(optimizer: torch.optim.Optimizer, config: FinetuneConfig, total_steps: int):
    """The learning-rate scheduler, stepped once per optimizer step (``plateau``: once per epoch)."""
    if config.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=config.monitor_mode, factor=0.5,
                                                          patience=2, min_lr=config.min_lr)  # fmt: skip
    ratio = config.min_lr / config.lr if config.lr else 0.0
    schedule = WarmupSchedule(config.scheduler, total_steps, config.warmup, ratio)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


class ModelEMA(nn.Module):
    """An exponential moving average of a model's weights: ``ema = d * ema + (1 - d) * w``.

    Buffers (BatchNorm statistics) are copied. The decay warms up as
    ``min(d, (1 + n) / (10 + n))`` over the first updates, so early weights fade quickly.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        super().__init__()
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        n = int(self.updates)
        d = min(self.decay, (1 + n) / (10 + n))
        own = self.module.state_dict()
        for key, value in model.state_dict().items():
            if value.dtype.is_floating_point:
                own[key].mul_(d).add_(value.detach(), alpha=1 - d)
            else:
                own[key].copy_(value)
