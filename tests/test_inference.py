"""Inference: test-time augmentation and sliding windows against plain forwards and by-hand loops."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import unetzoo
from unetzoo.inference import View, importance_map, predict, probabilities, tta_views, window_starts

TINY = {"encoder_channels": (4, 8, 8, 16), "bottleneck_channels": 16, "decoder_channels": (8, 8, 8, 4)}


class Recorder(nn.Module):
    """A model wrapper that records the batch size of every forward pass."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.batches = model, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(x.shape[0])
        return self.model(x)


def pointwise(dims: int, classes: int = 2) -> nn.Module:
    """A per-pixel network: exactly equivariant to flips and turns, blind to context."""
    conv = nn.Conv2d if dims == 2 else nn.Conv3d
    return nn.Sequential(conv(3, 8, 1), nn.Tanh(), conv(8, classes, 1)).eval()


def test_views_invert_exactly() -> None:
    x = torch.randn(2, 3, 5, 7)
    for mode, count in (("none", 1), ("flips", 4), ("d4", 8)):
        views = tta_views(mode, 2)
        assert len(views) == count and len(set(views)) == count
        for view in views:
            assert torch.equal(view.invert(view.apply(x)), x)
    assert len(tta_views("flips", 3)) == 8
    with pytest.raises(ValueError, match="for 2D inputs"):
        tta_views("d4", 3)
    with pytest.raises(ValueError, match="unknown test-time augmentation 'd8'"):
        tta_views("d8", 2)


@pytest.mark.parametrize(("dims", "tta"), [(2, "flips"), (2, "d4"), (3, "flips")])
def test_tta_of_an_equivariant_model_equals_no_tta(dims: int, tta: str) -> None:
    model = pointwise(dims)
    x = torch.randn(2, 3, *([6, 9, 7][:dims] if dims == 3 else [6, 9]))
    plain = predict(model, x)
    torch.testing.assert_close(predict(model, x, tta=tta), plain, rtol=0, atol=1e-6)
    assert plain.shape == (2, 2, *x.shape[2:]) and torch.allclose(plain.sum(1), torch.ones(()))


def test_d4_equals_one_forward_per_view_and_batches_the_views() -> None:
    model = Recorder(unetzoo.create_model("unet", classes=1, **TINY).eval())
    x = torch.randn(2, 3, 32, 48)  # not square: turned views have their own shape
    batched = predict(model, x, tta="d4", max_batch=64)
    assert model.batches == [8, 8]  # two shapes, each view of both images in one pass
    by_hand = torch.zeros_like(batched)
    for flips in ((), (-1,)):
        for turns in range(4):
            view = View(flips, turns)
            by_hand += view.invert(torch.sigmoid(model.model(view.apply(x))))
    torch.testing.assert_close(batched, by_hand / 8, rtol=1e-5, atol=1e-6)
    model.batches.clear()
    chunked = predict(model, x, tta="d4", max_batch=3)
    assert max(model.batches) <= 3
    torch.testing.assert_close(chunked, batched, rtol=1e-5, atol=1e-6)


def test_window_starts_and_weights() -> None:
    assert window_starts(10, 4, 0.5) == [0, 2, 4, 6]
    assert window_starts(11, 4, 0.5) == [0, 2, 4, 6, 7]
    assert window_starts(10, 4, 0.0) == [0, 4, 6]
    assert window_starts(4, 4, 0.5) == [0]
    weights = importance_map((9, 6), "gaussian")
    assert weights.shape == (9, 6)
    assert torch.equal(weights, weights.flip(0)) and torch.equal(weights, weights.flip(1))
    gauss = lambda d, sigma: math.exp(-(d**2) / (2 * sigma**2))  # noqa: E731
    # the centre row of 9 is at distance 0; the columns of 6 lie 0.5, 1.5 and 2.5 from the centre
    assert float(weights.max()) == pytest.approx(gauss(0.5, 0.75), rel=1e-6)
    assert float(weights[4, 0]) == pytest.approx(gauss(2.5, 0.75), rel=1e-6)
    assert float(importance_map((64, 64), "gaussian").min()) == pytest.approx(1e-3)  # small weights raised
    assert torch.equal(importance_map((3, 3), "constant"), torch.ones(3, 3))
    with pytest.raises(ValueError, match="unknown blend"):
        importance_map((3, 3), "cosine")


def test_window_of_the_image_size_equals_a_plain_forward() -> None:
    model = unetzoo.create_model("unet", classes=3, **TINY).eval()
    x = torch.randn(1, 3, 32, 48)
    torch.testing.assert_close(predict(model, x, window=(32, 48)), predict(model, x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("blend", ["gaussian", "constant"])
@pytest.mark.parametrize(("size", "window"), [((20, 30), (8, 8)), ((5, 7), (8, 8)), ((13, 9), (6, 9))])
def test_windows_of_a_pointwise_model_blend_to_a_plain_forward(blend: str, size, window) -> None:
    model = Recorder(pointwise(2))
    x = torch.randn(2, 3, *size)
    plain = predict(model.model, x)
    out = predict(model, x, window=window, overlap=0.5, blend=blend, tta="flips", max_batch=8)
    torch.testing.assert_close(out, plain, rtol=0, atol=1e-5)
    assert max(model.batches) <= 8


def test_volume_windows_with_flips_and_autocast() -> None:
    model = unetzoo.create_model("unet3d", in_channels=1, classes=2, encoder_channels=(4, 8),
                                 bottleneck_channels=8, decoder_channels=(8, 4)).eval()  # fmt: skip
    x = torch.randn(1, 1, 20, 18, 22)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = predict(model, x, tta="flips", window=(16, 16, 16), overlap=0.25, max_batch=8)
    assert out.shape == (1, 2, 20, 18, 22) and out.dtype == torch.float32
    torch.testing.assert_close(out.sum(1), torch.ones(1, 20, 18, 22), rtol=0, atol=1e-5)


def test_probabilities_of_model_outputs() -> None:
    logits = torch.randn(2, 1, 4, 4)
    torch.testing.assert_close(probabilities([logits, logits * 2]), torch.sigmoid(logits))
    torch.testing.assert_close(probabilities((logits, torch.randn(2, 3))), torch.sigmoid(logits))
    many = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(probabilities(many), torch.softmax(many, 1))
    torch.testing.assert_close(probabilities(many, "sigmoid"), torch.sigmoid(many))
    with pytest.raises(ValueError, match="unknown activation"):
        probabilities(many, "relu")


@pytest.mark.parametrize("dims", [2, 3])
def test_sliding_window_equals_monai(dims: int) -> None:
    from monai import inferers

    from unetzoo.inference import sliding_window

    if dims == 2:
        model = unetzoo.create_model("unet", classes=1, **TINY).eval()
        x, window = torch.randn(1, 3, 100, 90), (32, 32)
    else:
        model = unetzoo.create_model("unet3d", in_channels=1, classes=2, encoder_channels=(4, 8),
                                     bottleneck_channels=8, decoder_channels=(8, 4)).eval()  # fmt: skip
        x, window = torch.randn(1, 1, 40, 36, 30), (16, 16, 16)

    def fn(t: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(model(t))

    with torch.no_grad():
        ours = sliding_window(fn, x, window, overlap=0.5, blend="gaussian", max_batch=4)
        theirs = inferers.sliding_window_inference(x, window, 4, fn, overlap=0.5, mode="gaussian")
    torch.testing.assert_close(ours, theirs.as_tensor() if hasattr(theirs, "as_tensor") else theirs,
                               rtol=0, atol=1e-6)  # fmt: skip


def _randomise_batchnorm(model: nn.Module) -> None:
    """Give every BatchNorm statistics and affine parameters far from the identity."""
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen))
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=gen))
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen))


@pytest.mark.parametrize("name", unetzoo.list_models())
def test_inference_model_computes_what_the_model_computes(name: str) -> None:
    from tests.test_export import tiny
    from unetzoo.inference import inference_model

    model = unetzoo.create_model(name, **tiny(name)).eval()
    _randomise_batchnorm(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ready = inference_model(model)
    dims = model.config.get("spatial_dims", 2)
    x = torch.randn(2, model.config.get("in_channels", 3), *([32] * dims))
    with torch.no_grad():
        expected, got = model(x), ready(x)
    scale = expected.abs().max()
    assert (got - expected).abs().max() <= 1e-4 * scale
    # the original is untouched, and the copy keeps what inference reads from the model
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert ready.config == model.config and ready.output_stride == model.output_stride
    if model_spec_classic(name):  # our conv-norm-act blocks fold; timm encoders keep their own norms
        norms = [m for m in ready.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        assert len(norms) < len([m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)])


def model_spec_classic(name: str) -> bool:
    spec = unetzoo.models.model_spec(name)
    return spec is not None and spec.defaults.get("encoder", "classic") == "classic"


def test_fold_batchnorm_refuses_training_mode() -> None:
    from unetzoo.inference import fold_batchnorm

    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(unetzoo.create_model("unet", encoder_channels=[4, 8, 8, 16], bottleneck_channels=16,
                                            decoder_channels=[8, 8, 8, 4]).train())  # fmt: skip


@pytest.mark.parametrize("max_batch", [1, 2, 3, 5, 16])
def test_view_chunks_of_any_size_give_the_same_average(max_batch: int) -> None:
    torch.manual_seed(0)
    model = unetzoo.create_model("unet", encoder_channels=[4, 8, 8, 16], bottleneck_channels=16,
                                 decoder_channels=[8, 8, 8, 4]).eval()  # fmt: skip
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        reference = torch.stack([
            torch.stack([v.invert(torch.sigmoid(model(v.apply(x[i : i + 1])))) for v in tta_views("d4", 2)]).mean(0)[0]
            for i in range(3)])  # fmt: skip
    torch.testing.assert_close(predict(model, x, tta="d4", max_batch=max_batch), reference, atol=1e-6, rtol=1e-5)
