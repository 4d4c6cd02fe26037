"""Metrics against torchmetrics and hand loops: ignore index, region of interest, empty classes,
split batches, low-precision logits and the binary threshold."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor
from torchmetrics import classification as tmc

from unetzoo.metrics import MetricTracker, confusion_counts, scores

SPATIAL = [(8, 8), (4, 5, 6)]  # 2D and 3D
MODES = ["binary", "multiclass", "multilabel"]
CLASSES = 4
SCORE_KEYS = ("dice", "iou", "precision", "recall", "specificity", "accuracy")
IGNORE = 255


def make_batch(mode: str, spatial: tuple[int, ...], n: int = 3, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Random logits ``(n, C, *spatial)`` and a matching random target."""
    g = torch.Generator().manual_seed(seed)
    c = 1 if mode == "binary" else CLASSES
    logits = torch.randn(n, c, *spatial, generator=g)
    shape = (n, c, *spatial) if mode == "multilabel" else (n, *spatial)
    target = torch.randint(0, c if mode == "multiclass" else 2, shape, generator=g)
    return logits, target


def with_ignored(target: Tensor, seed: int = 1) -> Tensor:
    """``target`` with about a fifth of its values set to ``IGNORE``."""
    g = torch.Generator().manual_seed(seed)
    return torch.where(torch.rand(target.shape, generator=g) < 0.2, IGNORE, target)


def reference(mode: str, logits: Tensor, target: Tensor) -> dict[str, Tensor]:
    """Per-class scores ``(C,)`` from torchmetrics, all pixels pooled."""
    if mode == "binary":
        preds, kw = logits.squeeze(1).sigmoid(), {}
        make = {
            "dice": tmc.BinaryF1Score,
            "iou": tmc.BinaryJaccardIndex,
            "precision": tmc.BinaryPrecision,
            "recall": tmc.BinaryRecall,
            "specificity": tmc.BinarySpecificity,
            "accuracy": tmc.BinaryAccuracy,
        }
    elif mode == "multiclass":
        preds, kw = logits, {"num_classes": logits.shape[1], "average": None}
        make = {
            "dice": tmc.MulticlassF1Score,
            "iou": tmc.MulticlassJaccardIndex,
            "precision": tmc.MulticlassPrecision,
            "recall": tmc.MulticlassRecall,
            "specificity": tmc.MulticlassSpecificity,
        }
    else:
        preds, kw = logits.sigmoid(), {"num_labels": logits.shape[1], "average": None}
        make = {
            "dice": tmc.MultilabelF1Score,
            "iou": tmc.MultilabelJaccardIndex,
            "precision": tmc.MultilabelPrecision,
            "recall": tmc.MultilabelRecall,
            "specificity": tmc.MultilabelSpecificity,
            "accuracy": tmc.MultilabelAccuracy,
        }
    out = {key: metric(**kw)(preds, target).double().reshape(-1) for key, metric in make.items()}
    if mode == "multiclass":  # one-vs-rest accuracy of each class from its stat scores
        stats = tmc.MulticlassStatScores(**kw)(preds, target).double()
        out["accuracy"] = (stats[:, 0] + stats[:, 2]) / stats[:, 4].sum()
    return out


def averaged(mode: str, per_class: Tensor) -> float:
    """The class average ``scores`` reports: background excluded in multiclass mode."""
    return float(per_class[1:].mean() if mode == "multiclass" else per_class.mean())


def assert_matches(mode: str, got: dict[str, float], want: dict[str, Tensor]) -> None:
    for key, per_class in want.items():
        assert got[key] == pytest.approx(averaged(mode, per_class), abs=1e-6), key
        if key in ("dice", "iou", "precision", "recall"):
            names = ["foreground"] if mode == "binary" else [str(i) for i in range(len(per_class))]
            for name, value in zip(names, per_class.tolist(), strict=True):
                assert got[f"{key}_{name}"] == pytest.approx(value, abs=1e-6), f"{key}_{name}"


@pytest.mark.parametrize("spatial", SPATIAL)
@pytest.mark.parametrize("mode", MODES)
def test_counts_match_torchmetrics_stat_scores(mode: str, spatial: tuple[int, ...]) -> None:
    logits, target = make_batch(mode, spatial)
    ignore = None if mode == "multilabel" else IGNORE  # torchmetrics ignores multilabel pixels per channel
    if ignore is not None:
        target = with_ignored(target)
    counts = confusion_counts(logits, target, mode=mode, ignore_index=ignore)
    if mode == "binary":
        stats = tmc.BinaryStatScores(multidim_average="samplewise", ignore_index=ignore)(
            logits.squeeze(1).sigmoid(), target
        )
        stats = stats.unsqueeze(1)
    elif mode == "multiclass":
        metric = tmc.MulticlassStatScores(
            CLASSES, average=None, multidim_average="samplewise", ignore_index=ignore
        )
        stats = metric(logits, target)
    else:
        stats = tmc.MultilabelStatScores(CLASSES, average=None, multidim_average="samplewise")(
            logits.sigmoid(), target
        )
    assert counts.dtype == torch.int64 and counts.shape == (3, logits.shape[1], 4)
    assert torch.equal(counts, stats[..., [0, 1, 3, 2]])  # torchmetrics orders tp, fp, tn, fn, support


@pytest.mark.parametrize("spatial", SPATIAL)
@pytest.mark.parametrize("mode", MODES)
def test_global_scores_match_torchmetrics(mode: str, spatial: tuple[int, ...]) -> None:
    logits, target = make_batch(mode, spatial)
    got = scores(confusion_counts(logits, target, mode=mode), mode=mode)
    assert_matches(mode, got, reference(mode, logits, target))


@pytest.mark.parametrize("spatial", SPATIAL)
@pytest.mark.parametrize("mode", MODES)
def test_per_image_is_the_mean_of_per_sample_scores(mode: str, spatial: tuple[int, ...]) -> None:
    logits, target = make_batch(mode, spatial, n=4)
    got = scores(confusion_counts(logits, target, mode=mode), reduction="per_image", mode=mode)
    samples = [reference(mode, logits[i : i + 1], target[i : i + 1]) for i in range(len(logits))]
    want = {key: torch.stack([s[key] for s in samples]).mean(0) for key in samples[0]}
    assert_matches(mode, got, want)
    assert got != scores(confusion_counts(logits, target, mode=mode), mode=mode)


@pytest.mark.parametrize("spatial", SPATIAL)
@pytest.mark.parametrize("mode", MODES)
def test_ignored_and_out_of_roi_pixels_count_nowhere(mode: str, spatial: tuple[int, ...]) -> None:
    logits, target = make_batch(mode, spatial)
    target = with_ignored(target)
    roi = torch.rand(target.shape[0], *spatial, generator=torch.Generator().manual_seed(2)) < 0.7
    counts = confusion_counts(logits, target, mode=mode, ignore_index=IGNORE, roi=roi)
    assert torch.equal(
        counts, confusion_counts(logits, target, mode=mode, ignore_index=IGNORE, roi=roi[:, None])
    )

    channels_first = target if mode == "multilabel" else target.unsqueeze(1)
    kept = (channels_first != IGNORE).all(1) & roi  # multilabel: ignored in any channel
    pixels = [(logits[i][:, kept[i]], channels_first[i][:, kept[i]]) for i in range(len(kept))]
    for i, (x, t) in enumerate(pixels):  # the kept pixels of one sample as a 1D image
        t = t if mode == "multilabel" else t[0]
        assert torch.equal(counts[i], confusion_counts(x[None], t[None], mode=mode)[0]), i

    x = torch.cat([x for x, _ in pixels], 1)[None]
    t = torch.cat([t for _, t in pixels], 1)
    t = t[None] if mode == "multilabel" else t
    assert_matches(mode, scores(counts, mode=mode), reference(mode, x, t))


def test_empty_ground_truth_and_prediction() -> None:
    target = torch.zeros(2, 4, 4, dtype=torch.long)
    logits = torch.full((2, 1, 4, 4), -3.0)
    nothing = scores(confusion_counts(logits, target, mode="binary"))
    assert all(nothing[key] == 1.0 for key in SCORE_KEYS)

    logits[1, 0, 0, 0] = 3.0  # one false positive in the second image
    counts = confusion_counts(logits, target, mode="binary")
    assert counts[:, 0].tolist() == [[0, 0, 0, 16], [0, 1, 0, 15]]
    pooled = scores(counts)
    assert pooled["dice"] == pooled["iou"] == pooled["precision"] == 0.0
    assert pooled["recall"] == 0.0  # nothing to find, but something found
    assert pooled["specificity"] == pytest.approx(31 / 32)
    per_image = scores(counts, reduction="per_image")
    assert per_image["dice"] == per_image["iou"] == per_image["recall"] == 0.5

    # something to find, nothing found
    missed = scores(
        confusion_counts(torch.full((1, 1, 4), -3.0), torch.tensor([[0, 1, 1, 0]]), mode="binary")
    )
    assert missed["precision"] == missed["recall"] == missed["dice"] == 0.0
    assert missed["specificity"] == 1.0


def test_class_absent_from_target_and_prediction_scores_one() -> None:
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 1, 0] = 1.0  # predicts class 1 in the top row, class 0 below
    target = torch.tensor([[[1, 1], [0, 1]]])
    result = scores(confusion_counts(logits, target, mode="multiclass"))
    assert result["dice_2"] == result["iou_2"] == result["precision_2"] == result["recall_2"] == 1.0
    assert result["dice_1"] == pytest.approx(0.8) and result["dice_0"] == pytest.approx(2 / 3)
    assert result["dice"] == pytest.approx((0.8 + 1.0) / 2)


@pytest.mark.parametrize("mode", MODES)
def test_split_batches_give_exactly_the_same_scores(mode: str) -> None:
    logits, target = make_batch(mode, (6, 7), n=5)
    whole = confusion_counts(logits, target, mode=mode)
    tracker = MetricTracker(mode)
    halves = [tracker.update(logits[:2], target[:2]), tracker.update(logits[2:], target[2:])]
    assert torch.equal(torch.cat(halves), whole) and torch.equal(tracker.counts, whole)
    for reduction in ("global", "per_image"):
        assert scores(torch.cat(halves), reduction=reduction, mode=mode) == scores(
            whole, reduction=reduction, mode=mode
        )
        assert tracker.compute(reduction) == scores(whole, reduction=reduction, mode=mode)
    tracker.reset()
    assert tracker.counts.shape[0] == 0
    with pytest.raises(ValueError, match="non-empty"):
        tracker.compute()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("mode", MODES)
def test_low_precision_logits_give_the_same_counts(mode: str, dtype: torch.dtype) -> None:
    logits, target = make_batch(mode, (4, 5, 6))
    logits = torch.randint(-24, 25, logits.shape, generator=torch.Generator().manual_seed(3)) / 8
    assert torch.equal(logits.to(dtype).float(), logits)  # every value is exact in both dtypes
    # the float32 cutoff of the last threshold, 0.12499, rounds to 0.125 in both low-precision dtypes
    for threshold in (0.5, 0.3, float(torch.sigmoid(torch.tensor(0.12499, dtype=torch.float64)))):
        want = confusion_counts(logits, target, mode=mode, threshold=threshold)
        assert torch.equal(confusion_counts(logits.to(dtype), target, mode=mode, threshold=threshold), want)


@pytest.mark.parametrize("mode", ["binary", "multilabel"])
@pytest.mark.parametrize("threshold", [0.5, 0.25, 0.9])
def test_a_logit_exactly_at_the_threshold_is_negative(mode: str, threshold: float) -> None:
    cutoff = torch.logit(torch.tensor(threshold, dtype=torch.float64)).float()
    above = torch.nextafter(cutoff, torch.tensor(math.inf))
    below = torch.nextafter(cutoff, torch.tensor(-math.inf))
    logits = torch.stack([cutoff, above, below]).view(1, 1, 3)
    target = torch.ones(1, 1, 3) if mode == "multilabel" else torch.ones(1, 3)
    assert confusion_counts(logits, target, mode=mode, threshold=threshold).tolist() == [[[1, 0, 2, 0]]]


def test_threshold_bounds() -> None:
    logits, target = torch.tensor([[[-50.0, 0.0, 50.0]]]), torch.tensor([[0, 1, 1]])
    assert confusion_counts(logits, target, mode="binary", threshold=0.0).tolist() == [[[2, 1, 0, 0]]]
    assert confusion_counts(logits, target, mode="binary", threshold=1.0).tolist() == [[[0, 0, 2, 1]]]
    with pytest.raises(ValueError, match="threshold"):
        confusion_counts(logits, target, mode="binary", threshold=1.5)


def test_keys_class_names_and_background() -> None:
    binary = confusion_counts(*make_batch("binary", (5, 5)), mode="binary")
    assert set(scores(binary)) == {
        *SCORE_KEYS,
        "dice_foreground",
        "iou_foreground",
        "precision_foreground",
        "recall_foreground",
    }
    vessel = scores(binary, class_names=["background", "vessel"])
    assert vessel["dice_vessel"] == vessel["dice"] == scores(binary)["dice_foreground"]

    counts = confusion_counts(*make_batch("multiclass", (5, 5)), mode="multiclass")
    names = ["bg", "liver", "kidney", "spleen"]
    named = scores(counts, class_names=names)
    assert {f"recall_{name}" for name in names} <= set(named) and "dice_0" not in named
    per_class = [named[f"dice_{name}"] for name in names]
    assert named["dice"] == pytest.approx(sum(per_class[1:]) / 3)
    assert scores(counts, include_background=True)["dice"] == pytest.approx(sum(per_class) / 4)
    assert scores(counts, mode="multilabel")["dice"] == pytest.approx(sum(per_class) / 4)
    assert scores(counts[0])["dice"] == scores(counts[:1])["dice"]  # (C, 4) is one sample
    with pytest.raises(ValueError, match="class names"):
        scores(counts, class_names=["a", "b"])
    with pytest.raises(ValueError, match="one class"):
        scores(counts, mode="binary")


def test_invalid_targets_raise() -> None:
    with pytest.raises(ValueError, match="class ids"):
        confusion_counts(torch.zeros(1, 3, 2, 2), torch.full((1, 2, 2), 3), mode="multiclass")
    with pytest.raises(ValueError, match="0 or 1"):
        confusion_counts(torch.zeros(1, 1, 2, 2), torch.full((1, 2, 2), 2), mode="binary")
    with pytest.raises(ValueError, match="expects target"):
        confusion_counts(torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2), mode="multilabel")
    assert (
        confusion_counts(
            torch.zeros(1, 3, 2), torch.tensor([[IGNORE, 2]]), mode="multiclass", ignore_index=IGNORE
        )[0, :, :3].sum()
        == 2
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="compares GPU with CPU counts: needs a CUDA device (runs on GPU machines only)")
@pytest.mark.parametrize("mode", MODES)
def test_cuda_counts_equal_cpu_counts(mode: str) -> None:
    logits, target = make_batch(mode, (4, 5, 6))
    target = with_ignored(target)
    on_gpu = confusion_counts(logits.cuda().bfloat16(), target.cuda(), mode=mode, ignore_index=IGNORE)
    assert on_gpu.device.type == "cuda"
    assert torch.equal(
        on_gpu.cpu(), confusion_counts(logits.bfloat16(), target, mode=mode, ignore_index=IGNORE)
    )
