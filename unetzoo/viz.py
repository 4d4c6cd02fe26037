"""Pictures of training: learning curves, and image / ground truth / prediction panels."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# A fixed palette: class 1 red, 2 green, 3 blue, ... (class 0, background, is not drawn).
PALETTE = np.array([[0, 0, 0], [230, 40, 40], [40, 200, 60], [50, 110, 240], [240, 200, 30],
                    [200, 60, 220], [30, 210, 210], [250, 130, 20], [150, 150, 150]], dtype=np.float32)  # fmt: skip


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    """Save through a temporary file so a crash never leaves a half-written picture."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png", dpi=100)
    os.replace(tmp, path)


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
