"""The fine-tuning optimizer: fused where torch has the kernels, the same updates as the unfused one."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from unetzoo.training import FinetuneConfig
from unetzoo.training.optim import (
    build_optimizer,
    fused_step,
    implementation,
    parameter_groups,
    restore_implementation,
)


class TwoPart(nn.Module):
    """An encoder and a head, weights and biases: all four parameter groups, no norm layer
    (a bias before a norm has a gradient of rounding noise, which Adam would amplify)."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Sequential(nn.Tanh(), nn.Conv2d(4, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return TwoPart()


def config(optimizer: str, precision: str = "no") -> FinetuneConfig:
    return FinetuneConfig(
        model="unet", data="demo", optimizer=optimizer, lr=1e-2, weight_decay=1e-2, momentum=0.9,
        mixed_precision=precision,
    )  # fmt: skip


def reference(model: nn.Module, c: FinetuneConfig) -> torch.optim.Optimizer:
    """The same optimizer with torch's single-tensor loop, the slow path a plain loop uses on a CPU."""
    groups = parameter_groups(model, c.lr, c.lr * c.encoder_lr_mult, c.weight_decay)
    if c.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=c.lr, foreach=False)
    if c.optimizer == "adam":
        return torch.optim.Adam(groups, lr=c.lr, foreach=False)
    return torch.optim.SGD(groups, lr=c.lr, momentum=c.momentum, nesterov=True, foreach=False)


def test_a_device_without_fused_kernels_gets_torchs_default() -> None:
    model = nn.Linear(3, 2, device="meta")
    assert not fused_step(model)
    assert build_optimizer(model, config("adamw")).param_groups[0]["fused"] is None
    assert not fused_step(nn.Module())  # nothing to update


def train(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int, scaler=None, overflow_first=False) -> None:
    """``steps`` steps on a fixed batch; with ``scaler`` as fp16 training drives the optimizer,
    the first step's loss made infinite when ``overflow_first`` (the scaler skips that step)."""
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    for i in range(steps):
        optimizer.zero_grad()
        loss = (model(x) - 1).square().mean()
        if overflow_first and i == 0:
            loss = loss * float("inf")
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    for (key, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6, msg=key)


@pytest.mark.parametrize("name", ["adamw", "adam", "sgd"])
def test_cpu_steps_are_fused_and_match_the_unfused_loop(name: str) -> None:
    ours_model = tiny_model()
    ref_model = copy.deepcopy(ours_model)
    ours = build_optimizer(ours_model, config(name))
    ref = reference(ref_model, config(name))
    assert all(group["fused"] for group in ours.param_groups)
    assert not any(group["fused"] for group in ref.param_groups)
    train(ours_model, ours, 5)
    train(ref_model, ref, 5)
    assert_same_weights(ours_model, ref_model)
    start = tiny_model().state_dict()
    moved = max(float((w - start[k]).abs().max()) for k, w in ours_model.state_dict().items())
    assert moved > 1e-3  # the steps did change the weights


@pytest.mark.parametrize("name", ["adamw", "adam", "sgd"])
def test_fp16_loss_scaling_that_skips_the_first_step_gives_the_unfused_weights(name: str) -> None:
    """The scaler skips a step whose gradients overflow, usually the first at its initial scale.
    Fused SGD would then use momentum buffers it never wrote: it is not fused under fp16."""
    ours_model = tiny_model()
    ref_model = copy.deepcopy(ours_model)
    ours = build_optimizer(ours_model, config(name, "fp16"))
    ref = reference(ref_model, config(name, "fp16"))
    train(ours_model, ours, 4, torch.amp.GradScaler("cpu"), overflow_first=True)
    train(ref_model, ref, 4, torch.amp.GradScaler("cpu"), overflow_first=True)
    assert_same_weights(ours_model, ref_model)
    assert bool(ours.param_groups[0]["fused"]) == (name != "sgd")


@pytest.mark.parametrize("saved_fused", [False, True])
def test_a_checkpoint_resumes_with_the_kernels_the_optimizer_was_built_with(saved_fused: bool) -> None:
    """Runs saved before the step was fused resume fused, and fp16 loss scaling still works;
    a fused checkpoint resumes unfused where fusing is off (SGD under fp16)."""
    name = "adamw" if not saved_fused else "sgd"
    model = tiny_model()
    saved_with = build_optimizer(model, config(name)) if saved_fused else reference(model, config(name))
    assert bool(saved_with.param_groups[0]["fused"]) == saved_fused
    train(model, saved_with, 2)
    ref_model = copy.deepcopy(model)
    ref = reference(ref_model, config(name))
    saved = saved_with.state_dict()  # as a checkpoint holds it: tensors of its own, not the optimizer's
    ref.load_state_dict(copy.deepcopy(saved))

    resumed = build_optimizer(model, config(name, "fp16"))
    built = implementation(resumed)
    resumed.load_state_dict(copy.deepcopy(saved))
    restore_implementation(resumed, built)
    assert implementation(resumed) == built
    train(model, resumed, 3, torch.amp.GradScaler("cpu"))
    train(ref_model, ref, 3, torch.amp.GradScaler("cpu"))
    assert_same_weights(model, ref_model)
    if name == "adamw":
        assert resumed.state_dict()["state"][0]["step"] == 5
