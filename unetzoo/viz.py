"""Pictures: learning curves, prediction panels with error maps, probability heat maps,
attention maps, mask evolution across checkpoints and orthogonal slices of volumes.

Every function takes numpy arrays (images ``(C, *S)`` as the model sees them, masks as class
ids) and writes a PNG through a temporary file with matplotlib's Agg backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .checkpoint import atomic_write

# A fixed palette: class 1 red, 2 green, 3 blue, ... (class 0, background, is not drawn).
PALETTE = np.array([[0, 0, 0], [230, 40, 40], [40, 200, 60], [50, 110, 240], [240, 200, 30],
                    [200, 60, 220], [30, 210, 210], [250, 130, 20], [150, 150, 150]], dtype=np.float32)  # fmt: skip


# Error maps: correct foreground white, false positives red, false negatives blue, outside
# the region of interest dark grey. Mask evolution: newly correct green, newly wrong orange.
TRUE_POSITIVE = np.array([255, 255, 255], dtype=np.float32) / 255
FALSE_POSITIVE = np.array([240, 50, 50], dtype=np.float32) / 255
FALSE_NEGATIVE = np.array([40, 120, 255], dtype=np.float32) / 255
OUTSIDE = np.array([40, 40, 40], dtype=np.float32) / 255
NEWLY_CORRECT = np.array([40, 220, 60], dtype=np.float32) / 255
NEWLY_WRONG = np.array([255, 150, 0], dtype=np.float32) / 255


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    """Save through a temporary file so a crash never leaves a half-written picture."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))


def display_image(image: np.ndarray) -> np.ndarray:
    """A ``(C, H, W)`` float image (normalised) as ``H×W×3`` in [0, 1], stretched per image."""
    img = np.asarray(image, dtype=np.float32)
    img = img[:3] if img.shape[0] >= 3 else np.repeat(img[:1], 3, axis=0)
    img = np.moveaxis(img, 0, -1)
    lo, hi = np.percentile(img, 1), np.percentile(img, 99)
    return np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1)


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """``image`` (``H×W×3`` in [0, 1]) with each class of ``mask`` (``H×W`` ids) tinted by the palette."""
    colours = PALETTE[np.asarray(mask) % len(PALETTE)] / 255
    drawn = (np.asarray(mask) > 0)[..., None]
    return np.where(drawn, (1 - alpha) * image + alpha * colours, image)


def save_samples(path: Path, images: Sequence[np.ndarray], truths: Sequence[np.ndarray],
                 predictions: Sequence[np.ndarray], ids: Sequence[str], title: str = "") -> Path:  # fmt: skip
    """One row per sample: image, ground truth overlay, prediction overlay (2D; volumes: middle slice)."""
    plt = _pyplot()
    rows = len(images)
    fig, axes = plt.subplots(rows, 3, figsize=(9, 3 * rows), squeeze=False)
    for r, (img, truth, pred, name) in enumerate(zip(images, truths, predictions, ids, strict=True)):
        if np.asarray(truth).ndim == 3:  # a volume: show its middle slice
            mid = np.asarray(truth).shape[0] // 2
            img, truth, pred = img[:, mid], truth[mid], pred[mid]
        shown = display_image(img)
        for c, (panel, label) in enumerate(((shown, name), (overlay(shown, truth), "ground truth"),
                                            (overlay(shown, pred), "prediction"))):  # fmt: skip
            axes[r][c].imshow(panel)
            axes[r][c].set_title(label, fontsize=8)
            axes[r][c].axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path


def save_curves(path: Path, rows: Sequence[dict]) -> Path:
    """Loss (train and validation), Dice and IoU, and learning rate per epoch from ``metrics.csv`` rows."""
    plt = _pyplot()

    def column(name: str) -> tuple[list[float], list[float]]:
        pairs = [(float(r["epoch"]), float(r[name])) for r in rows if r.get(name) not in (None, "")]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    panels = (("loss", ("train_loss", "val_loss")), ("overlap", ("val_dice", "val_iou", "ema_val_dice")),
              ("learning rate", ("lr",)))  # fmt: skip
    for ax, (title, names) in zip(axes, panels, strict=True):
        for name in names:
            x, y = column(name)
            if x:
                ax.plot(x, y, marker="o", markersize=3, label=name)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path


def error_map(truth: np.ndarray, pred: np.ndarray, roi: np.ndarray | None = None) -> np.ndarray:
    """``H×W×3`` in [0, 1]: correct foreground white, false positives red, false negatives blue.

    A pixel predicted as the wrong foreground class counts as a false positive; pixels
    outside ``roi`` are dark grey; correct background stays black.
    """
    truth, pred = np.asarray(truth), np.asarray(pred)
    out = np.zeros((*truth.shape, 3), dtype=np.float32)
    out[(pred == truth) & (truth > 0)] = TRUE_POSITIVE
    out[(pred != truth) & (pred > 0)] = FALSE_POSITIVE
    out[(pred != truth) & (pred == 0)] = FALSE_NEGATIVE
    if roi is not None:
        out[~np.asarray(roi, dtype=bool)] = OUTSIDE
    return out


def foreground_probability(probs: np.ndarray) -> np.ndarray:
    """``(C, *S)`` probabilities as one map: the foreground channel (one channel) or ``1 - p(background)``."""
    probs = np.asarray(probs, dtype=np.float32)
    return probs[0] if probs.shape[0] == 1 else 1 - probs[0]


def save_prediction(path: Path, image: np.ndarray, probs: np.ndarray, pred: np.ndarray,
                    truth: np.ndarray | None = None, roi: np.ndarray | None = None, title: str = "") -> Path:  # fmt: skip
    """One row: image, prediction overlay, probability heat map, and with ``truth`` the ground
    truth overlay and the error map (2D)."""
    plt = _pyplot()
    shown = display_image(image)
    panels: list[tuple[str, np.ndarray, dict]] = [("image", shown, {})]
    if truth is not None:
        panels.append(("ground truth", overlay(shown, truth), {}))
    panels.append(("prediction", overlay(shown, pred), {}))
    if truth is not None:
        panels.append(("errors: FP red, FN blue", error_map(truth, pred, roi), {}))
    panels.append(("foreground probability", foreground_probability(probs), {"cmap": "magma", "vmin": 0, "vmax": 1}))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4), squeeze=False)
    for ax, (label, picture, style) in zip(axes[0], panels, strict=True):
        drawn = ax.imshow(picture, **style)
        ax.set_title(label, fontsize=8)
        ax.axis("off")
    fig.colorbar(drawn, ax=axes[0][-1], fraction=0.046, pad=0.04)
    return _finish(plt, fig, path, title)


def save_attention(path: Path, image: np.ndarray, maps: dict[str, np.ndarray], title: str = "") -> Path:
    """The image, then one panel per attention block (``{name: map}``, each ``h×w`` in [0, 1]),
    resized to the image and drawn as a heat map over it, labelled with its name and size."""
    plt = _pyplot()
    shown = display_image(image)
    size = shown.shape[:2]
    fig, axes = plt.subplots(1, len(maps) + 1, figsize=(3.2 * (len(maps) + 1), 3.4), squeeze=False)
    axes[0][0].imshow(shown)
    axes[0][0].set_title("image", fontsize=8)
    for ax, (name, coefficients) in zip(axes[0][1:], maps.items(), strict=True):
        ax.imshow(shown)
        drawn = ax.imshow(_resized(coefficients, size), cmap="jet", alpha=0.5, vmin=0, vmax=1)
        ax.set_title(f"{name} ({'x'.join(map(str, np.shape(coefficients)))})", fontsize=7)
    for ax in axes[0]:
        ax.axis("off")
    if maps:
        fig.colorbar(drawn, ax=axes[0][-1], fraction=0.046, pad=0.04)
    return _finish(plt, fig, path, title)


def save_evolution(path: Path, images: Sequence[np.ndarray], truths: Sequence[np.ndarray],
                   predictions: Sequence[Sequence[np.ndarray]], labels: Sequence[str], ids: Sequence[str]) -> Path:  # fmt: skip
    """Mask evolution: rows are images, columns checkpoints (``predictions[row][column]``).

    The first column is the error map of the first checkpoint; each later column shows the
    prediction over the image with the pixels that became correct since the previous
    column in green and those that became wrong in orange, and its Dice in the title.
    """
    plt = _pyplot()
    rows, cols = len(images), len(labels)
    fig, axes = plt.subplots(rows, cols + 1, figsize=(2.8 * (cols + 1), 2.9 * rows), squeeze=False)
    for r, (img, truth, preds, name) in enumerate(zip(images, truths, predictions, ids, strict=True)):
        shown = display_image(img)
        axes[r][0].imshow(overlay(shown, truth))
        axes[r][0].set_title(f"{name}: ground truth", fontsize=7)
        for c, pred in enumerate(preds):
            picture = error_map(truth, pred) if c == 0 else changes(shown, truth, preds[c - 1], pred)
            axes[r][c + 1].imshow(picture)
            axes[r][c + 1].set_title(f"{labels[c]}: Dice {_dice(truth, pred):.3f}", fontsize=7)
        for ax in axes[r]:
            ax.axis("off")
    note = "first column: FP red, FN blue; then newly correct green, newly wrong orange"
    return _finish(plt, fig, path, note)


def changes(shown: np.ndarray, truth: np.ndarray, before: np.ndarray, now: np.ndarray) -> np.ndarray:
    """``now`` over the image (``H×W×3`` in [0, 1]), pixels that became correct since ``before``
    green, pixels that became wrong orange."""
    right_before, right_now = np.asarray(before) == truth, np.asarray(now) == truth
    picture = overlay(shown, now, alpha=0.3)
    picture[right_now & ~right_before] = NEWLY_CORRECT
    picture[right_before & ~right_now] = NEWLY_WRONG
    return picture


def save_slices(path: Path, volume: np.ndarray, pred: np.ndarray, truth: np.ndarray | None = None,
                centre: Sequence[int] | None = None, title: str = "") -> Path:  # fmt: skip
    """Three orthogonal slices (axial, coronal, sagittal of a ``(C, D, H, W)`` volume) through
    ``centre`` (default: the centre of the ground truth, else of the predicted mask, else of
    the volume), with the prediction and, when given, the ground truth drawn over them."""
    plt = _pyplot()
    pred = np.asarray(pred)
    if centre is None:
        found = np.argwhere((np.asarray(truth) if truth is not None else pred) > 0)
        centre = found.mean(0).round().astype(int) if len(found) else np.array(pred.shape) // 2
    rows = [("prediction", pred)] + ([("ground truth", np.asarray(truth))] if truth is not None else [])
    fig, axes = plt.subplots(len(rows), 3, figsize=(10, 3.4 * len(rows)), squeeze=False)
    for r, (label, mask) in enumerate(rows):
        for axis, plane in enumerate(("axial", "coronal", "sagittal")):
            index = int(centre[axis])
            img = np.take(volume, index, axis=axis + 1)
            shown = display_image(img)
            axes[r][axis].imshow(overlay(shown, np.take(mask, index, axis=axis)), origin="lower")
            axes[r][axis].set_title(f"{label}: {plane} slice {index}", fontsize=8)
            axes[r][axis].axis("off")
    return _finish(plt, fig, path, title)


def save_lines(path: Path, series: dict[str, Sequence[Sequence[float]]], *, xlabel: str, ylabel: str,
               title: str = "") -> Path:  # fmt: skip
    """One line per ``{label: [[x, y], ...]}`` on shared axes (e.g. validation Dice per epoch of several runs)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, points in series.items():
        if len(points):
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", markersize=3, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8)
    return _finish(plt, fig, path, title)


def _resized(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A 2D map bilinearly resized to ``size``."""
    import torch
    import torch.nn.functional as F

    t = torch.as_tensor(np.asarray(array, dtype=np.float32))[None, None]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


def _dice(truth: np.ndarray, pred: np.ndarray) -> float:
    """Dice of the foreground (every class but 0) as one set; 1 when both are empty."""
    t, p = np.asarray(truth) > 0, np.asarray(pred) > 0
    total = t.sum() + p.sum()
    return 1.0 if total == 0 else float(2 * (t & p & (np.asarray(truth) == np.asarray(pred))).sum() / total)


def _finish(plt, fig, path: Path, title: str) -> Path:
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path
