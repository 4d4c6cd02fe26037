"""ROC-AUC and average precision against scikit-learn (heavy ties, ignore index, region of
interest, gathered halves); HD95 and ASSD against MONAI (2D, 3D, anisotropic spacing, a real
ISBI 2012 mask); empty-mask conventions."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from monai import metrics as monai_metrics
from scipy import ndimage
from sklearn import metrics as sklearn_metrics
from torch import Tensor

from unetzoo.metrics import (
    assd,
    average_precision,
    average_precision_from_pairs,
    distance_means,
    distance_scores,
    hd95,
    pooled_scores,
    roc_auc,
    roc_auc_from_pairs,
    surface_distances,
)

pytestmark = pytest.mark.filterwarnings("ignore:.*always_return_as_numpy:FutureWarning")

MODES = ["binary", "multiclass", "multilabel"]
CLASSES = 4
IGNORE = 255


def tied_batch(mode: str, spatial: tuple[int, ...], n: int = 3, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Probabilities rounded to 0.1 (so most values are tied) and a target that agrees with
    them more often than chance, with a fifth of the target set to ``IGNORE``."""
    g = torch.Generator().manual_seed(seed)
    c = 1 if mode == "binary" else CLASSES
    if mode == "multiclass":
        target = torch.randint(0, c, (n, *spatial), generator=g)
        logits = torch.randn(n, c, *spatial, generator=g) + 1.5 * torch.nn.functional.one_hot(
            target, c
        ).movedim(-1, 1)
        probs = logits.softmax(1)
    else:
        target = torch.randint(0, 2, (n, c, *spatial), generator=g)
        probs = (torch.randn(n, c, *spatial, generator=g) + 1.5 * target).sigmoid()
        target = target[:, 0] if mode == "binary" else target
    probs = (probs * 10).round() / 10
    target = torch.where(torch.rand(target.shape, generator=g) < 0.2, IGNORE, target)
    return probs, target


def sklearn_per_class(
    mode: str, probs: Tensor, target: Tensor, roi: Tensor
) -> tuple[list[float], list[float]]:
    """Per-class AUC and AP from scikit-learn on the kept pixels, flattened here by hand."""
    if mode == "multilabel":
        kept = (target != IGNORE).all(1) & roi
        columns = [(target[:, k][kept], probs[:, k][kept]) for k in range(probs.shape[1])]
    else:
        kept = (target != IGNORE) & roi
        if mode == "binary":
            columns = [(target[kept], probs[:, 0][kept])]
        else:
            columns = [(target[kept] == k, probs[:, k][kept]) for k in range(probs.shape[1])]
    aucs = [sklearn_metrics.roc_auc_score(y.numpy(), s.double().numpy()) for y, s in columns]
    aps = [sklearn_metrics.average_precision_score(y.numpy(), s.double().numpy()) for y, s in columns]
    return aucs, aps


@pytest.mark.parametrize("spatial", [(16, 16), (5, 6, 7)])
@pytest.mark.parametrize("mode", MODES)
def test_auc_and_ap_match_sklearn_with_ties_ignore_and_roi(mode: str, spatial: tuple[int, ...]) -> None:
    probs, target = tied_batch(mode, spatial)
    roi = torch.rand(probs.shape[0], *spatial, generator=torch.Generator().manual_seed(5)) < 0.7
    assert probs.unique().numel() <= 11  # heavy ties
    auc = roc_auc(probs, target, mode=mode, ignore_index=IGNORE, roi=roi)
    ap = average_precision(probs, target, mode=mode, ignore_index=IGNORE, roi=roi)
    want_auc, want_ap = sklearn_per_class(mode, probs, target, roi)
    names = ["foreground"] if mode == "binary" else [str(k) for k in range(CLASSES)]
    for name, a, p in zip(names, want_auc, want_ap, strict=True):
        assert auc[f"auc_{name}"] == pytest.approx(a, abs=1e-12, rel=0), name
        assert ap[f"ap_{name}"] == pytest.approx(p, abs=1e-12, rel=0), name
    first = 1 if mode == "multiclass" else 0  # multiclass: background left out of the mean
    assert auc["auc"] == pytest.approx(np.mean(want_auc[first:]), abs=1e-12)
    assert ap["ap"] == pytest.approx(np.mean(want_ap[first:]), abs=1e-12)
    assert set(auc) == {"auc", *(f"auc_{n}" for n in names)}

    assert roc_auc(probs, target, mode=mode, ignore_index=IGNORE) != auc  # the roi matters


def test_ties_form_one_step_of_the_curve() -> None:
    probs = torch.tensor([0.5, 0.5, 0.5, 0.5, 0.9, 0.1], dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 1, 1, 0])
    # 3 positives × 3 negatives: the 0.9 positive wins 3 pairs; each tied positive wins half of
    # its 2 tied pairs and the pair with 0.1
    auc = roc_auc_from_pairs(probs, labels, mode="binary")["auc"]
    assert auc == pytest.approx((3 + 2 * (2 * 0.5 + 1)) / 9, abs=1e-15)
    ap = average_precision_from_pairs(probs, labels, mode="binary")["ap"]
    assert ap == pytest.approx(1 / 3 * 1.0 + 2 / 3 * (3 / 5), abs=1e-15)  # recall gain × precision
    reverse = roc_auc_from_pairs(-probs, labels, mode="binary")["auc"]
    assert auc + reverse == pytest.approx(1.0, abs=1e-15)


@pytest.mark.parametrize("mode", MODES)
def test_pooled_pairs_of_two_halves_concatenate_to_the_whole(mode: str) -> None:
    probs, target = tied_batch(mode, (9, 10), n=4, seed=3)
    roi = torch.rand(4, 9, 10, generator=torch.Generator().manual_seed(6)) < 0.8
    kw = {"mode": mode, "ignore_index": IGNORE}
    halves = [pooled_scores(probs[s], target[s], roi=roi[s], **kw) for s in (slice(0, 1), slice(1, 4))]
    x = torch.cat([h[0] for h in halves])
    y = torch.cat([h[1] for h in halves])
    whole_x, whole_y = pooled_scores(probs, target, roi=roi, **kw)
    assert torch.equal(x, whole_x) and torch.equal(y, whole_y) and y.dtype == torch.bool
    assert x.shape == (int(y.shape[0]), probs.shape[1])
    assert roc_auc_from_pairs(x, y, mode=mode) == roc_auc(probs, target, roi=roi, **kw)
    assert average_precision_from_pairs(x, y, mode=mode) == average_precision(probs, target, roi=roi, **kw)


def test_a_class_with_one_label_value_is_nan_and_left_out_of_the_mean() -> None:
    probs, target = tied_batch("multilabel", (8, 8), seed=4)
    target = target.clone()
    target[:, 2] = torch.where(target[:, 2] == IGNORE, IGNORE, 0)  # channel 2: no positive pixel
    target[:, 3] = torch.where(target[:, 3] == IGNORE, IGNORE, 1)  # channel 3: no negative pixel
    for fn, key in ((roc_auc, "auc"), (average_precision, "ap")):
        got = fn(probs, target, mode="multilabel", ignore_index=IGNORE, class_names=["a", "b", "c", "d"])
        assert math.isnan(got[f"{key}_c"]) and math.isnan(got[f"{key}_d"])
        assert got[key] == pytest.approx((got[f"{key}_a"] + got[f"{key}_b"]) / 2, abs=1e-15)
    only_negative = torch.zeros(1, 5, dtype=torch.long)
    nothing = roc_auc(torch.rand(1, 1, 5), only_negative, mode="binary", class_names=["bg", "vessel"])
    assert set(nothing) == {"auc", "auc_vessel"} and math.isnan(nothing["auc"])
    assert math.isnan(average_precision(torch.rand(1, 1, 5), only_negative, mode="binary")["ap"])


@pytest.mark.slow
def test_drive_sized_binary_set_matches_sklearn() -> None:
    """20 × 565 × 584 pixels (the DRIVE test set) with probabilities on a 1/1000 grid."""
    g = torch.Generator().manual_seed(7)
    target = (torch.rand(20, 565, 584, generator=g) < 0.12).long()
    probs = ((torch.rand(20, 1, 565, 584, generator=g) + 0.6 * target[:, None]) / 1.6 * 1000).round() / 1000
    x, y = pooled_scores(probs, target, mode="binary")
    assert x.shape == (20 * 565 * 584, 1)
    y_np, x_np = y[:, 0].numpy(), x[:, 0].double().numpy()
    assert roc_auc_from_pairs(x, y, mode="binary")["auc"] == pytest.approx(
        sklearn_metrics.roc_auc_score(y_np, x_np), abs=1e-12, rel=0
    )
    assert average_precision_from_pairs(x, y, mode="binary")["ap"] == pytest.approx(
        sklearn_metrics.average_precision_score(y_np, x_np), abs=1e-12, rel=0
    )


def test_auc_input_checks() -> None:
    with pytest.raises(ValueError, match="one class"):
        roc_auc_from_pairs(torch.rand(5, 2), torch.zeros(5, 2), mode="binary")
    with pytest.raises(ValueError, match="NaN"):
        roc_auc_from_pairs(torch.tensor([0.1, math.nan]), torch.tensor([0, 1]), mode="binary")
    with pytest.raises(ValueError, match="class ids"):
        pooled_scores(torch.rand(1, 3, 2, 2), torch.full((1, 2, 2), 3), mode="multiclass")
    with pytest.raises(ValueError, match="floating"):
        pooled_scores(torch.ones(1, 1, 2, 2, dtype=torch.long), torch.ones(1, 2, 2), mode="binary")


# ------------------------------------------------------------------------------------------ distances


def blob(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """A random smooth mask of several components, some touching the array border."""
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.standard_normal(shape), 2.0) > 0.05


def monai_values(pred: np.ndarray, target: np.ndarray, spacing: tuple[float, ...] | None, percentile: float):
    """MONAI's percentile Hausdorff distance and symmetric average surface distance."""
    p = torch.from_numpy(pred)[None, None].float()
    t = torch.from_numpy(target)[None, None].float()
    kw = {"include_background": True, "spacing": spacing}
    hd = monai_metrics.compute_hausdorff_distance(
        p, t, percentile=None if percentile == 100 else percentile, **kw
    )
    asd = monai_metrics.compute_average_surface_distance(p, t, symmetric=True, **kw)
    return float(hd), float(asd)


CLOSE = {"rel": 1e-6, "abs": 1e-6}  # MONAI returns float32


@pytest.mark.parametrize(
    ("shape", "spacing"),
    [((48, 40), None), ((48, 40), (1.0, 0.5)), ((20, 24, 18), None), ((20, 24, 18), (1.0, 0.5, 2.0))],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_hd95_and_assd_match_monai_on_random_blobs(
    shape: tuple[int, ...], spacing: tuple[float, ...] | None, seed: int
) -> None:
    pred, target = blob(shape, seed), blob(shape, seed + 100)
    assert pred.any() and target.any()
    for percentile in (95, 100):
        want_hd, want_assd = monai_values(pred, target, spacing, percentile)
        assert hd95(pred, target, spacing=spacing, percentile=percentile) == pytest.approx(want_hd, **CLOSE)
    assert assd(pred, target, spacing=spacing) == pytest.approx(want_assd, **CLOSE)
    as_tensors = hd95(torch.from_numpy(pred), torch.from_numpy(target), spacing=spacing)
    assert as_tensors == hd95(pred, target, spacing=spacing)


def test_hd95_and_assd_match_monai_on_a_real_membrane_mask(shared: Path) -> None:
    from PIL import Image

    path = shared / "datasets" / "isbi2012-membrane" / "train" / "label" / "0.png"
    cells = np.array(Image.open(path)) == 255  # cell interiors
    shifted = np.zeros_like(cells)
    shifted[3:, :-2] = cells[:-3, 2:]  # moved 3 rows down and 2 columns left
    eroded = ndimage.binary_erosion(cells, iterations=2)
    for other, spacing in ((shifted, None), (eroded, (0.8, 1.3)), (eroded & shifted, (2.0, 0.5))):
        want_hd, want_assd = monai_values(other, cells, spacing, 95)
        got_hd = hd95(other, cells, spacing=spacing)
        assert got_hd == pytest.approx(want_hd, **CLOSE) and got_hd > 0
        assert assd(other, cells, spacing=spacing) == pytest.approx(want_assd, **CLOSE)


def test_surface_voxels_and_distances_by_hand() -> None:
    square = np.zeros((7, 7), bool)
    square[1:4, 1:4] = True  # 3 × 3: eight surface pixels around the centre
    corner = np.zeros((7, 7), bool)
    corner[:2, :2] = True  # touches the array border: all four pixels are surface
    forward, backward = surface_distances(square, corner)
    assert forward.shape == (8,) and backward.shape == (4,) and forward.dtype == np.float64
    # (0, 0) of the corner is one diagonal step from (1, 1) of the square
    assert backward.tolist() == pytest.approx([math.sqrt(2), 1.0, 1.0, 0.0])
    a, b = np.zeros((1, 9), bool), np.zeros((1, 9), bool)
    a[0, 0], b[0, 8] = True, True
    assert hd95(a, b, spacing=(1.0, 0.25)) == assd(a, b, spacing=(1.0, 0.25)) == 2.0
    dist = surface_distances(torch.from_numpy(a), torch.from_numpy(b), spacing=0.5)
    assert isinstance(dist[0], Tensor) and dist[0].tolist() == [4.0]


def test_empty_masks_follow_the_documented_conventions() -> None:
    empty, some = np.zeros((6, 6), bool), np.zeros((6, 6), bool)
    some[2:4, 2:5] = True
    forward, backward = surface_distances(empty, some)
    assert forward.size == 0 and backward.size == 6 and np.isinf(backward).all()
    assert [x.size for x in surface_distances(empty, empty)] == [0, 0]
    assert math.isnan(hd95(empty, empty)) and math.isnan(assd(empty, empty))  # nothing to find, nothing found
    for pred, target in ((empty, some), (some, empty)):
        assert hd95(pred, target) == math.inf and assd(pred, target) == math.inf
    assert hd95(some, some) == assd(some, some) == 0.0


def test_distance_scores_per_sample_match_monai_and_average_without_nan() -> None:
    shape, spacing, classes = (24, 20, 12), (1.0, 0.5, 2.0), 3
    rng = np.random.default_rng(9)
    fields = ndimage.gaussian_filter(rng.standard_normal((2, 2, classes, *shape)), (0, 0, 0, 2, 2, 2))
    pred, target = (torch.from_numpy(f.argmax(1)) for f in fields)  # (2, *shape) class ids
    target[1][target[1] == 2] = 0  # sample 1: class 2 only predicted → +inf
    pred[1][pred[1] == 2] = 0  # ... and not predicted either → NaN
    names = ["bg", "liver", "kidney"]
    got = distance_scores(
        pred, target, mode="multiclass", num_classes=classes, spacing=spacing, class_names=names
    )
    assert set(got) == {"hd95_liver", "hd95_kidney", "assd_liver", "assd_kidney"}
    assert all(v.shape == (2,) and v.dtype == torch.float64 for v in got.values())
    one_hot = [torch.nn.functional.one_hot(x, classes).movedim(-1, 1).float() for x in (pred, target)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want_hd = monai_metrics.compute_hausdorff_distance(*one_hot, percentile=95, spacing=spacing)
        want_assd = monai_metrics.compute_average_surface_distance(*one_hot, symmetric=True, spacing=spacing)
    for k, name in enumerate(names[1:]):
        assert got[f"hd95_{name}"][0] == pytest.approx(float(want_hd[0, k]), **CLOSE)
        assert got[f"assd_{name}"][0] == pytest.approx(float(want_assd[0, k]), **CLOSE)
    assert got["hd95_liver"][1] == pytest.approx(float(want_hd[1, 0]), **CLOSE)
    assert math.isnan(got["hd95_kidney"][1]) and math.isnan(got["assd_kidney"][1])

    means = distance_means(got)
    assert means["n_hd95_kidney"] == 1 and means["n_hd95_liver"] == 2
    assert means["hd95_kidney"] == float(got["hd95_kidney"][0])  # the NaN sample is left out
    assert means["hd95"] == pytest.approx((means["hd95_liver"] + means["hd95_kidney"]) / 2)
    gathered = {key: torch.cat([v[:1], v[1:]]) for key, v in got.items()}  # e.g. two processes
    assert distance_means(gathered) == means

    one_missed = target.clone()
    one_missed[0][one_missed[0] == 1] = 0
    pred_only = distance_scores(pred, one_missed, mode="multiclass", num_classes=classes)
    assert pred_only["hd95_1"][0] == math.inf and distance_means(pred_only)["hd95"] == math.inf


@pytest.mark.parametrize("mode", ["binary", "multilabel"])
def test_distance_scores_of_binary_and_multilabel_labels(mode: str) -> None:
    pred = torch.from_numpy(np.stack([blob((20, 22), s) for s in range(6)])).long().view(3, 2, 20, 22)
    target = torch.from_numpy(np.stack([blob((20, 22), s + 50) for s in range(6)])).long().view(3, 2, 20, 22)
    if mode == "binary":
        pred, target = pred[:, :1], target[:, 0]  # (N, 1, *S) and (N, *S) both accepted
    got = distance_scores(pred, target.view(pred.shape), mode=mode, spacing=(0.5, 1.5), percentile=90)
    names = ["foreground"] if mode == "binary" else ["0", "1"]
    assert set(got) == {f"{metric}_{name}" for metric in ("hd90", "assd") for name in names}
    for c, name in enumerate(names):
        for i in range(3):
            p, t = pred[i, c].numpy(), target.view(pred.shape)[i, c].numpy()
            assert got[f"hd90_{name}"][i] == hd95(p, t, spacing=(0.5, 1.5), percentile=90)
            assert got[f"assd_{name}"][i] == assd(p, t, spacing=(0.5, 1.5))
    with pytest.raises(ValueError, match="0 or 1"):
        distance_scores(pred * 2, target.view(pred.shape), mode=mode)
