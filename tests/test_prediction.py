"""``unetzoo.prediction``: masks, probabilities, palettes and overlays for files; NIfTI geometry kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import unetzoo
from unetzoo.evaluation import Source, load_source, probabilities_of
from unetzoo.hub import model_preprocessing
from unetzoo.inference import predict
from unetzoo.prediction import PredictionReport, normalise_image, predict_files

TINY = dict(encoder_channels=(4, 8, 8, 16), bottleneck_channels=16, decoder_channels=(8, 8, 8, 4))


def _saved(tmp_path: Path, name: str, **kwargs) -> Source:
    model = unetzoo.create_model("unet", **TINY, **kwargs)
    model.save_pretrained(tmp_path / name)
    return load_source(str(tmp_path / name))


@pytest.fixture
def binary(tmp_path: Path) -> Source:
    return _saved(tmp_path, "m", classes=1)


def _images(folder: Path, sizes: list[tuple[int, int]], prefix: str = "img") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    paths = []
    for i, (h, w) in enumerate(sizes):
        path = folder / f"{prefix}{i}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _reference(source: Source, path: Path) -> torch.Tensor:
    """``(C, H, W)`` probabilities of one image by hand: read, normalise, ``inference.predict``."""
    image = np.asarray(Image.open(path))
    x = normalise_image(image, model_preprocessing(source.model), 3, path)
    return predict(source.model.cpu().eval(), x[None])[0]


def test_masks_probabilities_and_threshold(binary: Source, tmp_path: Path) -> None:
    paths = _images(tmp_path / "in", [(20, 24), (20, 24), (17, 31)])  # two of one size: a batch
    refs = [_reference(binary, path) for path in paths]
    threshold = float(refs[0].median())  # an untrained model's probabilities lie close together
    report = predict_files(binary, [str(tmp_path / "in")], tmp_path / "out", probabilities=True,
                           threshold=threshold, batch_size=2, device="cpu")  # fmt: skip
    assert isinstance(report, PredictionReport) and report.failures == [] and report.inputs == 3
    for path, ref in zip(paths, refs, strict=True):
        mask = np.asarray(Image.open(tmp_path / "out" / f"{path.stem}.png"))
        assert mask.dtype == np.uint8 and mask.shape == ref.shape[1:]
        probs = np.load(tmp_path / "out" / f"{path.stem}.npy")
        assert probs.dtype == np.float16 and probs.shape == tuple(ref.shape)
        np.testing.assert_allclose(probs.astype(np.float32), ref.numpy(), atol=1e-3)
        sure = (ref[0] - threshold).abs().numpy() > 1e-5  # batched and single runs may differ in rounding
        np.testing.assert_array_equal(mask[sure], (ref[0].numpy() > threshold)[sure])
        assert set(np.unique(mask)) <= {0, 1}
    assert set(np.unique(np.asarray(Image.open(tmp_path / "out" / "img0.png")))) == {0, 1}
    assert len(report.written) == 6


def test_training_size_resizes_and_back(binary: Source, tmp_path: Path) -> None:
    (path,) = _images(tmp_path / "in", [(20, 28)])
    run = Source(binary.model, options={"size": "32"})
    predict_files(run, [str(path)], tmp_path / "out", probabilities=True, device="cpu")
    x = normalise_image(np.asarray(Image.open(path)), model_preprocessing(binary.model), 3, path)
    ref = probabilities_of(binary.model, x[None], size=(32, 32))[0]
    probs = np.load(tmp_path / "out" / "img0.npy").astype(np.float32)
    assert probs.shape == (1, 20, 28)
    np.testing.assert_allclose(probs, ref.numpy(), atol=1e-3)


def test_multiclass_palette_and_overlay(tmp_path: Path) -> None:
    source = _saved(tmp_path, "mc", classes=3)
    (path,) = _images(tmp_path / "in", [(18, 22)])
    report = predict_files(source, [str(path)], tmp_path / "out", palette=True, overlay=True, device="cpu")
    assert report.failures == [] and len(report.written) == 2
    colour = Image.open(tmp_path / "out" / "img0.png")
    tinted = Image.open(tmp_path / "out" / "img0_overlay.png")
    assert colour.mode == "RGB" and colour.size == (22, 18)
    assert tinted.mode == "RGB" and tinted.size == (22, 18)
    ids = _reference(source, path).argmax(0).numpy()
    expected = unetzoo.viz.PALETTE[ids].astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(colour), expected)
    background = ids == 0  # untinted pixels keep the picture's own colour
    np.testing.assert_array_equal(np.asarray(tinted)[background], np.asarray(Image.open(path))[background])


def test_folder_glob_and_corrupt_file(binary: Source, tmp_path: Path) -> None:
    _images(tmp_path / "a", [(16, 16), (16, 16)], prefix="a")
    _images(tmp_path / "b", [(16, 20)], prefix="b")
    (tmp_path / "b" / "x.png").write_bytes(np.random.default_rng(0).bytes(200))
    seen: list[tuple[int, int | None]] = []
    report = predict_files(binary, [str(tmp_path / "a"), str(tmp_path / "b" / "*.png")], tmp_path / "out",
                           device="cpu", progress=lambda n=1, total=None: seen.append((n, total)))  # fmt: skip
    assert [p.name for p, _ in report.failures] == ["x.png"]
    assert "x.png" in report.failures[0][1] and "\n" not in report.failures[0][1]
    assert sorted(p.name for p in report.written) == ["a0.png", "a1.png", "b0.png"]
    assert seen == [(0, 4), (1, None), (1, None), (1, None), (1, None)]  # the total first, then each input


def test_wrong_channels_reported(binary: Source, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    Image.fromarray(np.zeros((16, 16), dtype=np.uint8)).save(tmp_path / "in" / "grey.png")
    _images(tmp_path / "in", [(16, 16)])
    report = predict_files(binary, [str(tmp_path / "in")], tmp_path / "out", device="cpu")
    assert [p.name for p, _ in report.failures] == ["grey.png"] and "channels" in report.failures[0][1]
    assert [p.name for p in report.written] == ["img0.png"]


def test_refusals_before_writing(binary: Source, tmp_path: Path) -> None:
    (path,) = _images(tmp_path / "in", [(16, 16)])
    with pytest.raises(ValueError, match="--out"):
        predict_files(binary, [str(tmp_path / "in")], tmp_path / "in", device="cpu")
    with pytest.raises(ValueError, match="--out"):
        predict_files(binary, [str(path)], tmp_path / "in", device="cpu")
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == ["img0.png"]
    for missing in (str(tmp_path / "nope.png"), str(tmp_path / "in" / "*.jpg")):
        with pytest.raises(ValueError, match="matches no"):
            predict_files(binary, [missing], tmp_path / "out", device="cpu")
    assert not (tmp_path / "out").exists()


def test_nifti_keeps_geometry(tmp_path: Path) -> None:
    import nibabel as nib

    affine = np.array([[0.0, 0.0, 2.0, -40.5], [0.7, 0.0, 0.0, 12.25], [0.0, -0.8, 0.0, 7.0],
                       [0.0, 0.0, 0.0, 1.0]])  # fmt: skip
    data = np.random.default_rng(0).normal(100, 20, (12, 10, 6)).astype(np.int16)
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    nib.save(img, tmp_path / "scan.nii.gz")
    model = unetzoo.create_model("unet3d", in_channels=1, classes=2, encoder_channels=(4, 8),
                                 bottleneck_channels=8, decoder_channels=(8, 4))  # fmt: skip
    report = predict_files(Source(model), [str(tmp_path / "scan.nii.gz")], tmp_path / "out",
                           window=(8, 8, 4), probabilities=True, device="cpu")  # fmt: skip
    assert report.failures == []
    result = nib.load(tmp_path / "out" / "scan.nii.gz")
    assert np.array_equal(result.affine, nib.load(tmp_path / "scan.nii.gz").affine)
    assert result.shape == data.shape and result.get_data_dtype() == np.uint8
    np.testing.assert_allclose(result.header.get_zooms(), (0.7, 0.8, 2.0), rtol=1e-6)
    assert result.header.get_xyzt_units() == ("mm", "sec")
    assert set(np.unique(np.asarray(result.dataobj))) <= {0, 1}
    probs = nib.load(tmp_path / "out" / "scan_probs.nii.gz")
    assert probs.shape == (*data.shape, 2) and np.array_equal(probs.affine, result.affine)
    p = np.asarray(probs.dataobj)
    np.testing.assert_allclose(p.sum(-1), 1, atol=1e-4)
    np.testing.assert_array_equal(p.argmax(-1), np.asarray(result.dataobj))


def test_volume_for_2d_model_reported(binary: Source, tmp_path: Path) -> None:
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), dtype=np.float32), np.eye(4)), tmp_path / "v.nii.gz")
    report = predict_files(binary, [str(tmp_path / "v.nii.gz")], tmp_path / "out", device="cpu")
    assert report.written == [] and "2D" in report.failures[0][1]


def test_corrupt_volume_reported(tmp_path: Path) -> None:
    (tmp_path / "bad.nii.gz").write_bytes(b"not a volume")
    model = unetzoo.create_model("unet3d", in_channels=1, classes=2, encoder_channels=(4, 8),
                                 bottleneck_channels=8, decoder_channels=(8, 4))  # fmt: skip
    report = predict_files(Source(model), [str(tmp_path / "bad.nii.gz")], tmp_path / "out", device="cpu")
    assert report.written == [] and "bad.nii.gz" in report.failures[0][1]


def test_predict_command_reports_unreadable_files_and_exits_1(binary: Source, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from unetzoo.cli import app

    _images(tmp_path / "in", [(20, 24), (24, 20)])
    (tmp_path / "in" / "broken.png").write_bytes(b"not an image")
    model = str(tmp_path / "m")
    result = CliRunner().invoke(app, ["predict", model, str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                                      "--overlay", "--tta", "flips"], env={"COLUMNS": "200"})  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "2 of 3 inputs segmented" in result.output and "broken.png" in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "img0.png", "img0_overlay.png", "img1.png", "img1_overlay.png"]  # fmt: skip
    refused = CliRunner().invoke(app, ["predict", model, str(tmp_path / "in"), "--out", str(tmp_path / "in")])
    assert refused.exit_code == 2 and "Traceback" not in refused.output


def test_normalise_image_repeats_the_training_pipeline_clahe_included(shared: Path) -> None:
    from unetzoo.data.augment import build_transform
    from unetzoo.data.io import read_image
    from unetzoo.prediction import normalise_image

    path = shared / "datasets" / "DRIVE" / "test" / "images" / "01_test.tif"
    image = read_image(path)
    for clahe in (False, True):
        prep = {"scale": 1 / 255, "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3], "clahe": clahe}
        ours = normalise_image(image, prep, 3, path)
        training = build_transform("none", preprocessing=prep)(image=image)["image"]
        np.testing.assert_allclose(ours.numpy(), np.moveaxis(training, -1, 0), atol=1e-5)
    assert not torch.allclose(normalise_image(image, {**prep, "clahe": False}, 3, path), ours)
