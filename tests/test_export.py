"""Model export: ONNX (checked against onnxruntime), torch.export programs and TorchScript."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

import unetzoo
from unetzoo.export import ExportError, export
from unetzoo.models import UNet
from unetzoo.models.factory import model_spec

CLASSIC = dict(encoder_channels=(4, 8, 8, 16), bottleneck_channels=16)
MODELS_2D = [n for n in unetzoo.list_models() if (s := model_spec(n)) is not None and s.spatial_dims == 2]


def tiny(name: str) -> dict[str, Any]:
    """Overrides that shrink a registered model to a few thousand parameters."""
    spec = model_spec(name)
    assert spec is not None
    defaults = spec.defaults
    if defaults.get("encoder", "classic") == "classic":
        kw: dict[str, Any] = dict(CLASSIC)
        if spec.assembler is UNet:  # U-Net++ takes its node widths from the encoder
            kw["decoder_channels"] = (8, 8, 8, 4)
        return kw
    kw = {"encoder": "resnet18"}
    if defaults.get("decoder_channels"):
        kw["decoder_channels"] = (8,) * (len(defaults["decoder_channels"]) - 1) + (4,)
    if defaults.get("bottleneck_channels"):
        kw["bottleneck_channels"] = 16
    return kw


def sizes(stride: int, dims: int = 2) -> list[tuple[int, ...]]:
    """Three spatial sizes, multiples of the stride, square and not."""
    if dims == 3:
        return [(stride,) * 3, (stride, 2 * stride, stride), (2 * stride, stride, 2 * stride)]
    return [(2 * stride, 2 * stride), (3 * stride, 4 * stride), (5 * stride, 3 * stride)]


def check_onnx(model: nn.Module, path, dims: int = 2) -> onnx.ModelProto:
    """onnxruntime matches PyTorch within 1e-4 of the largest |logit| at three sizes and two batches."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    for batch, size in zip((1, 2, 1), sizes(model.output_stride, dims), strict=True):
        x = torch.randn(batch, model.in_channels, *size)
        with torch.no_grad():
            ref = model(x)
        refs = [ref] if isinstance(ref, torch.Tensor) else list(ref)
        outs = session.run(None, {"image": x.numpy()})
        assert len(outs) == len(refs)
        for out, want in zip(outs, refs, strict=True):
            want = want.numpy()
            assert out.shape == want.shape
            assert np.abs(out - want).max() <= 1e-4 * np.abs(want).max()
    return onnx.load(str(path))


def meta(proto) -> dict[str, str]:
    return {p.key: p.value for p in proto.metadata_props}


@pytest.mark.parametrize("name", MODELS_2D)
def test_onnx_matches_pytorch(name, tmp_path):
    torch.manual_seed(0)
    model = unetzoo.create_model(name, **tiny(name)).eval()
    path = export(model, tmp_path / f"{name}.onnx")
    assert path.is_file() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    proto = check_onnx(model, path)
    props = meta(proto)
    assert props["architecture"] == name
    assert int(props["output_stride"]) == model.output_stride
    assert int(props["spatial_dims"]) == 2 and int(props["in_channels"]) == 3
    assert int(props["classes"]) == model.config["classes"]
    assert props["unetzoo_version"] == unetzoo.__version__
    prep = json.loads(props["preprocessing"])
    assert {"mean", "std", "scale"} <= set(prep)
    assert json.loads(props["class_names"]) is None
    assert proto.opset_import[0].version >= 17


def test_onnx_aux_head_and_deep_supervision(tmp_path):
    model = unetzoo.create_model("unet", **tiny("unet"), aux_classes=3, deep_supervision=True)
    model.train()
    path = export(model, tmp_path / "aux.onnx")
    assert model.training  # the mode is restored
    model.eval()
    proto = check_onnx(model, path)
    assert [o.name for o in proto.graph.output] == ["logits", "class_logits"]


def test_onnx_metadata_from_pretrained_info(tmp_path):
    model = unetzoo.create_model("unetpp", **tiny("unetpp"), classes=2)
    model.pretrained_info = {"class_names": ["background", "polyp"], "preprocessing": {"mean": [0.5] * 3}}
    props = meta(onnx.load(str(export(model, tmp_path / "m.onnx"))))
    assert json.loads(props["class_names"]) == ["background", "polyp"]
    assert json.loads(props["preprocessing"]) == {"mean": [0.5] * 3}


def test_onnx_3d(tmp_path):
    model = unetzoo.create_model("unet3d", **CLASSIC, decoder_channels=(8, 8, 8, 4)).eval()
    proto = check_onnx(model, export(model, tmp_path / "u3.onnx"), dims=3)
    assert meta(proto)["spatial_dims"] == "3"


def test_onnx_static(tmp_path):
    model = unetzoo.create_model("unet", **tiny("unet")).eval()
    proto = onnx.load(str(export(model, tmp_path / "s.onnx", size=(32, 48), dynamic=False)))
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 32, 48]


class FFTNet(nn.Module):
    """A model with an operator ONNX has no translation for."""

    output_stride, spatial_dims, in_channels = 1, 2, 3

    def forward(self, x):
        return torch.fft.fft2(x).real


def test_unsupported_operator_is_named(tmp_path):
    with pytest.raises(ExportError, match="aten::fft_fft2"):
        export(FFTNet(), tmp_path / "fft.onnx")
    assert not list(tmp_path.iterdir())


def test_bad_arguments(tmp_path):
    model = unetzoo.create_model("unet", **tiny("unet"))
    with pytest.raises(ExportError, match="multiple"):
        export(model, tmp_path / "m.onnx", size=(30, 32))
    with pytest.raises(ExportError, match="opset"):
        export(model, tmp_path / "m.onnx", opset=13)
    with pytest.raises(ExportError, match="format"):
        export(model, tmp_path / "m.bin", format="tflite")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["unet", "unetpp", "unet_resnet34"])
def test_torch_export_program(name, tmp_path):
    torch.manual_seed(0)
    model = unetzoo.create_model(name, **tiny(name)).eval()
    path = export(model, tmp_path / f"{name}.pt2", format="exported")
    program = torch.export.load(str(path)).module()
    for batch, size in zip((1, 2, 1), sizes(model.output_stride), strict=True):
        x = torch.randn(batch, 3, *size)
        with torch.no_grad():
            torch.testing.assert_close(program(x), model(x))


def test_torchscript_refusal_names_the_module_and_leaves_nothing(tmp_path):
    # The zoo's blocks take Python-typed arguments that torch.jit.script cannot read; the
    # error must say where, in one line, and no file may be left behind.
    model = unetzoo.create_model("unet", **tiny("unet")).eval()
    with pytest.raises(ExportError) as err:
        export(model, tmp_path / "u.pt", format="torchscript")
    message = str(err.value)
    assert "\n" not in message and message.startswith("torch.jit.script failed in ")
    where = message.removeprefix("torch.jit.script failed in ").split(":")[0]
    path, _, cls = where.partition(" (")
    assert dict(model.named_modules())[path].__class__.__name__ == cls.rstrip(")")
    assert not list(tmp_path.iterdir())


def test_torchscript_of_a_scriptable_model_round_trips(tmp_path):
    # A plugin's plain convolutional network scripts: the file loads and computes the same.
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 2, 1)).eval()
    path = export(model, tmp_path / "plain.pt", format="torchscript")
    scripted = torch.jit.load(str(path))
    x = torch.randn(2, 3, 20, 28)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x))


def test_export_command_and_package_function(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    import unetzoo
    from unetzoo.cli import app
    from unetzoo.export import ExportError as FromModule

    assert callable(unetzoo.export) and FromModule.__name__ == "ExportError"
    model = unetzoo.create_model("unet", classes=1, encoder_channels=(4, 8, 8, 16), bottleneck_channels=16,
                                 decoder_channels=(8, 8, 8, 4))  # fmt: skip
    model.save_pretrained(tmp_path / "m")
    result = CliRunner().invoke(app, ["export", str(tmp_path / "m"), "--out", str(tmp_path / "m.onnx")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m.onnx").is_file() and "multiples of 16" in result.output
    bad = CliRunner().invoke(app, ["export", str(tmp_path / "m"), "--out", str(tmp_path / "m.onnx"),
                                   "--format", "tflite"])  # fmt: skip
    assert bad.exit_code == 2 and "Traceback" not in bad.output and "tflite" in bad.output
