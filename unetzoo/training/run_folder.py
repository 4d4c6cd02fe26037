"""The run folder: what a fine-tuning run writes, and how each part is replaced safely.

```
RUN/config.yaml   split.json   metrics.csv   curves.png   samples/epoch_NNN.png
RUN/checkpoints/step_000000120/   (Accelerate save_state + trainer_state.json)
RUN/best/  RUN/last/              (save_pretrained folders)
```

Folders are written under a temporary name and renamed into place, so a checkpoint is
complete or absent, and ``best/``/``last/`` always hold a loadable model: the previous folder
is moved aside before the new one takes its name, and put back by :meth:`RunFolder.recover`
if a crash came in between.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHECKPOINT_PREFIX = "step_"
STATE_NAME = "trainer_state.json"


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked (exists, missing, not writable)."""


class RunFolder:
    """Paths and safe writes inside one run folder."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"
        self.config = self.path / "config.yaml"
        self.split = self.path / "split.json"
        self.metrics = self.path / "metrics.csv"

    def is_run(self) -> bool:
        """Whether the folder holds a run (a ``config.yaml``)."""
        return self.config.is_file()

    def check_new(self, overwrite: bool) -> None:
        """Refuse an existing, non-empty folder unless ``overwrite``; nothing is written here."""
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(f"--out {self.path}: exists and is not a folder")
        if self.path.is_dir() and any(self.path.iterdir()) and not overwrite:
            raise RunFolderError(
                f"--out {self.path}: the folder exists; continue it with --resume {self.path}, "
                "or replace it with --overwrite"
            )

    def create(self, overwrite: bool) -> None:
        """Make the folder (emptied first with ``overwrite``) and check it is writable."""
        try:
            if overwrite and self.path.is_dir():
                shutil.rmtree(self.path)
            self.checkpoints.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise RunFolderError(f"--out {self.path}: cannot write there ({_reason(exc)})") from exc

    def latest_checkpoint(self) -> Path | None:
        """The newest complete checkpoint (by step), or ``None``."""
        done = [p for p in self._checkpoint_dirs() if (p / STATE_NAME).is_file()]
        return done[-1] if done else None

    def _checkpoint_dirs(self) -> list[Path]:
        if not self.checkpoints.is_dir():
            return []
        found = [p for p in self.checkpoints.iterdir() if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX)]
        return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX) :]))

    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoints / f"{CHECKPOINT_PREFIX}{step:09d}"

    def temporary_checkpoint(self, step: int) -> Path:
        """Where a checkpoint is written before it is renamed into place (same name on every process)."""
        return self.checkpoints / f".tmp-{CHECKPOINT_PREFIX}{step:09d}"

    def finish_checkpoint(self, step: int, state: dict[str, Any], keep: int) -> Path:
        """Add the trainer state to the written checkpoint, rename it into place, drop old ones."""
        tmp, final = self.temporary_checkpoint(step), self.checkpoint_path(step)
        (tmp / STATE_NAME).write_text(json.dumps(state, indent=1) + "\n")
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        for old in self._checkpoint_dirs()[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def replace_folder(self, name: str, write: Callable[[Path], None]) -> Path:
        """Write a folder through ``write(tmp)`` and swap it in for ``RUN/name``."""
        final, tmp, old = self.path / name, self.path / f".{name}.tmp", self.path / f".{name}.old"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            write(tmp)
        except Exception as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise as_os_error(exc, final) from exc
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
        return final

    def recover(self) -> None:
        """Undo what a crash left half done: put back a moved-aside folder, drop temporaries."""
        for name in ("best", "last"):
            old = self.path / f".{name}.old"
            if old.is_dir() and not (self.path / name).exists():
                old.rename(self.path / name)
            for leftover in (old, self.path / f".{name}.tmp"):
                shutil.rmtree(leftover, ignore_errors=True)
        if self.checkpoints.is_dir():
            for tmp in self.checkpoints.glob(".tmp-*"):
                shutil.rmtree(tmp, ignore_errors=True)
        for tmp in self.path.glob(".*.tmp"):
            if tmp.is_file():
                tmp.unlink()

    # ------------------------------------------------------------------ metrics.csv

    def read_metrics(self) -> list[dict[str, str]]:
        if not self.metrics.is_file():
            return []
        with self.metrics.open(newline="") as f:
            return list(csv.DictReader(f))

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        """Rewrite ``metrics.csv`` atomically with ``rows`` (columns: the union, in first-seen order)."""
        columns: list[str] = []
        for row in rows:
            columns += [k for k in row if k not in columns]
        tmp = self.metrics.with_name(".metrics.csv.tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        tmp.replace(self.metrics)


def _reason(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return f"no space left: {exc.strerror}"
    return exc.strerror or str(exc)


def as_os_error(exc: Exception, path: Path) -> OSError:
    """An ``OSError`` naming ``path`` for a failed write; safetensors reports I/O errors as its own type."""
    if isinstance(exc, OSError):
        return exc
    found = re.search(r"os error (\d+)", str(exc))
    code = int(found.group(1)) if found else errno.EIO
    return OSError(code, os.strerror(code), str(path))


def describe_os_error(exc: OSError) -> str:
    """``path: reason`` for a failed write, for one-line error messages."""
    where = exc.filename or ""
    return f"{where}: cannot write ({_reason(exc)})" if where else f"cannot write ({_reason(exc)})"
