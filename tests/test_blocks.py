"""Every block in 2D and 3D: shapes, semantics, parameter counts, batch size 1."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
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


def set_conv(
    conv: nn.Module,
    taps: float | torch.Tensor = 0.0,
    *,
    bias: float | list[float] = 0.0,
    channels: list[tuple[int, int, float]] | None = None,
) -> None:
    """Give ``conv`` known weights: every kernel tap of the ``(out, in, scale)`` pairs in ``channels``
    set to ``taps * scale`` (a number, or a tensor of the kernel's shape), all else zero; then ``bias``."""
    with torch.no_grad():
        conv.weight.zero_()
        for out, cin, scale in channels or [(0, 0, 1.0)]:
            conv.weight[out, cin] = torch.as_tensor(taps, dtype=conv.weight.dtype) * scale
        if conv.bias is not None:
            conv.bias.copy_(torch.as_tensor(bias, dtype=conv.bias.dtype).expand_as(conv.bias))


def centre(kernel: int, dims: int, value: float = 1.0) -> torch.Tensor:
    """A ``kernel``-wide kernel in ``dims`` dimensions with ``value`` at its centre tap and zeros elsewhere."""
    k = torch.zeros([kernel] * dims)
    k[(kernel // 2,) * dims] = value
    return k


def impulse(dims: int, size: int, channels: int = 1) -> torch.Tensor:
    """``(1, channels, size, ...)`` zeros with a one at the centre of every channel."""
    x = torch.zeros(1, channels, *([size] * dims))
    x[(0, slice(None), *([size // 2] * dims))] = 1.0
    return x


def offsets(dims: int, size: int) -> torch.Tensor:
    """``(dims, size, ...)``: each voxel's offset from the centre along every axis."""
    axis = torch.arange(size) - size // 2
    return torch.stack(torch.meshgrid(*([axis] * dims), indexing="ij"))


@pytest.mark.parametrize("dims", DIMS)
def test_double_conv_impulse_response_is_two_3x3_boxes_after_relu(dims: int) -> None:
    block = DoubleConv(dims, 1, 1, norm="none").eval()
    set_conv(block[0].conv, torch.ones([3] * dims), bias=-0.5)  # box sum, then -0.5: relu keeps only the 3×3
    set_conv(block[1].conv, torch.ones([3] * dims))
    y = block(impulse(dims, 9))
    # a 3×3 box of 0.5 convolved with a 3×3 box of ones: 0.5 · Π (3 - |offset|) within two voxels
    expected = 0.5 * (3 - offsets(dims, 9).abs()).clamp(min=0).prod(0)
    torch.testing.assert_close(y[0, 0], expected)


@pytest.mark.parametrize("dims", DIMS)
def test_residual_block_adds_its_input_before_the_last_activation(dims: int) -> None:
    block = ResidualBlock(dims, 1, 1, norm="none").eval()
    set_conv(block.conv1.conv, centre(3, dims, 0.5))
    set_conv(block.conv2.conv, centre(3, dims, 3.0))
    x = torch.tensor([-2.0, -0.5, 0.0, 0.25, 1.0, 4.0]).reshape(1, 1, 6, *([1] * (dims - 1)))
    # relu(3 · relu(0.5 x) + x): 2.5 x where x > 0, and 0 (not x) where x < 0
    expected = torch.tensor([0.0, 0.0, 0.0, 0.625, 2.5, 10.0]).reshape_as(x)
    torch.testing.assert_close(block(x), expected)


@pytest.mark.parametrize("dims", DIMS)
def test_residual_block_projects_the_shortcut_when_channels_change(dims: int) -> None:
    block = ResidualBlock(dims, 2, 1, norm="none").eval()
    set_conv(block.conv1.conv, centre(3, dims, 0.5), channels=[(0, 0, 1.0)])  # reads channel 0
    set_conv(block.conv2.conv, centre(3, dims, 3.0))
    set_conv(block.shortcut.conv, centre(1, dims), channels=[(0, 1, -1.0)])  # minus channel 1
    x0 = torch.tensor([2.0, 2.0, -1.0, 0.0])
    x1 = torch.tensor([1.0, 4.0, -1.0, -2.0])
    x = torch.stack([x0, x1]).reshape(1, 2, 4, *([1] * (dims - 1)))
    expected = torch.tensor([2.0, 0.0, 1.0, 2.0])  # relu(1.5 relu(x0) - x1)
    torch.testing.assert_close(block(x), expected.reshape(1, 1, 4, *([1] * (dims - 1))))
    assert isinstance(ResidualBlock(dims, 4, 4).shortcut, nn.Identity)


def recurrence_factor(t: int) -> float:
    """``h = relu(x / 2)``, then ``t`` times ``h = relu((x + h) / 2)``: ``h = x (1 - 2^-(t+1))`` for ``x > 0``."""
    return 1 - 2.0 ** -(t + 1)


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("t", [0, 1, 2, 3])
def test_recurrent_conv_feeds_its_input_back_t_times_with_one_shared_unit(dims: int, t: int) -> None:
    rc = RecurrentConv(dims, 1, t=t, norm="none").eval()
    set_conv(rc.unit.conv, centre(3, dims, 0.5))
    calls = []
    rc.unit.register_forward_hook(lambda *_: calls.append(1))
    x = torch.tensor([-3.0, -1.0, 0.0, 0.5, 1.0, 2.0]).reshape(1, 1, 6, *([1] * (dims - 1)))
    y = rc(x)
    assert len(calls) == t + 1
    torch.testing.assert_close(y, recurrence_factor(t) * x.clamp(min=0))
    # one conv (with bias) and one batch norm, whatever t is
    assert n_params(RecurrentConv(dims, 4, t=t)) == 4 * 4 * 3**dims + 4 + 2 * 4


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("t", [0, 2])
def test_r2_block_is_projection_plus_two_recurrent_convs_on_it(dims: int, t: int) -> None:
    block = R2Block(dims, 1, 2, t=t, norm="none").eval()
    assert block.project.kernel_size == (1,) * dims
    set_conv(block.project, centre(1, dims), channels=[(0, 0, 1.0), (1, 0, -1.0)], bias=[0.0, 0.0])
    for rc in block.rcnn:
        set_conv(rc.unit.conv, centre(3, dims, 0.5), channels=[(0, 0, 1.0), (1, 1, 1.0)])
    x = torch.tensor([-2.0, -0.5, 0.0, 1.0, 3.0]).reshape(1, 1, 5, *([1] * (dims - 1)))
    p = torch.cat([x, -x], 1)
    # p + rc(rc(p)), each recurrent conv scales positive values by the recurrence factor
    torch.testing.assert_close(block(x), p + recurrence_factor(t) ** 2 * p.clamp(min=0))


def attention_gate(dims: int) -> AttentionGate:
    """psi = sigmoid(2 relu(g0 + x1 + 0.5) - 1): W_g reads g's channel 0, W_x x's channel 1."""
    gate = AttentionGate(dims, gate_channels=2, skip_channels=2, inter_channels=1, norm="none").eval()
    set_conv(gate.w_g.conv, centre(1, dims), channels=[(0, 0, 1.0)])
    set_conv(gate.w_x.conv, centre(1, dims), channels=[(0, 1, 1.0)], bias=0.5)
    set_conv(gate.psi.conv, centre(1, dims, 2.0), bias=-1.0)
    return gate


@pytest.mark.parametrize("dims", DIMS)
def test_attention_gate_weights_the_skip_by_the_additive_attention_formula(dims: int) -> None:
    gate = attention_gate(dims)
    g, x = volume(dims, 2), volume(dims, 2)
    psi = torch.sigmoid(2 * torch.relu(g[:, :1] + x[:, 1:] + 0.5) - 1)
    torch.testing.assert_close(gate(g, x), x * psi)
    torch.testing.assert_close(gate.coefficients(g, x), psi)
    # where g0 + x1 + 0.5 <= 0 the relu closes the gate to sigmoid(-1) on both channels
    closed = (g[:, :1] + x[:, 1:] + 0.5 <= 0).expand_as(x)
    assert closed.any()
    torch.testing.assert_close(gate(g, x)[closed], x[closed] * torch.sigmoid(torch.tensor(-1.0)))


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("gate_size", [5, 3])
def test_attention_gate_resamples_a_smaller_gate_linearly(dims: int, gate_size: int) -> None:
    gate = attention_gate(dims)
    x = volume(dims, 2)
    g = volume(dims, 2, size=gate_size)
    mode = "bilinear" if dims == 2 else "trilinear"
    g0 = F.interpolate(g[:, :1], size=(9,) * dims, mode=mode, align_corners=False)
    torch.testing.assert_close(gate(g, x), x * torch.sigmoid(2 * torch.relu(g0 + x[:, 1:] + 0.5) - 1))
    constant = torch.full_like(g, 0.25)  # a constant gate resamples to the same constant
    torch.testing.assert_close(gate(constant, x), x * torch.sigmoid(2 * torch.relu(x[:, 1:] + 0.75) - 1))


def channel_means(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).mean(-1)


def channel_maxima(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).amax(-1)


def per_channel(v: torch.Tensor, dims: int) -> torch.Tensor:
    return v.reshape(*v.shape, *([1] * dims))


@pytest.mark.parametrize("dims", DIMS)
def test_squeeze_excitation_scales_channels_by_the_gate_of_their_means(dims: int) -> None:
    se = SqueezeExcitation(dims, 32, reduction=16)
    assert n_params(se) == (32 * 2 + 2) + (2 * 32 + 32)  # two 1×1 convs with bias
    se = SqueezeExcitation(dims, 4, reduction=2).eval()
    squeeze, excite = se.fc[0], se.fc[2]
    set_conv(squeeze, centre(1, dims), channels=[(0, 0, 1.0), (1, 1, 1.0)])  # h = relu(mean x0, mean x1)
    set_conv(excite, centre(1, dims), channels=[(0, 0, 1.0), (1, 1, 1.0), (2, 0, 1.0), (2, 1, 1.0), (3, 0, -1.0)],
             bias=[0.0, 0.0, 0.0, 0.5])  # fmt: skip
    x = volume(dims, 4) + per_channel(torch.tensor([1.0, -1.0, 0.3, 0.0]), dims)
    m = channel_means(x)
    h0, h1 = m[:, 0].clamp(min=0), m[:, 1].clamp(min=0)
    gate = torch.sigmoid(torch.stack([h0, h1, h0 + h1, 0.5 - h0], 1))
    torch.testing.assert_close(se(x), x * per_channel(gate, dims))


def channel_attention(dims: int) -> ChannelAttention:
    """mlp(v) = W relu(v) with W = [[1, 2], [0, -1]]."""
    ca = ChannelAttention(dims, 2, reduction=1).eval()
    set_conv(ca.mlp[0], centre(1, dims), channels=[(0, 0, 1.0), (1, 1, 1.0)])
    set_conv(ca.mlp[2], centre(1, dims), channels=[(0, 0, 1.0), (0, 1, 2.0), (1, 1, -1.0)])
    return ca


def expected_channel_attention(x: torch.Tensor, dims: int) -> torch.Tensor:
    w = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    z = channel_means(x).clamp(min=0) @ w.T + channel_maxima(x).clamp(min=0) @ w.T
    return x * per_channel(torch.sigmoid(z), dims)


def spatial_attention_taps(dims: int, kernel: int = 7) -> torch.Tensor:
    """Centre taps 0.5 on the mean map and -1.5 on the max map: sigmoid(0.5 mean_c - 1.5 max_c)."""
    return torch.stack([centre(kernel, dims, 0.5), centre(kernel, dims, -1.5)])


def expected_spatial_attention(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(0.5 * x.mean(1, keepdim=True) - 1.5 * x.amax(1, keepdim=True))


@pytest.mark.parametrize("dims", DIMS)
def test_cbam_channel_attention_sends_mean_and_max_through_one_mlp(dims: int) -> None:
    assert n_params(ChannelAttention(dims, 32, reduction=8)) == 32 * 4 + 4 * 32  # one MLP, no bias
    ca = channel_attention(dims)
    # channel 1 has a negative mean and a positive maximum: relu(mean) and relu(max) differ
    x = volume(dims, 2) + per_channel(torch.tensor([0.5, -0.8]), dims)
    assert (channel_means(x)[:, 1] < 0).all() and (channel_maxima(x)[:, 1] > 0).all()
    torch.testing.assert_close(ca(x), expected_channel_attention(x, dims))


@pytest.mark.parametrize("dims", DIMS)
def test_cbam_spatial_attention_weighs_mean_and_max_maps(dims: int) -> None:
    sa = SpatialAttention(dims).eval()
    with torch.no_grad():
        sa.conv.weight.copy_(spatial_attention_taps(dims)[None])
    x = volume(dims, 5)
    torch.testing.assert_close(sa(x), expected_spatial_attention(x))


@pytest.mark.parametrize("dims", DIMS)
def test_cbam_spatial_attention_sees_a_7x7_neighbourhood(dims: int) -> None:
    sa = SpatialAttention(dims).eval()
    set_conv(sa.conv, torch.ones([7] * dims))  # sums the mean map over the window
    # channel 0 is all ones (it shows the attention map); the channel mean is 1 at the centre, 0 elsewhere
    x = torch.cat([torch.ones(1, 1, *([11] * dims)), 2 * impulse(dims, 11) - 1], 1)
    inside = offsets(dims, 11).abs().amax(0) <= 3
    expected = torch.where(inside, torch.sigmoid(torch.tensor(1.0)), torch.tensor(0.5))
    torch.testing.assert_close(sa(x)[0, 0], expected)


@pytest.mark.parametrize("dims", DIMS)
def test_cbam_applies_channel_then_spatial_attention(dims: int) -> None:
    cbam = CBAM(dims, 2, reduction=1).eval()
    cbam.channel.load_state_dict(channel_attention(dims).state_dict())
    with torch.no_grad():
        cbam.spatial.conv.weight.copy_(spatial_attention_taps(dims)[None])
    x = volume(dims, 2) + per_channel(torch.tensor([0.5, -0.8]), dims)
    expected = expected_spatial_attention(expected_channel_attention(x, dims))
    torch.testing.assert_close(cbam(x), expected)


@pytest.mark.parametrize("dims", DIMS)
def test_aspp_branches_have_the_dilation_pattern_of_their_rates(dims: int) -> None:
    rates = (1, 2, 3)
    aspp = ASPP(dims, 1, 1, rates=rates, norm="none", act="none").eval()
    x = impulse(dims, 15)
    off = offsets(dims, 15)
    for branch in range(len(rates) + 2):
        for i, b in enumerate(aspp.branches):
            set_conv(b.conv, torch.ones(b.conv.weight.shape[2:]) if i == branch else 0.0)
        set_conv(aspp.image_pool[1], torch.ones([1] * dims) if branch == len(rates) + 1 else 0.0)
        set_conv(aspp.project[0].conv, centre(1, dims), channels=[(0, branch, 1.0)])
        y = aspp(x)[0, 0]
        if branch == 0:  # the 1×1 branch: the impulse itself
            expected = (off.abs().amax(0) == 0).float()
        elif branch <= len(rates):  # a 3×3 kernel dilated by r: ones at offsets in {-r, 0, r} per axis
            r = rates[branch - 1]
            expected = (off.abs() % r == 0).all(0) & (off.abs() <= r).all(0)
            expected = expected.float()
        else:  # image pooling: the input's mean everywhere
            expected = torch.full_like(y, 1 / 15**dims)
        torch.testing.assert_close(y, expected, msg=f"branch {branch}")


@pytest.mark.parametrize("dims", DIMS)
def test_aspp_trains_at_batch_size_one(dims: int) -> None:
    aspp = ASPP(dims, 8, 6, rates=(1, 2, 3)).train()
    x = volume(dims, 8, batch=1)
    y = aspp(x)
    assert y.shape == (1, 6, *([9] * dims))
    y.mean().backward()
    assert all(p.grad is not None for p in aspp.parameters())


def ramp(dims: int) -> torch.Tensor:
    """A 2×2 (2×2×2) input whose value is 4 per step along the last axis, 8 along the one before, 16 …"""
    grid = torch.stack(torch.meshgrid(*([torch.arange(2.0)] * dims), indexing="ij"))
    steps = torch.tensor([16.0, 8.0, 4.0][-dims:]).reshape(dims, *([1] * dims))
    return (grid * steps).sum(0)[None, None]


def linear_upsampled_ramp(dims: int) -> torch.Tensor:
    """The ramp resized to 4 per axis with half-pixel centres: source positions 0, 0.25, 0.75, 1."""
    w = torch.tensor([0.0, 0.25, 0.75, 1.0])
    grid = torch.stack(torch.meshgrid(*([w] * dims), indexing="ij"))
    steps = torch.tensor([16.0, 8.0, 4.0][-dims:]).reshape(dims, *([1] * dims))
    return (grid * steps).sum(0)[None, None]


@pytest.mark.parametrize("dims", DIMS)
def test_upsample_modes_by_hand(dims: int) -> None:
    x = ramp(dims)
    size = [4] * dims
    nearest = torch.kron(x, torch.ones([1, 1] + [2] * dims))  # each value repeated over a 2×2 block
    linear = linear_upsampled_ramp(dims)
    torch.testing.assert_close(Upsample(dims, 1, 1, "nearest")(x, size), nearest)
    torch.testing.assert_close(Upsample(dims, 1, 1, "linear")(x, size), linear)
    for mode, resized in (("nearest_conv", nearest), ("linear_conv", linear)):
        up = Upsample(dims, 1, 1, mode, norm="none").eval()
        set_conv(up.conv.conv, centre(3, dims, 2.0), bias=-3.0)
        torch.testing.assert_close(up(x, size), torch.relu(2 * resized - 3), msg=mode)
    up = Upsample(dims, 1, 1, "transpose")
    kernel = torch.arange(1.0, 2**dims + 1).reshape([2] * dims)
    set_conv(up.conv, kernel)
    # each input value stamps value × kernel into its own 2×2 block
    torch.testing.assert_close(up(x, size), torch.kron(x, kernel[None, None]))


@pytest.mark.parametrize("dims", DIMS)
def test_blocks_by_name(dims: int) -> None:
    assert isinstance(make_stage_block("double_conv", dims, 3, 4), DoubleConv)
    assert isinstance(make_stage_block("residual", dims, 3, 4), ResidualBlock)
    r2 = make_stage_block("r2", dims, 3, 4, t=3)
    assert isinstance(r2, R2Block)
    calls = []
    for rc in r2.rcnn:
        rc.unit.register_forward_hook(lambda *_: calls.append(1))
    r2(volume(dims, 3))
    assert len(calls) == 2 * (3 + 1)  # t reaches both recurrent convs
    assert isinstance(make_attention("se", dims, 16), SqueezeExcitation)
    assert isinstance(make_attention("cbam", dims, 16), CBAM)
    assert isinstance(make_attention(None, dims, 16), nn.Identity)


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("mode", UPSAMPLE_MODES)
def test_upsample_modes_reach_target_size(dims: int, mode: str) -> None:
    up = Upsample(dims, 8, 4, mode)
    y = up(volume(dims, 8, size=5), [10] * dims)
    assert y.shape == (2, up.out_channels, *([10] * dims))
    assert up.out_channels == (8 if mode in ("nearest", "linear") else 4)
    y = up(volume(dims, 8, size=5), [11] * dims)  # odd target after a transposed conv
    assert y.shape[2:] == (11,) * dims
