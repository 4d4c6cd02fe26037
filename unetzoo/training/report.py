"""What a run shows while it trains: rich progress bars, or one plain line per epoch."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class Reporter:
    """Progress of the main process; ``quiet`` keeps only the per-epoch summary lines."""

    def __init__(self, enabled: bool, quiet: bool) -> None:
        self.enabled, self.quiet = enabled, quiet
        self.console = Console(stderr=False, highlight=False, soft_wrap=True)
        self.progress: Progress | None = None
        self.task = None

    def message(self, text: str) -> None:
        if self.enabled:
            self.console.print(text)

    def start_epoch(self, epoch: int, epochs: int, total: int, done: int) -> None:
        if not self.enabled or self.quiet:
            return
        self.progress = Progress(
            TextColumn(f"epoch {epoch + 1}/{epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  {task.fields[speed]:.1f} samples/s"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=total, completed=done, loss=float("nan"), speed=0.0)

    def step(self, loss: float, speed: float) -> None:
        if self.progress is not None:
            self.progress.update(self.task, advance=1, loss=loss, speed=speed)

    def end_epoch(self, row: dict[str, Any], improved: bool) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        if not self.enabled:
            return
        parts = [f"epoch {row['epoch']}", f"step {row['step']}"]
        for key in ("train_loss", "val_loss", "val_dice", "val_iou", "ema_val_dice"):
            if isinstance(row.get(key), float):
                parts.append(f"{key} {row[key]:.4f}")
        parts.append(f"{row['samples_per_s']:.1f} samples/s")
        self.console.print("  ".join(parts) + ("  [green]best[/green]" if improved else ""))

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
