"""Segmentation metrics from hard predictions: per-sample confusion counts, then scores.

``confusion_counts`` turns logits and targets into integer counts ``(N, C, 4)`` ordered
``tp, fp, fn, tn``, one row per sample and class. Counts add up exactly, so batches, halves
of a batch or the gathered counts of several processes can be concatenated in any order and
give the same scores. ``scores`` turns counts into Dice, IoU, precision, recall,
specificity and accuracy; ``MetricTracker`` stores the counts of each batch.

Predictions: ``binary`` and ``multilabel`` mark a pixel positive when
``sigmoid(logit) > threshold``, computed as ``logit > logit(threshold)`` in float32 (float64
for float64 logits), so a logit exactly at the cutoff is negative; ``multiclass`` takes the
argmax over classes (ties go to the lowest index).

Scores per class, in float64, with the value used when the denominator is 0:

| score | formula | denominator 0 |
|---|---|---|
| dice | 2 TP / (2 TP + FP + FN) | 1.0 (class absent from target and prediction) |
| iou | TP / (TP + FP + FN) | 1.0 (same) |
| precision | TP / (TP + FP) | 1.0 if FN == 0 (nothing to find, nothing found), else 0.0 |
| recall | TP / (TP + FN) | 1.0 if FP == 0 (nothing to find, nothing found), else 0.0 |
| specificity | TN / (TN + FP) | 1.0 if FN == 0, else 0.0 |
| accuracy | (TP + TN) / (TP + FP + FN + TN) | 1.0 (no pixel counted) |

In words: a zero denominator gives 1.0 when the class has no error (FP == FN == 0) and 0.0
otherwise. ``reduction="global"`` sums the counts over samples first; ``"per_image"`` scores
each sample and class, then averages over samples.

Threshold-free scores: ``roc_auc`` and ``average_precision`` rank the probabilities of all
counted pixels pooled (``pooled_scores`` gives the flat pairs to gather across processes).
Surface distances: ``hd95``, ``assd`` and ``surface_distances`` for one mask pair,
``distance_scores`` per sample and class, ``distance_means`` to average them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

MODES = ("binary", "multiclass", "multilabel")
REDUCTIONS = ("global", "per_image")
_PER_CLASS_KEYS = ("dice", "iou", "precision", "recall")


def confusion_counts(
    logits: Tensor,
    target: Tensor,
    *,
    mode: str,
    num_classes: int | None = None,
    threshold: float = 0.5,
    ignore_index: int | None = None,
    roi: Tensor | None = None,
) -> Tensor:
    """Per-sample, per-class counts ``(N, C, 4)`` int64 ordered ``tp, fp, fn, tn``.

    ``logits``: ``(N, C, *S)`` raw outputs, ``C == 1`` in binary mode. ``target``: binary
    ``(N, *S)`` or ``(N, 1, *S)`` in {0, 1}; multiclass ``(N, *S)`` class ids; multilabel
    ``(N, C, *S)`` in {0, 1}. Target pixels equal to ``ignore_index`` (multilabel: in any
    channel) and pixels where the boolean ``roi`` ``(N, *S)`` or ``(N, 1, *S)`` is False count
    nowhere. ``num_classes``, when given, must equal ``C``.
    """
    c = _check_outputs(logits, mode, num_classes, "logits")
    x = logits.detach()
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    target, valid = _target_and_valid(logits.shape, target, mode, ignore_index, roi)

    if mode == "multiclass":
        return _multiclass_counts(x.argmax(1), target, valid, c)
    if (valid & (target != 0) & (target != 1)).any():
        raise ValueError(f"{mode} targets must be 0 or 1 (or ignore_index={ignore_index})")
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    cutoff = torch.logit(torch.tensor(threshold, dtype=torch.float64)).to(x.dtype)
    pred, truth = x > cutoff, target == 1
    tp = _count(pred & truth & valid)
    fp = _count(pred & ~truth & valid)
    fn = _count(~pred & truth & valid)
    tn = _count(valid) - tp - fp - fn
    return torch.stack([tp, fp, fn, tn], -1)


def _check_outputs(outputs: Tensor, mode: str, num_classes: int | None, what: str) -> int:
    """Checks the mode and the ``(N, C, *S)`` shape of model outputs; returns ``C``."""
    if mode not in MODES:
        raise ValueError(f"unknown metric mode {mode!r}; choose one of {', '.join(MODES)}")
    if outputs.dim() < 3:
        raise ValueError(f"{what} must be (N, C, *S), got {tuple(outputs.shape)}")
    c = outputs.shape[1]
    if num_classes is not None and num_classes != c:
        raise ValueError(f"num_classes={num_classes} but {what} have {c} channels")
    if mode == "binary" and c != 1:
        raise ValueError(f"binary mode expects {what} (N, 1, *S), got {tuple(outputs.shape)}")
    return c


def _target_and_valid(
    shape: torch.Size, target: Tensor, mode: str, ignore_index: int | None, roi: Tensor | None
) -> tuple[Tensor, Tensor]:
    """The target reshaped for outputs of ``shape`` ``(N, C, *S)`` (binary ``(N, 1, *S)``) and
    the mask of counted pixels: ``(N, *S)`` in multiclass mode, else ``(N, 1, *S)``."""
    n, c, *spatial = shape
    if mode == "binary" and target.dim() == len(shape) - 1:
        target = target.unsqueeze(1)
    expected = (n, *spatial) if mode == "multiclass" else (n, 1 if mode == "binary" else c, *spatial)
    if tuple(target.shape) != expected:
        raise ValueError(f"{mode} mode expects target {expected}, got {tuple(target.shape)}")
    valid = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index
    if mode != "multiclass":
        valid = valid.all(1, keepdim=True)
    if roi is not None:
        roi = roi.bool()
        if mode == "multiclass" and roi.dim() == len(shape):
            roi = roi.squeeze(1)
        elif mode != "multiclass" and roi.dim() == len(shape) - 1:
            roi = roi.unsqueeze(1)
        if roi.shape != valid.shape:
            raise ValueError(f"roi must be (N, *S) = {(n, *spatial)}, got {tuple(roi.shape)}")
        valid = valid & roi
    return target, valid


def _count(mask: Tensor) -> Tensor:
    """``(N, C)`` number of True values of a ``(N, C, *S)`` mask."""
    return mask.flatten(2).sum(-1)


def _multiclass_counts(pred: Tensor, target: Tensor, valid: Tensor, c: int) -> Tensor:
    """Counts ``(N, C, 4)`` from predicted and true ids ``(N, *S)`` through a confusion matrix."""
    n = pred.shape[0]
    if (valid & ((target < 0) | (target >= c))).any():
        raise ValueError(f"multiclass targets must be class ids in [0, {c}) or the ignore_index")
    sample = torch.arange(n, device=pred.device).view(n, *[1] * (pred.dim() - 1))
    cell = (sample * c + target.long()) * c + pred
    cell = torch.where(valid, cell, n * c * c)  # one spare bin collects the excluded pixels
    matrix = torch.bincount(cell.flatten(), minlength=n * c * c + 1)[:-1].view(
        n, c, c
    )  # [sample, true, pred]
    tp = matrix.diagonal(dim1=1, dim2=2)
    fn = matrix.sum(2) - tp
    fp = matrix.sum(1) - tp
    tn = matrix.sum((1, 2)).unsqueeze(1) - tp - fp - fn
    return torch.stack([tp, fp, fn, tn], -1)


def _class_scores(counts: Tensor) -> dict[str, Tensor]:
    """Each score of float64 counts ``(..., 4)``, shaped ``(...)``, with the empty-case rule."""
    tp, fp, fn, tn = counts.unbind(-1)
    no_error = ((fp == 0) & (fn == 0)).double()

    def ratio(num: Tensor, den: Tensor) -> Tensor:
        return torch.where(den > 0, num / den.clamp_min(1), no_error)

    return {
        "dice": ratio(2 * tp, 2 * tp + fp + fn),
        "iou": ratio(tp, tp + fp + fn),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "specificity": ratio(tn, tn + fp),
        "accuracy": ratio(tp + tn, tp + fp + fn + tn),
    }


def _class_names(c: int, class_names: Sequence[str] | None) -> list[str]:
    """One name per class: ``class_names``, "foreground" for one class, else the indices."""
    if class_names is None:
        return ["foreground"] if c == 1 else [str(i) for i in range(c)]
    names = [str(name) for name in class_names]
    if c == 1 and len(names) == 2:  # ["background", "vessel"] for a one-channel binary model
        names = names[1:]
    if len(names) != c or len(set(names)) != c:
        raise ValueError(f"need {c} distinct class names, got {names}")
    return names


def scores(
    counts: Tensor,
    *,
    reduction: str = "global",
    class_names: Sequence[str] | None = None,
    include_background: bool | None = None,
    mode: str | None = None,
) -> dict[str, float]:
    """Scores of counts ``(N, C, 4)`` or ``(C, 4)`` as floats, class-averaged and per class.

    Keys: "dice", "iou", "precision", "recall", "specificity", "accuracy" averaged over
    classes, plus "dice_<name>", "iou_<name>", "precision_<name>", "recall_<name>" for every
    class. The average covers the one class when ``C == 1``; otherwise classes ``1..C-1``
    (multiclass convention: background excluded) unless ``include_background=True`` or
    ``mode="multilabel"``, which average over all channels.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; choose one of {', '.join(REDUCTIONS)}")
    if mode is not None and mode not in MODES:
        raise ValueError(f"unknown metric mode {mode!r}; choose one of {', '.join(MODES)}")
    if counts.dim() == 2:
        counts = counts.unsqueeze(0)
    if counts.dim() != 3 or counts.shape[-1] != 4 or counts.shape[0] == 0:
        raise ValueError(f"counts must be a non-empty (N, C, 4) or (C, 4) tensor, got {tuple(counts.shape)}")
    c = counts.shape[1]
    if mode == "binary" and c != 1:
        raise ValueError(f"binary counts have one class, got {c}")
    names = _class_names(c, class_names)
    counts = counts.detach().cpu()
    if reduction == "global":
        per_class = _class_scores(counts.sum(0).double())
    else:
        per_class = {key: value.mean(0) for key, value in _class_scores(counts.double()).items()}
    include = include_background if include_background is not None else mode == "multilabel"
    first = 0 if c == 1 or include else 1
    result = {key: float(value[first:].mean()) for key, value in per_class.items()}
    for key in _PER_CLASS_KEYS:
        result.update({f"{key}_{name}": float(v) for name, v in zip(names, per_class[key], strict=True)})
    return result


class MetricTracker:
    """Accumulates per-sample counts over batches, e.g. one validation epoch."""

    def __init__(
        self,
        mode: str,
        num_classes: int | None = None,
        threshold: float = 0.5,
        ignore_index: int | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown metric mode {mode!r}; choose one of {', '.join(MODES)}")
        self.mode, self.num_classes, self.threshold = mode, num_classes, threshold
        self.ignore_index, self.class_names = ignore_index, class_names
        self._batches: list[Tensor] = []

    def update(self, logits: Tensor, target: Tensor, roi: Tensor | None = None) -> Tensor:
        """Stores and returns the counts ``(N, C, 4)`` of a batch (shapes as ``confusion_counts``)."""
        counts = confusion_counts(
            logits,
            target,
            mode=self.mode,
            num_classes=self.num_classes,
            threshold=self.threshold,
            ignore_index=self.ignore_index,
            roi=roi,
        )
        self._batches.append(counts)
        return counts

    @property
    def counts(self) -> Tensor:
        """All stored counts ``(total N, C, 4)``, in update order."""
        if not self._batches:
            classes = 1 if self.mode == "binary" else self.num_classes or 0
            return torch.zeros((0, classes, 4), dtype=torch.int64)
        return torch.cat(self._batches)

    def compute(self, reduction: str = "global") -> dict[str, float]:
        """``scores`` of all stored counts (raises ValueError before the first update)."""
        return scores(self.counts, reduction=reduction, class_names=self.class_names, mode=self.mode)

    def reset(self) -> None:
        """Forgets the stored counts."""
        self._batches.clear()


# ---------------------------------------------------------------------------------------------
# Threshold-free metrics: ROC-AUC and average precision over pooled pixels.


def pooled_scores(
    probs: Tensor,
    target: Tensor,
    *,
    mode: str,
    ignore_index: int | None = None,
    roi: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """The counted pixels as flat pairs: probabilities ``(P, C)`` and bool labels ``(P, C)``.

    ``probs``: ``(N, C, *S)`` probabilities, ``C == 1`` in binary mode (sigmoid outputs), the
    softmax over classes in multiclass mode, per-channel sigmoids in multilabel mode. Only the
    order of the values within a class matters. ``target``, ``ignore_index`` and ``roi`` as in
    ``confusion_counts``; multiclass labels are one-hot, so column ``k`` is ``target == k``.
    Pixels keep their order (sample, then C-order position). Half and bfloat16 probabilities
    come back as float32, others in their dtype. Pairs of several batches or processes can be
    concatenated along ``P`` and passed to ``roc_auc_from_pairs`` / ``average_precision_from_pairs``.
    """
    c = _check_outputs(probs, mode, None, "probs")
    if not probs.is_floating_point():
        raise ValueError(f"probs must be floating point, got {probs.dtype}")
    x = probs.detach()
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    target, valid = _target_and_valid(probs.shape, target, mode, ignore_index, roi)
    x = x.movedim(1, -1)  # (N, *S, C)
    if mode == "multiclass":
        ids = target[valid]
        if ((ids < 0) | (ids >= c)).any():
            raise ValueError(f"multiclass targets must be class ids in [0, {c}) or the ignore_index")
        return x[valid], torch.nn.functional.one_hot(ids.long(), c).bool()
    keep = valid[:, 0]
    labels = target.movedim(1, -1)[keep]
    if ((labels != 0) & (labels != 1)).any():
        raise ValueError(f"{mode} targets must be 0 or 1 (or ignore_index={ignore_index})")
    return x[keep], labels == 1


def _ranked_counts(score: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
    """Cumulative int64 true and false positives ``(T,)`` when the cutoff falls just below each
    of the ``T`` distinct scores, from the highest down (tied pixels enter together)."""
    ordered, order = torch.sort(score.double(), descending=True)
    tp = label[order].long().cumsum(0)
    last = torch.ones_like(ordered, dtype=torch.bool)  # last pixel of each run of equal scores
    last[:-1] = ordered[1:] != ordered[:-1]
    ends = torch.nonzero(last).squeeze(1)
    tp = tp[ends]
    return tp, ends + 1 - tp


def _auc(tp: Tensor, fp: Tensor) -> float:
    """Trapezoidal area under the ROC curve through ``(0, 0)`` and the ranked counts."""
    pos, neg = int(tp[-1]), int(fp[-1])
    zero = tp.new_zeros(1)
    tp_before, fp_before = torch.cat([zero, tp[:-1]]), torch.cat([zero, fp[:-1]])
    twice_area = int(((fp - fp_before) * (tp + tp_before)).sum())  # exact, in units of pixel pairs
    return twice_area / (2 * pos * neg)  # Python int division: one correctly rounded step


def _ap(tp: Tensor, fp: Tensor) -> float:
    """Step-wise average precision: sum over cutoffs of (recall gain) × precision."""
    precision = tp.double() / (tp + fp).double()
    gain = torch.diff(tp, prepend=tp.new_zeros(1)).double()
    return float((gain * precision).sum()) / int(tp[-1])


def _from_pairs(
    probs: Tensor,
    labels: Tensor,
    mode: str,
    class_names: Sequence[str] | None,
    key: str,
    area: Callable[[Tensor, Tensor], float],
) -> dict[str, float]:
    """Class mean and per-class value of ``area`` over flat pairs ``(P, C)``."""
    if mode not in MODES:
        raise ValueError(f"unknown metric mode {mode!r}; choose one of {', '.join(MODES)}")
    if probs.dim() == 1:
        probs, labels = probs.unsqueeze(1), labels.reshape(-1, 1)
    if probs.dim() != 2 or labels.shape != probs.shape:
        raise ValueError(
            f"need probs and labels (P, C) of one shape, got {tuple(probs.shape)}, {tuple(labels.shape)}"
        )
    c = probs.shape[1]
    if mode == "binary" and c != 1:
        raise ValueError(f"binary pairs have one class, got {c}")
    if torch.isnan(probs).any():
        raise ValueError("probs contain NaN")
    names = _class_names(c, class_names)
    labels = labels.bool()
    values = []
    for k in range(c):
        positives = int(labels[:, k].sum())
        if positives in (0, probs.shape[0]):  # one label value only: undefined
            values.append(math.nan)
        else:
            values.append(area(*_ranked_counts(probs[:, k], labels[:, k])))
    first = 0 if c == 1 or mode == "multilabel" else 1
    defined = [v for v in values[first:] if not math.isnan(v)]
    result = {key: sum(defined) / len(defined) if defined else math.nan}
    result.update({f"{key}_{name}": v for name, v in zip(names, values, strict=True)})
    return result


def roc_auc_from_pairs(
    probs: Tensor, labels: Tensor, *, mode: str, class_names: Sequence[str] | None = None
) -> dict[str, float]:
    """``roc_auc`` of flat pairs from ``pooled_scores``: probs and labels ``(P, C)`` or ``(P,)``."""
    return _from_pairs(probs, labels, mode, class_names, "auc", _auc)


def average_precision_from_pairs(
    probs: Tensor, labels: Tensor, *, mode: str, class_names: Sequence[str] | None = None
) -> dict[str, float]:
    """``average_precision`` of flat pairs from ``pooled_scores`` (``(P, C)`` or ``(P,)``)."""
    return _from_pairs(probs, labels, mode, class_names, "ap", _ap)


def roc_auc(
    probs: Tensor,
    target: Tensor,
    *,
    mode: str,
    ignore_index: int | None = None,
    roi: Tensor | None = None,
    class_names: Sequence[str] | None = None,
) -> dict[str, float]:
    """Area under the ROC curve per class, all counted pixels of the batch pooled.

    Inputs as ``pooled_scores``. Keys: "auc_<name>" per class (one-vs-rest in multiclass
    mode) and "auc", the mean over the classes ``scores`` averages (binary: the one class;
    multiclass: classes ``1..C-1``; multilabel: all). Ties are exact: tied pixels form one
    step of the curve, its area the trapezoid, as ``sklearn.metrics.roc_auc_score``. A class
    whose counted pixels are all positive or all negative (or that has no pixel) gets NaN and
    is left out of the mean (sklearn warns and returns NaN there, older versions raise).
    """
    pairs = pooled_scores(probs, target, mode=mode, ignore_index=ignore_index, roi=roi)
    return roc_auc_from_pairs(*pairs, mode=mode, class_names=class_names)


def average_precision(
    probs: Tensor,
    target: Tensor,
    *,
    mode: str,
    ignore_index: int | None = None,
    roi: Tensor | None = None,
    class_names: Sequence[str] | None = None,
) -> dict[str, float]:
    """Average precision (area under the precision-recall curve) per class, pixels pooled.

    The step-wise definition of ``sklearn.metrics.average_precision_score``: the sum over
    distinct score cutoffs, from the highest, of the recall gained times the precision there
    (no interpolation, no trapezoid). Keys "ap" and "ap_<name>", classes and inputs as
    ``roc_auc``. A class with only one label value among its counted pixels gets NaN and is
    left out of the mean (sklearn returns 0.0 with no positive and 1.0 with no negative).
    """
    pairs = pooled_scores(probs, target, mode=mode, ignore_index=ignore_index, roi=roi)
    return average_precision_from_pairs(*pairs, mode=mode, class_names=class_names)


# ---------------------------------------------------------------------------------------------
# Surface distances: Hausdorff distance (percentile) and average symmetric surface distance.


def _as_numpy_mask(mask: Tensor | np.ndarray) -> np.ndarray:
    array = mask.detach().cpu().numpy() if isinstance(mask, Tensor) else np.asarray(mask)
    return array.astype(bool, copy=False)


def _as_labels(labels: Tensor | np.ndarray) -> np.ndarray:
    return labels.detach().cpu().numpy() if isinstance(labels, Tensor) else np.asarray(labels)


def _sampling(spacing: float | Sequence[float] | None, ndim: int) -> tuple[float, ...]:
    if spacing is None:
        return (1.0,) * ndim
    values = (float(spacing),) * ndim if isinstance(spacing, int | float) else tuple(map(float, spacing))
    if len(values) != ndim or not all(v > 0 for v in values):
        raise ValueError(f"spacing needs {ndim} positive values, got {spacing}")
    return values


def _surface(mask: np.ndarray) -> np.ndarray:
    """Foreground voxels with a face neighbour in the background or outside the array."""
    from scipy import ndimage

    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def _nearest(to: np.ndarray, start: np.ndarray, sampling: tuple[float, ...]) -> np.ndarray:
    """Distance from each True voxel of ``start`` to the closest True voxel of ``to``."""
    from scipy import ndimage

    if not start.any():
        return np.zeros(0)
    if not to.any():
        return np.full(int(start.sum()), np.inf)
    return ndimage.distance_transform_edt(~to, sampling=sampling)[start]


def _surface_distances(
    pred: Tensor | np.ndarray, target: Tensor | np.ndarray, spacing: float | Sequence[float] | None
) -> tuple[np.ndarray, np.ndarray]:
    p, t = _as_numpy_mask(pred), _as_numpy_mask(target)
    if p.shape != t.shape or p.ndim == 0:
        raise ValueError(f"pred and target must be masks of one shape, got {p.shape} and {t.shape}")
    sampling = _sampling(spacing, p.ndim)
    union = p | t
    if union.any():  # crop to the bounding box: outside is background, so the surfaces stay the same
        box = []
        for axis in range(union.ndim):
            hits = np.flatnonzero(union.any(axis=tuple(a for a in range(union.ndim) if a != axis)))
            box.append(slice(hits[0], hits[-1] + 1))
        p, t = p[tuple(box)], t[tuple(box)]
    p_surface, t_surface = _surface(p), _surface(t)
    return _nearest(t_surface, p_surface, sampling), _nearest(p_surface, t_surface, sampling)


def surface_distances(
    pred: Tensor | np.ndarray, target: Tensor | np.ndarray, *, spacing: float | Sequence[float] | None = None
) -> tuple[Tensor | np.ndarray, Tensor | np.ndarray]:
    """Distances between the surfaces of two masks of one sample and one class, float64.

    ``pred`` and ``target``: boolean (or 0/1) masks ``(*S)``, 2D or 3D. The surface of a mask
    is its foreground voxels with a face neighbour (4-connected in 2D, 6-connected in 3D) in
    the background or outside the array, as MONAI's ``get_mask_edges``. Returns
    ``(pred_to_target, target_to_pred)``: for each surface voxel of ``pred`` (C order) the
    Euclidean distance to the closest surface voxel of ``target``, and the reverse, in the
    units of ``spacing`` (one number or one per axis; default 1). A Tensor ``pred`` gives CPU
    Tensors, anything else NumPy arrays. An empty mask has no surface: its own side is empty
    and the other side is all +inf (e.g. empty ``pred``, non-empty ``target``: ``([], [inf, ...])``).
    """
    forward, backward = _surface_distances(pred, target, spacing)
    if isinstance(pred, Tensor):
        return torch.from_numpy(forward), torch.from_numpy(backward)
    return forward, backward


def _hausdorff(forward: np.ndarray, backward: np.ndarray, percentile: float) -> float:
    if not forward.size or not backward.size:
        return math.nan if forward.size == backward.size else math.inf
    return float(max(np.percentile(forward, percentile), np.percentile(backward, percentile)))


def _assd(forward: np.ndarray, backward: np.ndarray) -> float:
    if not forward.size or not backward.size:
        return math.nan if forward.size == backward.size else math.inf
    return float(np.concatenate([forward, backward]).mean())


def hd95(
    pred_mask: Tensor | np.ndarray,
    target_mask: Tensor | np.ndarray,
    *,
    spacing: float | Sequence[float] | None = None,
    percentile: float = 95,
) -> float:
    """Percentile Hausdorff distance of two masks ``(*S)``: the larger of the two directed
    ``percentile``-th percentiles (linear interpolation, as ``numpy.percentile``) of
    ``surface_distances``; ``percentile=100`` is the Hausdorff distance. Equals MONAI's
    ``compute_hausdorff_distance(..., percentile=95, spacing=spacing)`` when both masks have
    foreground.

    | pred | target | result |
    |---|---|---|
    | empty | empty | NaN (nothing to find, nothing found: left out of means) |
    | empty | not empty | +inf |
    | not empty | empty | +inf |
    """
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must lie in [0, 100], got {percentile}")
    return _hausdorff(*_surface_distances(pred_mask, target_mask, spacing), percentile)


def assd(
    pred_mask: Tensor | np.ndarray,
    target_mask: Tensor | np.ndarray,
    *,
    spacing: float | Sequence[float] | None = None,
) -> float:
    """Average symmetric surface distance of two masks ``(*S)``: the mean of all distances of
    ``surface_distances`` in both directions together (so the larger surface weighs more), as
    MONAI's ``compute_average_surface_distance(..., symmetric=True, spacing=spacing)``.
    Empty masks as ``hd95``: both empty NaN, one empty +inf.
    """
    return _assd(*_surface_distances(pred_mask, target_mask, spacing))


def distance_scores(
    pred_labels: Tensor,
    target_labels: Tensor,
    *,
    mode: str,
    num_classes: int | None = None,
    spacing: float | Sequence[float] | None = None,
    class_names: Sequence[str] | None = None,
    percentile: float = 95,
) -> dict[str, Tensor]:
    """Per-sample HD95 and ASSD of hard predictions, float64 CPU tensors ``(N,)`` per class.

    ``pred_labels`` and ``target_labels``: binary ``(N, *S)`` or ``(N, 1, *S)`` in {0, 1};
    multiclass ``(N, *S)`` class ids in ``[0, num_classes)`` (``num_classes`` required);
    multilabel ``(N, C, *S)`` in {0, 1}. Classes: binary the foreground, multiclass ``1..C-1``
    (no background), multilabel every channel. Keys "hd95_<name>" (``hd<percentile>_<name>``
    for another percentile) and "assd_<name>", names as ``scores``. Values per sample follow
    ``hd95`` and ``assd``, empty cases included (NaN when both masks are empty, +inf when one
    is). Gather the tensors of several processes by concatenation, then ``distance_means``.
    """
    if mode not in MODES:
        raise ValueError(f"unknown metric mode {mode!r}; choose one of {', '.join(MODES)}")
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must lie in [0, 100], got {percentile}")
    pred, target = _as_labels(pred_labels), _as_labels(target_labels)
    if pred.shape != target.shape:
        raise ValueError(f"pred and target labels differ in shape: {pred.shape} and {target.shape}")
    if mode == "multiclass":
        if num_classes is None:
            raise ValueError("multiclass distance_scores needs num_classes")
        for ids in (pred, target):
            if ((ids < 0) | (ids >= num_classes)).any():
                raise ValueError(f"multiclass labels must be class ids in [0, {num_classes})")
        names = _class_names(num_classes, class_names)[1:]
        masks = [(pred == k, target == k) for k in range(1, num_classes)]
    else:
        if mode == "binary" and pred.ndim > 2 and pred.shape[1] == 1:
            pred, target = pred[:, 0], target[:, 0]
        if mode == "multilabel" and (
            pred.ndim < 3 or (num_classes is not None and pred.shape[1] != num_classes)
        ):
            raise ValueError(f"multilabel labels must be (N, C, *S), got {pred.shape}")
        for labels in (pred, target):
            if ((labels != 0) & (labels != 1)).any():
                raise ValueError(f"{mode} labels must be 0 or 1")
        if mode == "binary":
            names, masks = _class_names(1, class_names), [(pred == 1, target == 1)]
        else:
            names = _class_names(pred.shape[1], class_names)
            masks = [(pred[:, k] == 1, target[:, k] == 1) for k in range(pred.shape[1])]
    hd_key = f"hd{percentile:g}"
    result: dict[str, Tensor] = {}
    for name, (p, t) in zip(names, masks, strict=True):
        pairs = [_surface_distances(p[i], t[i], spacing) for i in range(len(p))]
        result[f"{hd_key}_{name}"] = torch.tensor(
            [_hausdorff(*d, percentile) for d in pairs], dtype=torch.float64
        )
        result[f"assd_{name}"] = torch.tensor([_assd(*d) for d in pairs], dtype=torch.float64)
    return result


def distance_means(per_sample: Mapping[str, Tensor | np.ndarray]) -> dict[str, float]:
    """Means over samples of ``distance_scores`` output (gathered or not), as floats.

    For every key "<metric>_<name>": the mean of its non-NaN samples (NaN if none; +inf if
    any sample is +inf) and "n_<metric>_<name>", the number of those samples. "<metric>"
    (e.g. "hd95", "assd") is the mean of the per-class means that are not NaN.
    """
    result: dict[str, float] = {}
    by_metric: dict[str, list[float]] = {}
    for key, values in per_sample.items():
        array = (
            values.detach().cpu().double().numpy()
            if isinstance(values, Tensor)
            else np.asarray(values, float)
        )
        defined = array[~np.isnan(array)]
        result[key] = float(defined.mean()) if defined.size else math.nan
        result[f"n_{key}"] = int(defined.size)
        by_metric.setdefault(key.split("_", 1)[0], []).append(result[key])
    for metric, means in by_metric.items():
        defined_means = [m for m in means if not math.isnan(m)]
        result[metric] = sum(defined_means) / len(defined_means) if defined_means else math.nan
    return result
