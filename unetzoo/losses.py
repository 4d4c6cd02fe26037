"""Segmentation losses in binary, multi-class and multi-label modes.

``create_loss(name, **kw)`` builds one by name; ``list_losses()`` lists the names (plugins
add theirs through the ``unetzoo.losses`` entry points). Shapes:

- ``binary``: logits ``(N, 1, *S)``, target ``(N, *S)`` or ``(N, 1, *S)`` in {0, 1};
- ``multiclass``: logits ``(N, C, *S)``, target ``(N, *S)`` with class ids;
- ``multilabel``: logits ``(N, C, *S)``, target ``(N, C, *S)`` in {0, 1}.

``ignore_index`` marks target pixels that count nowhere (in multilabel mode, a pixel whose
target equals it in any channel). Region losses (Dice, Tversky) sum over the batch and
space per class, then average over classes (``class_weights`` weight that average).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .registry import Registry

LOSSES = Registry("loss", group="unetzoo.losses", listing="unetzoo.list_losses()")
MODES = ("binary", "multiclass", "multilabel")


def list_losses(pattern: str = "*") -> list[str]:
    """Loss names matching ``pattern``."""
    return LOSSES.names(pattern)


def create_loss(name: str, **kwargs) -> nn.Module:
    """The loss registered as ``name`` built with ``kwargs`` (e.g. ``mode="multiclass"``)."""
    return LOSSES.get(name)(**kwargs)


class SegmentationLoss(nn.Module):
    """Turns logits and targets into probabilities, one-hot targets and a validity mask."""

    def __init__(
        self,
        mode: str = "binary",
        *,
        ignore_index: int | None = None,
        class_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"unknown loss mode {mode!r}; choose one of {', '.join(MODES)}")
        self.mode = mode
        self.ignore_index = ignore_index
        weights = torch.as_tensor(class_weights, dtype=torch.float32) if class_weights is not None else None
        self.register_buffer("class_weights", weights, persistent=False)

    def prepare(self, logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(probs, onehot, valid)``: all ``(N, C, *S)`` float; ``valid`` is 1 where the pixel counts."""
        if self.mode == "binary":
            if logits.shape[1] != 1:
                raise ValueError(f"binary mode expects logits (N, 1, ...), got {tuple(logits.shape)}")
            if target.dim() == logits.dim() - 1:
                target = target.unsqueeze(1)
            valid = self._valid(target, logits.dtype)
            onehot = torch.where(valid.bool(), target, torch.zeros_like(target)).to(logits.dtype)
            return torch.sigmoid(logits), onehot, valid.expand_as(logits)
        if self.mode == "multiclass":
            if target.dim() != logits.dim() - 1:
                raise ValueError(
                    f"multiclass mode expects targets (N, *S) of class ids, got {tuple(target.shape)} "
                    f"for logits {tuple(logits.shape)}"
                )
            valid = self._valid(target, logits.dtype).unsqueeze(1)
            ids = torch.where(valid[:, 0].bool(), target, torch.zeros_like(target)).long()
            if ids.numel() and int(ids.max()) >= logits.shape[1]:
                raise ValueError(f"target class id {int(ids.max())} >= number of classes {logits.shape[1]}")
            onehot = F.one_hot(ids, logits.shape[1]).movedim(-1, 1).to(logits.dtype)
            return logits.softmax(1), onehot, valid.expand_as(logits)
        if target.shape != logits.shape:
            raise ValueError(f"multilabel mode expects targets shaped like logits {tuple(logits.shape)}")
        valid = self._valid(target, logits.dtype).amin(1, keepdim=True).expand_as(logits)
        onehot = torch.where(valid.bool(), target, torch.zeros_like(target)).to(logits.dtype)
        return torch.sigmoid(logits), onehot, valid

    def _valid(self, target: Tensor, dtype: torch.dtype) -> Tensor:
        if self.ignore_index is None:
            return torch.ones_like(target, dtype=dtype)
        return (target != self.ignore_index).to(dtype)

    def class_mean(self, per_class: Tensor) -> Tensor:
        """Average of a per-class vector, weighted by ``class_weights`` when given."""
        if self.class_weights is None:
            return per_class.mean()
        w = self.class_weights.to(per_class)
        if w.numel() != per_class.numel():
            raise ValueError(f"class_weights has {w.numel()} values for {per_class.numel()} classes")
        return (per_class * w).sum() / w.sum()


def _sum_but_class(t: Tensor) -> Tensor:
    return t.sum(dim=[d for d in range(t.dim()) if d != 1])


class TverskyLoss(SegmentationLoss):
    """``1 - (TP + s) / (TP + alpha FP + beta FN + s)`` per class, raised to ``gamma``.

    ``alpha = beta = 0.5`` is the Dice loss; ``gamma < 1`` is the focal Tversky loss
    (Abraham & Khan 2019, arXiv:1810.07842). Salehi et al. 2017 (arXiv:1706.05721) use
    alpha 0.3, beta 0.7.
    """

    def __init__(self, mode: str = "binary", *, alpha: float = 0.3, beta: float = 0.7,
                 gamma: float = 1.0, smooth: float = 1.0, **kw) -> None:  # fmt: skip
        super().__init__(mode, **kw)
        self.alpha, self.beta, self.gamma, self.smooth = alpha, beta, gamma, smooth

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        probs, onehot, valid = self.prepare(logits, target)
        probs, onehot = probs * valid, onehot * valid
        tp = _sum_but_class(probs * onehot)
        fp = _sum_but_class(probs * (1 - onehot))
        fn = _sum_but_class((1 - probs) * onehot)
        index = (tp + self.smooth) / (tp + self.alpha * fp + self.beta * fn + self.smooth)
        return self.class_mean((1 - index).clamp_min(0) ** self.gamma)


class DiceLoss(TverskyLoss):
    """Soft Dice loss ``1 - (2 TP + s) / (2 TP + FP + FN + s)`` per class (Milletari et al. 2016)."""

    def __init__(self, mode: str = "binary", *, smooth: float = 1.0, **kw) -> None:
        # Tversky with alpha = beta = 1/2 and smooth/2 is exactly (2 TP + s) / (2 TP + FP + FN + s)
        super().__init__(mode, alpha=0.5, beta=0.5, gamma=1.0, smooth=smooth / 2, **kw)


class FocalTverskyLoss(TverskyLoss):
    """Tversky loss raised to ``gamma`` (default 0.75 = 1/(4/3), Abraham & Khan 2019)."""

    def __init__(self, mode: str = "binary", *, alpha: float = 0.3, beta: float = 0.7,
                 gamma: float = 0.75, smooth: float = 1.0, **kw) -> None:  # fmt: skip
        super().__init__(mode, alpha=alpha, beta=beta, gamma=gamma, smooth=smooth, **kw)


class FocalLoss(SegmentationLoss):
    """Focal loss ``-alpha_t (1 - p_t)^gamma log p_t`` averaged over valid pixels (Lin et al. 2017).

    Binary/multilabel: ``alpha`` weights positives (0.25) and ``1 - alpha`` negatives.
    Multiclass: softmax probabilities; ``class_weights`` weight each pixel by its class.
    """

    def __init__(self, mode: str = "binary", *, alpha: float | None = 0.25, gamma: float = 2.0, **kw) -> None:
        super().__init__(mode, **kw)
        self.alpha, self.gamma = alpha, gamma

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        probs, onehot, valid = self.prepare(logits, target)
        if self.mode == "multiclass":
            log_p = F.log_softmax(logits, 1)
            log_pt = (log_p * onehot).sum(1)
            pt = log_pt.exp()
            loss = -((1 - pt) ** self.gamma) * log_pt
            if self.class_weights is not None:
                loss = loss * (
                    self.class_weights.to(loss).view(1, -1, *[1] * (logits.dim() - 2)) * onehot
                ).sum(1)
            v = valid[:, 0]
            return (loss * v).sum() / v.sum().clamp_min(1)
        bce = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none")
        pt = torch.where(onehot > 0.5, probs, 1 - probs)
        loss = (1 - pt) ** self.gamma * bce
        if self.alpha is not None:
            loss = loss * torch.where(onehot > 0.5, self.alpha, 1 - self.alpha)
        if self.class_weights is not None:
            loss = loss * self.class_weights.to(loss).view(1, -1, *[1] * (logits.dim() - 2))
        return (loss * valid).sum() / valid.sum().clamp_min(1)


class BCELoss(SegmentationLoss):
    """Binary cross-entropy with logits over valid pixels (binary and multilabel modes)."""

    def __init__(self, mode: str = "binary", *, pos_weight: float | None = None, **kw) -> None:
        super().__init__(mode, **kw)
        if mode == "multiclass":
            raise ValueError("bce is for binary and multilabel modes; use 'ce' for multiclass")
        self.pos_weight = pos_weight

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        _, onehot, valid = self.prepare(logits, target)
        pw = torch.tensor(self.pos_weight, device=logits.device) if self.pos_weight is not None else None
        loss = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none", pos_weight=pw)
        return (loss * valid).sum() / valid.sum().clamp_min(1)


class CELoss(SegmentationLoss):
    """Cross-entropy over class ids (multiclass mode), ``class_weights`` and ``ignore_index`` supported."""

    def __init__(self, mode: str = "multiclass", *, label_smoothing: float = 0.0, **kw) -> None:
        super().__init__(mode, **kw)
        if mode != "multiclass":
            raise ValueError("ce is for multiclass mode; use 'bce' for binary and multilabel")
        self.label_smoothing = label_smoothing

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        w = self.class_weights.to(logits) if self.class_weights is not None else None
        ignore = self.ignore_index if self.ignore_index is not None else -100
        return F.cross_entropy(logits, target.long(), weight=w, ignore_index=ignore,
                               label_smoothing=self.label_smoothing)  # fmt: skip


class CombinedLoss(nn.Module):
    """``weight * first + (1 - weight) * second``."""

    def __init__(self, first: nn.Module, second: nn.Module, weight: float = 0.5) -> None:
        super().__init__()
        self.first, self.second, self.weight = first, second, weight

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return self.weight * self.first(logits, target) + (1 - self.weight) * self.second(logits, target)


def dice_bce(mode: str = "binary", *, alpha: float = 0.5, **kw) -> CombinedLoss:
    """``alpha * Dice + (1 - alpha) * BCE`` (cross-entropy in multiclass mode)."""
    second = CELoss(mode, **kw) if mode == "multiclass" else BCELoss(mode, **kw)
    return CombinedLoss(DiceLoss(mode, **kw), second, alpha)


def dice_focal(mode: str = "binary", *, alpha: float = 0.5, gamma: float = 2.0,
               class_weights: Sequence[float] | None = None, **kw) -> CombinedLoss:  # fmt: skip
    """``alpha * Dice + (1 - alpha) * focal``; ``class_weights`` weight both per class."""
    focal_alpha = kw.pop("focal_alpha", None if mode == "multiclass" else 0.25)
    return CombinedLoss(
        DiceLoss(mode, class_weights=class_weights, **kw),
        FocalLoss(mode, alpha=focal_alpha, gamma=gamma, class_weights=class_weights, **kw),
        alpha,
    )


class DeepSupervisionLoss(nn.Module):
    """A loss over a list of outputs (deep supervision): ``sum(w_i * loss(out_i, target))``.

    ``weights`` default to halving from the final output on (1, 0.5, 0.25, …), normalised to
    sum to 1. A single tensor passes straight to ``loss``.
    """

    def __init__(self, loss: nn.Module, weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.loss, self.weights = loss, list(weights) if weights is not None else None

    def forward(self, outputs: Tensor | Sequence[Tensor], target: Tensor) -> Tensor:
        if isinstance(outputs, Tensor):
            return self.loss(outputs, target)
        weights = self.weights or [0.5**i for i in range(len(outputs))]
        if len(weights) != len(outputs):
            raise ValueError(f"{len(weights)} weights for {len(outputs)} deep-supervision outputs")
        total = sum(weights)
        return sum(w / total * self.loss(o, target) for w, o in zip(weights, outputs, strict=True))


for _name, _factory in {
    "bce": BCELoss, "ce": CELoss, "dice": DiceLoss, "tversky": TverskyLoss,
    "focal_tversky": FocalTverskyLoss, "focal": FocalLoss, "dice_bce": dice_bce, "dice_focal": dice_focal,
}.items():  # fmt: skip
    LOSSES.add(_name, _factory)
