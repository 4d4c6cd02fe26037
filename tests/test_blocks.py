"""Every block in 2D and 3D: shapes, semantics, parameter counts, batch size 1."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from unetzoo.blocks import (
    ASPP,
    CBAM,
    UPSAMPLE_MODES,
    AttentionGate,
    ChannelAttention,
    DoubleConv,
    R2Block,
    RecurrentConv,
    ResidualBlock,
    SpatialAttention,
    SqueezeExcitation,
    Upsample,
    layers,
    make_attention,
    make_stage_block,
)

DIMS = [2, 3]


def volume(spatial_dims: int, channels: int, batch: int = 2, size: int = 9) -> torch.Tensor:
    return torch.randn(batch, channels, *([size] * spatial_dims))


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("kind", ["double_conv", "r2", "residual"])
def test_stage_blocks_map_channels_and_keep_size(dims: int, kind: str) -> None:
    block = make_stage_block(kind, dims, 3, 8, dropout=0.1)
    y = block(volume(dims, 3))
    assert y.shape == (2, 8, *([9] * dims))


@pytest.mark.parametrize("dims", DIMS)
def test_double_conv_layers_and_count(dims: int) -> None:
    block = DoubleConv(dims, 3, 8)
    k = 3**dims
    # two convs with bias, two batch norms (weight + bias)
    assert n_params(block) == (3 * 8 * k + 8) + (8 * 8 * k + 8) + 2 * 16
    conv_type = nn.Conv2d if dims == 2 else nn.Conv3d
    assert sum(isinstance(m, conv_type) for m in block.modules()) == 2


@pytest.mark.parametrize("norm", ["batch", "instance", "group", "none"])
@pytest.mark.parametrize("act", ["relu", "leakyrelu", "gelu", "silu", "prelu", "elu"])
def test_norm_and_activation_by_name(norm: str, act: str) -> None:
    y = DoubleConv(2, 3, 8, norm=norm, act=act)(volume(2, 3))
    assert y.shape == (2, 8, 9, 9)


def test_unknown_layer_names_are_errors() -> None:
    with pytest.raises(ValueError, match="unknown norm 'layer'"):
        layers.norm("layer", 2, 4)
    with pytest.raises(ValueError, match="unknown activation 'mish2'"):
        layers.act("mish2")
    with pytest.raises(ValueError, match="spatial_dims must be 2 or 3"):
        layers.conv(1, 3, 4)
    with pytest.raises(ValueError, match="unknown stage block 'dense'"):
        make_stage_block("dense", 2, 3, 4)
    with pytest.raises(ValueError, match="unknown attention 'eca'"):
        make_attention("eca", 2, 4)
    with pytest.raises(ValueError, match="unknown upsample mode 'pixelshuffle'"):
        Upsample(2, 4, 4, "pixelshuffle")


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("t", [0, 1, 2, 3])
def test_recurrent_conv_applies_one_shared_unit_t_plus_one_times(dims: int, t: int) -> None:
    rc = RecurrentConv(dims, 4, t=t).eval()
    calls = []
    rc.unit.register_forward_hook(lambda *_: calls.append(1))
    x = volume(dims, 4)
    y = rc(x)
    assert len(calls) == t + 1
    # the same result by hand: h = unit(x); t times h = unit(x + h)
    h = rc.unit(x)
    for _ in range(t):
        h = rc.unit(x + h)
    torch.testing.assert_close(y, h)
    # one conv's parameters, whatever t is
    assert n_params(rc) == n_params(RecurrentConv(dims, 4, t=0))


@pytest.mark.parametrize("dims", DIMS)
def test_r2_block_is_projection_plus_recurrent_residual(dims: int) -> None:
    block = R2Block(dims, 3, 6, t=2).eval()
    x = volume(dims, 3)
    p = block.project(x)
    torch.testing.assert_close(block(x), p + block.rcnn(p))
    assert block.project.kernel_size == (1,) * dims


@pytest.mark.parametrize("dims", DIMS)
def test_residual_block_uses_projection_only_when_channels_change(dims: int) -> None:
    assert isinstance(ResidualBlock(dims, 4, 4).shortcut, nn.Identity)
    assert not isinstance(ResidualBlock(dims, 3, 4).shortcut, nn.Identity)


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("gate_size", [9, 5, 3])
def test_attention_gate_resamples_gate_of_any_size(dims: int, gate_size: int) -> None:
    gate = AttentionGate(dims, gate_channels=6, skip_channels=4)
    x = volume(dims, 4)
    g = volume(dims, 6, size=gate_size)
    y = gate(g, x)
    assert y.shape == x.shape
    psi = gate.coefficients(g, x)
    assert psi.shape == (2, 1, *([9] * dims))
    assert psi.min() >= 0 and psi.max() <= 1
    torch.testing.assert_close(y, x * psi)


def test_attention_gate_matches_reference_formula() -> None:
    gate = AttentionGate(2, 8, 8, 4).eval()
    g, x = volume(2, 8), volume(2, 8)
    relu = torch.relu(gate.w_g(g) + gate.w_x(x))
    expected = x * torch.sigmoid(gate.psi.norm(gate.psi.conv(relu)))
    torch.testing.assert_close(gate(g, x), expected)


@pytest.mark.parametrize("dims", DIMS)
def test_squeeze_excitation(dims: int) -> None:
    se = SqueezeExcitation(dims, 32, reduction=16)
    x = volume(dims, 32, batch=1)
    y = se(x)
    assert y.shape == x.shape
    # (32*2 + 2) + (2*32 + 32) parameters: two 1×1 convs with bias
    assert n_params(se) == 66 + 96
    # each channel is scaled by one factor in (0, 1)
    ratio = (y / x).flatten(2)
    torch.testing.assert_close(ratio.amin(-1), ratio.amax(-1), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dims", DIMS)
def test_cbam_channel_attention_shares_one_mlp(dims: int) -> None:
    ca = ChannelAttention(dims, 32, reduction=8).eval()
    assert n_params(ca) == 32 * 4 + 4 * 32  # one MLP, no bias, shared by avg and max paths
    x = volume(dims, 32)
    dims_ = tuple(range(2, x.dim()))
    avg = ca.mlp(x.mean(dim=dims_, keepdim=True))
    mx = ca.mlp(x.amax(dim=dims_, keepdim=True))
    torch.testing.assert_close(ca(x), x * torch.sigmoid(avg + mx))


@pytest.mark.parametrize("dims", DIMS)
def test_cbam_spatial_attention_is_7x7_over_mean_and_max(dims: int) -> None:
    sa = SpatialAttention(dims)
    assert sa.conv.kernel_size == (7,) * dims and sa.conv.in_channels == 2
    x = volume(dims, 5)
    maps = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
    torch.testing.assert_close(sa(x), x * torch.sigmoid(sa.conv(maps)))
    cbam = CBAM(dims, 16)
    assert cbam(volume(dims, 16)).shape == (2, 16, *([9] * dims))


@pytest.mark.parametrize("dims", DIMS)
def test_aspp_trains_at_batch_size_one(dims: int) -> None:
    aspp = ASPP(dims, 8, 6, rates=(1, 2, 3)).train()
    x = volume(dims, 8, batch=1)
    y = aspp(x)
    assert y.shape == (1, 6, *([9] * dims))
    y.mean().backward()
    assert all(p.grad is not None for p in aspp.parameters())
    assert [b.conv.dilation for b in aspp.branches[1:]] == [(r,) * dims for r in (1, 2, 3)]
    assert aspp.project[0].conv.in_channels == 6 * 5  # 1×1, three rates, image pooling


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("mode", UPSAMPLE_MODES)
def test_upsample_modes_reach_target_size(dims: int, mode: str) -> None:
    up = Upsample(dims, 8, 4, mode)
    y = up(volume(dims, 8, size=5), [10] * dims)
    assert y.shape == (2, up.out_channels, *([10] * dims))
    assert up.out_channels == (8 if mode in ("nearest", "linear") else 4)
    y = up(volume(dims, 8, size=5), [11] * dims)  # odd target after a transposed conv
    assert y.shape[2:] == (11,) * dims
