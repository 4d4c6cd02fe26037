"""The models layer: frozen encoders stay unchanged, explicit encoder learning rates, U-Net++ with ASPP."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor, nn

import unetzoo
from unetzoo.blocks import ASPP

TINY_UNET = dict(
    encoder_channels=(4, 8, 16, 32),
    bottleneck_channels=32,
    decoder_channels=(16, 8, 4, 4),
    encoder_dropout=0.2,
)
TINY_TIMM = dict(encoder="resnet18", encoder_depth=3, bottleneck="none", decoder_channels=(16, 8, 4))
TINY_UNETPP = dict(encoder_channels=(4, 8, 16, 32), bottleneck_channels=32, decoder_channels=(16, 8, 8, 4))
FROZEN_CASES = [("unet", TINY_UNET), ("unet", TINY_TIMM), ("unetpp", TINY_UNETPP)]


def train_steps(model: nn.Module, steps: int = 3) -> None:
    """``steps`` AdamW steps (with weight decay) on random batches of two."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        model(torch.randn(2, 3, 32, 32)).square().mean().backward()
        optimizer.step()


def snapshot(module: nn.Module) -> dict[str, Tensor]:
    """A copy of every tensor of ``module.state_dict()``."""
    return {k: v.clone() for k, v in module.state_dict().items()}


def changed(module: nn.Module, before: dict[str, Tensor]) -> set[str]:
    """The state-dict keys of ``module`` whose tensors differ from ``before``."""
    return {k for k, v in module.state_dict().items() if not torch.equal(v, before[k])}


@pytest.mark.parametrize(("name", "widths"), FROZEN_CASES, ids=["classic", "timm", "unetpp"])
@pytest.mark.parametrize("at_build", [True, False], ids=["constructor", "method"])
def test_frozen_encoder_keeps_weights_and_batchnorm_statistics(
    name: str, widths: dict[str, Any], at_build: bool
) -> None:
    model = unetzoo.create_model(name, freeze_encoder=at_build, **widths)
    if not at_build:
        model.freeze_encoder(True)
    assert any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.encoder.modules())
    model.eval().train()
    assert model.training and not any(m.training for m in model.encoder.modules())
    encoder, whole = snapshot(model.encoder), snapshot(model)
    train_steps(model)
    assert not model.encoder.training
    assert not changed(model.encoder, encoder)
    assert changed(model, whole)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():  # no dropout in a frozen encoder, even in training mode
        assert all(map(torch.equal, model.encoder(x), model.encoder(x)))

    model.freeze_encoder(False)
    assert model.encoder.training and all(p.requires_grad for p in model.encoder.parameters())
    model.eval()
    assert not model.encoder.training
    train_steps(model)
    assert model.encoder.training
    moved = changed(model.encoder, encoder)
    assert any(k.endswith("running_mean") for k in moved) and any(k.endswith("weight") for k in moved)


def test_param_groups_encoder_lr_zero_means_zero() -> None:
    model = unetzoo.create_model("unet", **TINY_UNET)
    encoder, decoder = model.param_groups(lr=1e-3, encoder_lr=0)
    assert (encoder["name"], encoder["lr"], decoder["lr"]) == ("encoder", 0, 1e-3)
    assert model.param_groups(lr=1e-3)[0]["lr"] == pytest.approx(1e-4)


def test_unetpp_with_aspp_bottleneck_trains_at_batch_one_and_two_and_rebuilds() -> None:
    default = unetzoo.create_model("unetpp", bottleneck="aspp", **TINY_UNETPP)
    assert [b.conv.dilation for b in default.bottleneck.branches[1:]] == [(6, 6), (12, 12), (18, 18)]
    model = unetzoo.create_model("unetpp", bottleneck="aspp", aspp_rates=(1, 2, 3), **TINY_UNETPP)
    assert isinstance(model.bottleneck, ASPP)
    assert [b.conv.dilation for b in model.bottleneck.branches[1:]] == [(1, 1), (2, 2), (3, 3)]
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
    model.train()
    for batch in (1, 2):
        optimizer.zero_grad()
        y = model(torch.randn(batch, 3, 29, 35))
        assert y.shape == (batch, 1, 29, 35)
        y.square().mean().backward()
        assert all(p.grad is not None for p in model.parameters())
        optimizer.step()

    config = dict(model.config)
    assert config["aspp_rates"] == [1, 2, 3]
    rebuilt = unetzoo.create_model(config.pop("architecture"), **config).eval()
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(1, 3, 29, 35)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model.eval()(x))
