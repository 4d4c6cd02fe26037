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
"""

from __future__ import annotations

from collections.abc import Sequence

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
    if mode not in MODES:
        raise ValueError(f"unknown metric mode {mode!r}; choose one of {', '.join(MODES)}")
    if logits.dim() < 3:
        raise ValueError(f"logits must be (N, C, *S), got {tuple(logits.shape)}")
    n, c, *spatial = logits.shape
    if num_classes is not None and num_classes != c:
        raise ValueError(f"num_classes={num_classes} but logits have {c} channels")
    if mode == "binary" and c != 1:
        raise ValueError(f"binary mode expects logits (N, 1, *S), got {tuple(logits.shape)}")
    x = logits.detach()
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()

    if mode == "binary" and target.dim() == logits.dim() - 1:
        target = target.unsqueeze(1)
    expected = (n, *spatial) if mode == "multiclass" else (n, 1 if mode == "binary" else c, *spatial)
    if tuple(target.shape) != expected:
        raise ValueError(f"{mode} mode expects target {expected}, got {tuple(target.shape)}")
    valid = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index
    if mode != "multiclass":
        valid = valid.all(1, keepdim=True)
    if roi is not None:
        roi = roi.bool()
        if mode == "multiclass" and roi.dim() == logits.dim():
            roi = roi.squeeze(1)
        elif mode != "multiclass" and roi.dim() == logits.dim() - 1:
            roi = roi.unsqueeze(1)
        if roi.shape != valid.shape:
            raise ValueError(f"roi must be (N, *S) = {(n, *spatial)}, got {tuple(roi.shape)}")
        valid = valid & roi

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
