"""Every registered model: shapes at odd sizes, channels, classes, training, outputs, round trip."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

import unetzoo
from unetzoo.models import model_spec

MODELS = unetzoo.list_models()
# Every built-in model, in sorted order: the names docs/models.md documents.
ZOO = [
    "attn_r2unet", "attn_r2unet_resnet34", "attn_r2unet_resnet50", "attn_unet", "attn_unet3d_cbam",
    "attn_unet_efficientnet_lite0", "attn_unet_resnet34", "attn_unet_resnet50", "attn_unet_resnet50_aspp_se",
    "r2unet", "resattn_unet_resnet50", "unet", "unet3d", "unet_efficientnet_lite0", "unet_resnet34",
    "unet_resnet50", "unetpp", "unetpp_resnet34",
]  # fmt: skip
CLASSIC_FOUR = ["unet", "attn_unet", "r2unet", "attn_r2unet"]
REFERENCE_COUNTS = {
    "unet": 34_527_041,
    "attn_unet": 34_878_573,
    "r2unet": 39_091_393,
    "attn_r2unet": 39_442_925,
}


def odd_input(name: str, in_channels: int, batch: int = 1) -> torch.Tensor:
    """67×61 in 2D, 19×23×17 in 3D."""
    size = (19, 23, 17) if model_spec(name).spatial_dims == 3 else (67, 61)
    return torch.randn(batch, in_channels, *size)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_list_models_names_exactly_the_zoo_in_sorted_order() -> None:
    assert unetzoo.list_models() == ZOO


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("attn*", ["attn_r2unet", "attn_r2unet_resnet34", "attn_r2unet_resnet50", "attn_unet", "attn_unet3d_cbam",
                   "attn_unet_efficientnet_lite0", "attn_unet_resnet34", "attn_unet_resnet50",
                   "attn_unet_resnet50_aspp_se"]),
        ("*resnet50*", ["attn_r2unet_resnet50", "attn_unet_resnet50", "attn_unet_resnet50_aspp_se",
                        "resattn_unet_resnet50", "unet_resnet50"]),
        ("*3d*", ["attn_unet3d_cbam", "unet3d"]),
        ("unet", ["unet"]),
        ("unet??", ["unet3d", "unetpp"]),
        ("*_se", ["attn_unet_resnet50_aspp_se"]),
        ("[r]*", ["r2unet", "resattn_unet_resnet50"]),
        ("segformer*", []),
    ],
)  # fmt: skip
def test_list_models_patterns_select_exactly_the_matching_names(pattern: str, expected: list[str]) -> None:
    assert unetzoo.list_models(pattern) == expected


@pytest.mark.parametrize("name", ZOO)
def test_every_listed_name_builds_its_own_model(name: str) -> None:
    with torch.device("meta"):
        model = unetzoo.create_model(name)
    assert isinstance(model, nn.Module) and n_params(model) > 0
    assert model.config["architecture"] == name
    conv = nn.Conv3d if "3d" in name else nn.Conv2d
    assert any(isinstance(m, conv) for m in model.modules())


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize(("in_channels", "classes"), [(1, 1), (4, 5)])
def test_forward_odd_size_any_channels_and_classes(name: str, in_channels: int, classes: int) -> None:
    model = unetzoo.create_model(name, in_channels=in_channels, classes=classes).eval()
    x = odd_input(name, in_channels)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (1, classes, *x.shape[2:])
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", MODELS)
def test_one_training_step_at_batch_size_one(name: str) -> None:
    model = unetzoo.create_model(name, in_channels=3, classes=2).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = odd_input(name, 3)
    target = torch.randint(0, 2, (1, *x.shape[2:]))
    before = {k: v.clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    loss = nn.functional.cross_entropy(model(x), target)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    frozen = [n for n, p in model.named_parameters() if p.grad is None]
    assert not frozen, f"parameters without gradient: {frozen[:5]}"
    changed = [k for k, v in model.state_dict().items() if k in before and not torch.equal(v, before[k])]
    assert changed


@pytest.mark.parametrize("name", MODELS)
def test_deep_supervision_and_classification_outputs(name: str) -> None:
    model = unetzoo.create_model(name, classes=3, deep_supervision=True, aux_classes=4)
    x = odd_input(name, 3)
    masks, logits = model.train()(x)
    assert isinstance(masks, list) and len(masks) >= 2
    assert all(m.shape == (1, 3, *x.shape[2:]) for m in masks)
    assert logits.shape == (1, 4)
    (sum(m.mean() for m in masks) + logits.mean()).backward()
    with torch.no_grad():
        masks, logits = model.eval()(x)
    assert masks.shape == (1, 3, *x.shape[2:]) and logits.shape == (1, 4)


@pytest.mark.parametrize("name", MODELS)
def test_state_dict_round_trip_and_config_rebuilds(name: str) -> None:
    model = unetzoo.create_model(name, classes=2).eval()
    config = dict(model.config)
    assert config["architecture"] == name
    rebuilt = unetzoo.create_model(config.pop("architecture"), **config).eval()
    rebuilt.load_state_dict(model.state_dict())
    x = odd_input(name, 3)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x))


@pytest.mark.parametrize("name", MODELS)
def test_gradient_checkpointing_gives_the_same_gradients(name: str) -> None:
    plain = unetzoo.create_model(name, norm="group").train()
    ckpt = unetzoo.create_model(name, norm="group", gradient_checkpointing=True).train()
    ckpt.load_state_dict(plain.state_dict())
    x = odd_input(name, 3)
    for model in (plain, ckpt):  # the same dropout masks in both runs
        torch.manual_seed(1)
        model(x).square().mean().backward()
    for (n, a), (_, b) in zip(plain.named_parameters(), ckpt.named_parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6, msg=n)


@pytest.mark.parametrize("name", CLASSIC_FOUR)
def test_reference_parameter_counts_exact(name: str) -> None:
    with torch.device("meta"):
        model = unetzoo.create_model(name, in_channels=3, classes=1)
    assert n_params(model) == REFERENCE_COUNTS[name]


@pytest.mark.parametrize("name", CLASSIC_FOUR)
def test_classic_four_build_in_3d(name: str) -> None:
    widths = dict(encoder_channels=(4, 8, 16, 32), bottleneck_channels=64, decoder_channels=(32, 16, 8, 4))
    model = unetzoo.create_model(name, spatial_dims=3, in_channels=1, classes=3, **widths).eval()
    x = torch.randn(1, 1, 19, 23, 17)
    assert model(x).shape == (1, 3, 19, 23, 17)
    with torch.device("meta"):
        full = unetzoo.create_model(name, spatial_dims=3)
    assert any(isinstance(m, nn.Conv3d) for m in full.modules())


def test_aspp_se_model_matches_original_size_within_one_percent() -> None:
    with torch.device("meta"):
        model = unetzoo.create_model("attn_unet_resnet50_aspp_se", classes=1)
    assert abs(n_params(model) - 96_897_645) / 96_897_645 < 0.01


def test_aspp_se_model_trains_at_batch_one_on_size_not_divisible_by_32() -> None:
    model = unetzoo.create_model("attn_unet_resnet50_aspp_se").train()
    y = model(torch.randn(1, 3, 100, 75))
    assert y.shape == (1, 1, 100, 75)
    y.mean().backward()


def test_unknown_model_name_lists_closest() -> None:
    with pytest.raises(unetzoo.UnknownNameError, match="unknown model 'atn_unet'.*closest: attn_unet"):
        unetzoo.create_model("atn_unet")


def test_unknown_argument_names_model_and_accepted_arguments() -> None:
    with pytest.raises(TypeError, match="model 'unet' takes no argument.*'num_classes'.*classes"):
        unetzoo.create_model("unet", num_classes=3)


@pytest.mark.parametrize("name", ["unet", "unet3d", "unet_resnet34"])
def test_wrong_rank_and_channels_say_what_is_expected(name: str) -> None:
    model = unetzoo.create_model(name, in_channels=2).eval()
    good = odd_input(name, 2)
    with pytest.raises(
        ValueError, match=rf"expects a {good.dim()}-D input .* got a {good.dim() - 1}-D tensor"
    ):
        model(good[0])
    with pytest.raises(ValueError, match="expects 2 input channel.* got 3"):
        model(torch.randn(1, 3, *good.shape[2:]))


def test_timm_encoder_is_2d_only() -> None:
    with pytest.raises(ValueError, match="timm .*2D.*encoder='classic'"):
        unetzoo.create_model("unet_resnet34", spatial_dims=3)


def test_any_timm_encoder_on_the_same_assembler() -> None:
    model = unetzoo.create_model("attn_unet", encoder="efficientnet_b0", **unetzoo_timm_decoder()).eval()
    assert model(torch.randn(1, 3, 67, 61)).shape == (1, 1, 67, 61)
    with pytest.raises(ValueError, match="unknown timm encoder 'resnet35'"):
        unetzoo.create_model("unet_resnet34", encoder="resnet35")


def unetzoo_timm_decoder() -> dict:
    return dict(encoder_depth=5, bottleneck="none", decoder_channels=(128, 64, 32, 16, 8), upsample="nearest")


@pytest.mark.slow
@pytest.mark.parametrize("name", CLASSIC_FOUR)
def test_classic_four_compile_fullgraph(name: str) -> None:
    model = unetzoo.create_model(name).eval()
    x = torch.randn(1, 3, 67, 61)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_unet_compiles_with_inductor() -> None:
    torch._dynamo.reset()
    model = unetzoo.create_model("unet", encoder_channels=(8, 16, 32, 64), bottleneck_channels=128,
                                 decoder_channels=(64, 32, 16, 8)).eval()  # fmt: skip
    x = torch.randn(1, 3, 67, 61)
    compiled = torch.compile(model, fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"classes": 0}, "classes=0; give a whole number >= 1"),
        ({"in_channels": 0}, "in_channels=0"),
        ({"classes": True}, "classes=True"),
        ({"encoder_channels": []}, "encoder_channels=[]; give one or more widths"),
        ({"decoder_channels": [64, 0, 16, 8]}, "decoder_channels=[64, 0, 16, 8]"),
        ({"spatial_dims": 4}, "spatial_dims=4; give 2 or 3"),
    ],
)
def test_bad_model_arguments_fail_when_the_model_is_built(overrides: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=re.escape(needle)):
        unetzoo.create_model("unet", **overrides)


def test_info_with_bad_counts_is_one_line() -> None:
    from typer.testing import CliRunner

    from unetzoo.cli import app

    for args in (["--classes", "-1"], ["--in-channels", "0"]):
        result = CliRunner().invoke(app, ["info", "unet", *args])
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert "give a whole number >= 1" in result.output and len(result.output.strip().splitlines()) == 1
