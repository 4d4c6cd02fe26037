"""The fine-tuning optimizer: fused where torch has the kernels, the same updates as the unfused one."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from unetzoo.training import FinetuneConfig
from unetzoo.training.optim import build_optimizer, fused_step, parameter_groups


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


def config(optimizer: str) -> FinetuneConfig:
    return FinetuneConfig(
        model="unet", data="demo", optimizer=optimizer, lr=1e-2, weight_decay=1e-2, momentum=0.9
    )


def reference(model: nn.Module, c: FinetuneConfig) -> torch.optim.Optimizer:
    """The same optimizer with torch's single-tensor loop, the slow path a plain loop uses on a CPU."""
    groups = parameter_groups(model, c.lr, c.lr * c.encoder_lr_mult, c.weight_decay)
    if c.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=c.lr, foreach=False)
    if c.optimizer == "adam":
        return torch.optim.Adam(groups, lr=c.lr, foreach=False)
    return torch.optim.SGD(groups, lr=c.lr, momentum=c.momentum, nesterov=True, foreach=False)


@pytest.mark.parametrize("name", ["adamw", "adam", "sgd"])
def test_cpu_steps_are_fused_and_match_the_unfused_loop(name: str) -> None:
    ours_model = tiny_model()
    ref_model = copy.deepcopy(ours_model)
    ours = build_optimizer(ours_model, config(name))
    ref = reference(ref_model, config(name))
    assert all(group["fused"] for group in ours.param_groups)
    assert not any(group["fused"] for group in ref.param_groups)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    for _ in range(5):
        for model, optimizer in ((ours_model, ours), (ref_model, ref)):
            optimizer.zero_grad()
            (model(x) - 1).square().mean().backward()
            optimizer.step()
    moved = 0.0
    for (key, a), b, start in zip(ours_model.state_dict().items(), ref_model.state_dict().values(),
                                  tiny_model().state_dict().values(), strict=True):  # fmt: skip
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=key)
        if a.is_floating_point():
            moved = max(moved, float((a - start).abs().max()))
    assert moved > 1e-3  # the steps did change the weights


def test_a_device_without_fused_kernels_gets_torchs_default() -> None:
    model = nn.Linear(3, 2, device="meta")
    assert not fused_step(model)
    assert build_optimizer(model, config("adamw")).param_groups[0]["fused"] is None
    assert not fused_step(nn.Module())  # nothing to update


def test_a_checkpoint_of_the_unfused_optimizer_resumes_into_the_fused_one() -> None:
    """Runs saved before the step was fused resume: the saved groups keep their own setting."""
    model = tiny_model()
    old = reference(model, config("adamw"))
    model(torch.randn(1, 3, 16, 16)).mean().backward()
    old.step()
    new = build_optimizer(model, config("adamw"))
    new.load_state_dict(old.state_dict())
    new.step()
    assert new.state_dict()["state"][0]["step"] == 2
