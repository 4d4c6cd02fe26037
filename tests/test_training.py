"""unetzoo finetune in one process: the run folder, options, frozen encoders, 3D and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

import unetzoo
from tests.training_utils import FAST, REPO, TINY_UNET, TINY_UNET_ARGS, invoke, make_volumes, read_metrics
from unetzoo.data import open_dataset
from unetzoo.data.augment import build_transform
from unetzoo.data.torch_dataset import TorchDataset
from unetzoo.metrics import confusion_counts, scores

REQUIRED_COLUMNS = ["epoch", "step", "lr", "train_loss", "val_loss", "val_dice", "val_iou", "seconds",
                    "samples_per_s"]  # fmt: skip


def assert_one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    text = " ".join(result.output.split())
    for needle in needles:
        assert needle in text, text


def test_a_run_writes_every_artefact_and_best_reproduces_its_dice(kvasir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = invoke("unet", kvasir, "--out", run, *TINY_UNET, *FAST, "--epochs", "2", "--val", "0.25",
                    "--checkpoint-every", "2", "--lr", "0.01")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"best: {run / 'best'}" in result.output and "unetzoo.from_pretrained(" in result.output

    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"] == "unet" and config["classes"] == 1 and config["in_channels"] == 3
    assert config["mode"] == "binary" and config["mixed_precision"] == "no"
    assert set(config["versions"]) == {"unetzoo", "torch", "timm", "accelerate"}
    split = json.loads((run / "split.json").read_text())["split"]
    assert len(split["train"]) == 9 and len(split["val"]) == 3

    rows = read_metrics(run)
    assert [r["epoch"] for r in rows] == ["1", "2"] and rows[-1]["step"] == "8"
    assert all(c in rows[0] for c in REQUIRED_COLUMNS)
    assert float(rows[1]["lr"]) < float(rows[0]["lr"])  # cosine decay
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert checkpoints == ["step_000000006", "step_000000008"]  # kept: the last two
    assert all((run / "checkpoints" / c / "trainer_state.json").is_file() for c in checkpoints)
    assert (run / "curves.png").stat().st_size > 1000
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png"]
    card = (run / "best" / "README.md").read_text()
    assert "## Fine-tuning" in card and "9 training / 3 validation samples" in card and "val_dice" in card

    best = unetzoo.from_pretrained(run / "best")
    again = unetzoo.create_model("unet", pretrained=str(run / "best"))
    hub = torch.hub.load(str(REPO), "unet", pretrained=str(run / "best"), source="local")
    for other in (again, hub):
        for key, value in best.state_dict().items():
            assert torch.equal(value, other.state_dict()[key])

    # best/ evaluated from scratch on the saved split gives the Dice the run logged for it.
    dataset = open_dataset(kvasir)
    prep = best.pretrained_info["preprocessing"]
    val = TorchDataset(dataset, build_transform("none", size=(32, 32), size_mode="resize", preprocessing=prep),
                       ids=split["val"])  # fmt: skip
    batch = torch.utils.data.default_collate([val[i] for i in range(len(val))])
    with torch.no_grad():
        logits = best(batch["image"])
    dice = scores(confusion_counts(logits, batch["mask"], mode="binary"))["dice"]
    logged = max(float(r["val_dice"]) for r in rows)
    assert dice == pytest.approx(logged, abs=1e-9)
    assert best.pretrained_info["metrics"]["val_dice"] == pytest.approx(logged, abs=1e-12)


def test_config_file_repeats_a_run_and_flags_win(kvasir: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    assert invoke("unet", kvasir, "--out", first, *TINY_UNET, *FAST, "--max-steps", "3",
                  "--deterministic").exit_code == 0  # fmt: skip
    result = invoke("--config", first / "config.yaml", "--out", second, "--quiet")
    assert result.exit_code == 0, result.output
    a, b = (load_file(p / "last" / "model.safetensors") for p in (first, second))
    assert all(torch.equal(a[k], b[k]) for k in a)
    one, two = (yaml.safe_load((p / "config.yaml").read_text()) for p in (first, second))
    assert {k for k in one if one[k] != two[k]} == {"out"}
    # A flag given beside --config wins over the file.
    third = tmp_path / "c"
    assert invoke("--config", first / "config.yaml", "--out", third, "--lr", "0.5", "--max-steps", "1").exit_code == 0
    assert yaml.safe_load((third / "config.yaml").read_text())["lr"] == 0.5


def test_existing_run_is_refused_and_kept(kvasir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert invoke("unet", kvasir, "--out", run, *TINY_UNET, *FAST, "--max-steps", "1").exit_code == 0
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    result = invoke("unet", kvasir, "--out", run, *TINY_UNET, *FAST, "--max-steps", "1")
    assert_one_line_error(result, f"--out {run}: the folder exists", "--resume", "--overwrite")
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    result = invoke("--resume", run, "--lr", "0.5")
    assert_one_line_error(result, "--lr 0.5 contradicts", "lr: 0.001")
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    assert invoke("unet", kvasir, "--out", run, *TINY_UNET, *FAST, "--max-steps", "1", "--overwrite",
                  "--seed", "3").exit_code == 0  # fmt: skip
    assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == 3


def test_frozen_encoder_stays_bit_identical_statistics_included(kvasir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = invoke("unet", kvasir, "--out", run, *TINY_UNET, *FAST, "--epochs", "2", "--val", "0.25",
                    "--freeze-encoder-epochs", "1", "--lr", "0.01", "--weight-decay", "0.1")  # fmt: skip
    assert result.exit_code == 0, result.output
    torch.manual_seed(0)  # the run's seed: the same initial weights
    initial = unetzoo.create_model("unet", classes=1, in_channels=3, **TINY_UNET_ARGS).state_dict()
    after_one, after_two = (load_file(run / "checkpoints" / f"step_{s:09d}" / "model.safetensors") for s in (4, 8))
    encoder = [k for k in initial if k.startswith("encoder.")]
    assert any("running_mean" in k for k in encoder) and any("num_batches_tracked" in k for k in encoder)
    assert all(torch.equal(after_one[k], initial[k]) for k in encoder)
    assert not all(torch.equal(after_two[k], initial[k]) for k in encoder)  # unfrozen in epoch 2
    decoder = [k for k in initial if k.startswith("decoder.") and k.endswith("weight")]
    assert not all(torch.equal(after_one[k], initial[k]) for k in decoder)


def test_loader_workers_change_nothing_but_speed(kvasir: Path, tmp_path: Path) -> None:
    """Workers live through the run and change none of the weights. (That a persistent worker
    augments each epoch as that epoch is checked in test_loader.)"""
    weights = []
    for workers in (0, 2):
        run = tmp_path / f"workers{workers}"
        result = invoke("unet", kvasir, "--out", run, *TINY_UNET, *FAST, "--epochs", "3", "--val", "0.25",
                        "--workers", str(workers), "--deterministic")  # fmt: skip
        assert result.exit_code == 0, result.output
        weights.append(load_file(run / "last" / "model.safetensors"))
        assert [r["step"] for r in read_metrics(run)] == ["4", "8", "12"]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_a_trainer_validates_again_after_its_run_closed_the_workers(kvasir: Path, tmp_path: Path) -> None:
    from unetzoo.training import FinetuneConfig, Trainer

    config = FinetuneConfig(model="unet", data=str(kvasir), out=str(tmp_path / "run"), epochs=1, val=0.25,
                            size="32x32", batch_size=2, workers=1, mixed_precision="no", samples=0,
                            model_args=dict(TINY_UNET_ARGS))  # fmt: skip
    trainer = Trainer(config, overwrite=True, quiet=True)
    best = trainer.fit().best_metrics
    assert trainer.validate(trainer.model)["val_dice"] == pytest.approx(best["val_dice"])


def test_a_checkpoint_of_an_unfused_optimizer_resumes_fused(kvasir: Path, tmp_path: Path) -> None:
    """Runs checkpointed before the optimizer step was fused go on with the fused step."""
    from unetzoo.training import Trainer
    from unetzoo.training.setup import config_for_resume

    run = tmp_path / "run"
    result = invoke("unet", kvasir, "--out", run, *TINY_UNET, *FAST, "--epochs", "1", "--val", "0.25")
    assert result.exit_code == 0, result.output
    (saved,) = (run / "checkpoints").glob("*/optimizer.bin")
    state = torch.load(saved, weights_only=True)
    assert all(group["fused"] for group in state["param_groups"])
    for group in state["param_groups"]:
        group["fused"] = None  # as torch.optim.AdamW(...) without fused=True saved it
    torch.save(state, saved)
    trainer = Trainer(config_for_resume(run, {"epochs": 2}), resume=True, quiet=True)
    assert all(group["fused"] for group in trainer.optimizer.param_groups)
    trainer.fit()
    assert [r["epoch"] for r in read_metrics(run)] == ["1", "2"]


def test_encoder_lr_mult_zero_never_changes_the_encoder(kvasir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert invoke("unet", kvasir, "--out", run, *TINY_UNET, *FAST, "--max-steps", "4",
                  "--encoder-lr-mult", "0").exit_code == 0  # fmt: skip
    torch.manual_seed(0)
    initial = unetzoo.create_model("unet", classes=1, in_channels=3, **TINY_UNET_ARGS).state_dict()
    last = load_file(run / "last" / "model.safetensors")
    assert all(torch.equal(last[k], initial[k]) for k in initial if k.startswith("encoder."))


def test_optimisation_options_together(kvasir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = invoke("unet", kvasir, "--out", run, *TINY_UNET, *FAST, "--optimizer", "sgd", "--scheduler",
                    "onecycle", "--warmup", "1", "--ema", "0.9", "--clip", "1.0", "--accumulate", "2",
                    "--max-steps", "3", "--loss", "dice_focal", "--loss-arg", "alpha=0.7")  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = read_metrics(run)
    assert rows[-1]["step"] == "3" and "ema_val_dice" in rows[-1]
    best = unetzoo.from_pretrained(run / "best")
    assert best.pretrained_info["metrics"]["val_dice"] >= 0
    result = invoke("unet", kvasir, "--out", tmp_path / "plateau", *TINY_UNET, *FAST, "--optimizer", "adam",
                    "--scheduler", "plateau", "--epochs", "3", "--early-stop", "1", "--monitor", "val_loss",
                    "--monitor-mode", "min", "--lr", "0.5", "--gradient-checkpointing")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(read_metrics(tmp_path / "plateau")) in (2, 3)


def test_deep_supervision_and_unetpp_aspp_train(kvasir: Path, tmp_path: Path) -> None:
    result = invoke("unetpp", kvasir, "--out", tmp_path / "pp", *FAST, "--max-steps", "2",
                    "--model-arg", "encoder_channels=[4,8,8,16]", "--model-arg", "bottleneck_channels=16",
                    "--model-arg", "deep_supervision=true", "--model-arg", 'bottleneck="aspp"',
                    "--model-arg", "aspp_rates=[1,2,3]")  # fmt: skip
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "pp" / "best" / "config.json").read_text())
    assert saved["args"]["bottleneck"] == "aspp" and saved["args"]["deep_supervision"] is True


def test_multiclass_3d_with_classification_head(tmp_path: Path) -> None:
    data = make_volumes(tmp_path / "vol")
    labels = tmp_path / "labels.csv"
    labels.write_text("id,label\n" + "".join(f"case{i},{i % 2}\n" for i in range(6)))
    run = tmp_path / "run"
    result = invoke("unet3d", data, "--out", run, "--crop", "16x16x16", "--batch-size", "2", "--workers", "0",
                    "--mixed-precision", "no", "--quiet", "--max-steps", "2", "--val", "0.34",
                    "--data-arg", "class_names=[\"background\",\"box\",\"corner\"]",
                    "--data-arg", f"labels={labels}", "--model-arg", "encoder_channels=[4,8]",
                    "--model-arg", "bottleneck_channels=8", "--model-arg", "decoder_channels=[8,4]",
                    "--model-arg", "aux_classes=2", "--aux-loss-weight", "0.5")  # fmt: skip
    assert result.exit_code == 0, result.output
    row = read_metrics(run)[-1]
    assert {"val_dice_box", "val_dice_corner", "val_dice_background", "val_cls_acc"} <= set(row)
    model = unetzoo.from_pretrained(run / "best")
    assert model.config["spatial_dims"] == 3 and model.config["classes"] == 3
    assert (run / "samples" / "epoch_001.png").is_file()


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["unett"], ["unknown model 'unett'", "unet"]),
        (["unet", "--loss", "dicee"], ["unknown loss 'dicee'", "dice"]),
        (["unet", "--format", "pairedd"], ["unknown dataset 'pairedd'", "paired"]),
        (["unet", "--optimizer", "adamx"], ["--optimizer 'adamx'", "adamw"]),
        (["unet", "--scheduler", "cosin"], ["--scheduler 'cosin'", "closest: cosine"]),
        (["unet", "--val", "0"], ["no validation samples"]),
        (["unet", "--batch-size", "64"], ["--batch-size 64 is larger than the training set (10 samples)"]),
        (["unet", "--model-arg", "nonsense=1"], ["takes no argument(s) 'nonsense'"]),
        (["unet", "--model-arg", "broken"], ["--model-arg 'broken': write key=value"]),
        (["unet", "--repeats", "0"], ["--repeats 0"]),
    ],
)
def test_bad_options_are_one_line_errors(kvasir: Path, tmp_path: Path, args: list[str], needles: list[str]) -> None:
    model, *rest = args
    result = invoke(model, kvasir, "--out", tmp_path / "run", *TINY_UNET, *FAST, "--max-steps", "1", *rest)
    assert_one_line_error(result, *needles)


def test_a_tracker_that_is_not_installed_is_a_one_line_error(
    kvasir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Accelerate sees no installed tracker, whatever this environment has installed."""
    import accelerate.tracking

    monkeypatch.setattr(accelerate.tracking, "_available_trackers", [])
    result = invoke("unet", kvasir, "--out", tmp_path / "run", *TINY_UNET, *FAST, "--max-steps", "1",
                    "--log-with", "tensorboard")  # fmt: skip
    assert_one_line_error(result, "--log-with tensorboard: that tracker is not installed")


def test_bad_data_is_a_one_line_error(kvasir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    (empty / "images").mkdir(parents=True)
    (empty / "masks").mkdir()
    assert_one_line_error(invoke("unet", empty, "--out", tmp_path / "r1", *FAST), "empty folder: no images")
    # Index masks with values 0..3 and a model of two classes.
    data = tmp_path / "index"
    for sub in ("images", "masks"):
        (data / sub).mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.full((32, 32, 3), 60 * i, np.uint8)).save(data / "images" / f"{i}.png")
        Image.fromarray(np.full((32, 32), i, np.uint8)).save(data / "masks" / f"{i}.png")
    result = invoke("unet", data, "--out", tmp_path / "r2", *TINY_UNET, *FAST, "--data-arg", 'mask_mode="index"',
                    "--classes", "2", "--mode", "multiclass", "--val", "0.25")  # fmt: skip
    assert_one_line_error(result, "mask value 3 is beyond the model's classes", "2 classes")
    volumes = make_volumes(tmp_path / "vol", n=3)
    result = invoke("unet3d", volumes, "--out", tmp_path / "r3", "--crop", "64x64x64", "--quiet")
    assert_one_line_error(result, "--crop 64x64x64 is larger than volume")


def test_resume_and_out_folder_errors(kvasir: Path, tmp_path: Path) -> None:
    assert_one_line_error(invoke("--resume", tmp_path / "nothing"), "not a run folder (no config.yaml)")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("model: unet\n")
    assert_one_line_error(invoke("--resume", run), "no complete checkpoint to resume from", "--overwrite")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = invoke("unet", kvasir, "--out", blocker / "run", *TINY_UNET, *FAST)
    assert_one_line_error(result, "cannot write")
    assert_one_line_error(invoke("unet", kvasir, *FAST), "missing --out RUN")


def test_continue_from_saved_weights_and_imagenet_encoder(kvasir: Path, tmp_path: Path) -> None:
    first = tmp_path / "first"
    result = invoke("unet_resnet34", kvasir, "--out", first, *FAST, "--max-steps", "2",
                    "--model-arg", 'encoder="efficientnet_lite0"', "--model-arg", "decoder_channels=[16,8,8,8,4]",
                    "--encoder-weights", "imagenet", "--gradient-checkpointing")  # fmt: skip
    assert result.exit_code == 0, result.output
    saved = json.loads((first / "best" / "config.json").read_text())
    assert saved["args"]["encoder_weights"] is None and saved["args"]["encoder"] == "efficientnet_lite0"
    assert saved["preprocessing"]["mean"] == [0.485, 0.456, 0.406]  # ImageNet statistics for the encoder
    # The saved folder as MODEL, and a registered name with --pretrained DIR, both continue from it.
    for args in ([first / "best"], ["unet_resnet34", "--pretrained", first / "best"]):
        out = tmp_path / f"next{len(args)}"
        result = invoke(*args, kvasir, "--out", out, *FAST, "--max-steps", "0")
        assert result.exit_code == 0, result.output
        assert read_metrics(out)[0]["val_dice"] == read_metrics(first)[-1]["val_dice"]  # validation of the same weights


def test_field_of_view_restricts_validation_metrics(shared: Path, tmp_path: Path) -> None:
    import shutil

    drive = tmp_path / "drive"
    source = shared / "datasets" / "DRIVE" / "training"
    for sub in ("images", "1st_manual", "mask"):
        (drive / sub).mkdir(parents=True)
        for path in sorted((source / sub).iterdir())[:4]:
            shutil.copyfile(path, drive / sub / path.name)
    run = tmp_path / "run"
    result = invoke("unet", drive, "--out", run, *TINY_UNET, "--crop", "48x48", "--batch-size", "2", "--workers",
                    "0", "--mixed-precision", "no", "--quiet", "--max-steps", "2", "--val", "0.5",
                    "--samples", "1", "--lr", "0.01")  # fmt: skip
    assert result.exit_code == 0, result.output
    best = unetzoo.from_pretrained(run / "best")
    split = json.loads((run / "split.json").read_text())["split"]
    val = TorchDataset(open_dataset(drive), build_transform("none", preprocessing=best.pretrained_info[
        "preprocessing"]), ids=split["val"])  # fmt: skip
    counts, unrestricted = [], []
    with torch.no_grad():
        for item in (val[i] for i in range(len(val))):
            logits = best(item["image"][None])
            counts.append(confusion_counts(logits, item["mask"][None], mode="binary", roi=item["roi"][None]))
            unrestricted.append(confusion_counts(logits, item["mask"][None], mode="binary"))
    logged = float(read_metrics(run)[-1]["val_precision"])
    assert scores(torch.cat(counts))["precision"] == pytest.approx(logged, abs=1e-9)
    assert scores(torch.cat(unrestricted))["precision"] != pytest.approx(logged, abs=1e-6)


def test_repeats_draw_each_sample_again_with_its_own_crop(kvasir: Path) -> None:
    from unetzoo.training.config import FinetuneConfig
    from unetzoo.training.data import build_datasets

    dataset = open_dataset(kvasir)
    split = {"train": dataset.ids[:4], "val": dataset.ids[4:6]}
    prep = {"mean": [0.5] * 3, "std": [0.25] * 3}
    once = build_datasets(dataset, split, FinetuneConfig(crop="32x32", batch_size=2), prep, None).train
    plan = build_datasets(dataset, split, FinetuneConfig(crop="32x32", batch_size=2, repeats=3), prep, None)
    assert len(once) == 4 and len(plan.train) == 12 and len(plan.val) == 2
    items = [plan.train[i] for i in range(12)]
    assert [item["id"] for item in items] == list(split["train"]) * 3
    for i in range(4):  # the same image, three different crops
        crops = [items[i + 4 * r]["image"] for r in range(3)]
        assert not torch.equal(crops[0], crops[1]) and not torch.equal(crops[1], crops[2])
    assert torch.equal(items[0]["image"], once[0]["image"])  # the first repeat is the plain epoch
