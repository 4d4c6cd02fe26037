"""Comparing models (or loss settings) trained the same way: the library behind ``unetzoo compare``.

Every entry is one fine-tuning run with the same data, split, seed and options, differing only
in its model or in one loss argument::

    OUT/<entry>/              a run folder (see :mod:`unetzoo.training.run_folder`)
    OUT/<entry>/compare.json  the entry's row, written once its run has finished
    OUT/comparison.csv  comparison.md  comparison.png

Entries run one after the other in this process (or in each process of one launcher, such
as ``torchrun``). A second call skips entries that have their ``compare.json``, resumes an
entry from its newest checkpoint when it was interrupted, and starts it again when it was
stopped before its first checkpoint.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..checkpoint import atomic_write
from .config import ConfigError, FinetuneConfig
from .run_folder import RunFolder

ROW_FILE = "compare.json"
COLUMNS = ("entry", "model", "loss", "best_val_dice", "best_val_iou", "best_epoch", "epochs", "parameters",
           "seconds", "samples_per_s")  # fmt: skip


@dataclass(frozen=True)
class Entry:
    """One run of a comparison: its folder name and the options it changes."""

    name: str
    model: str
    loss: str
    loss_args: dict[str, Any]


def parse_loss_sweep(text: str) -> tuple[str, str, list[float]]:
    """``LOSS:ARG=v1,v2,...`` (e.g. ``dice_bce:alpha=0,0.25,0.5``) as ``(loss, arg, values)``."""
    match = re.fullmatch(r"\s*([\w.-]+)\s*:\s*(\w+)\s*=\s*(.+)", text)
    if not match:
        raise ConfigError(f"--loss-sweep {text!r}: write LOSS:ARG=V1,V2,... (e.g. dice_bce:alpha=0,0.5,1)")
    loss, arg, values = match.groups()
    numbers: list[float] = []
    for token in (t.strip() for t in values.split(",")):
        try:
            numbers.append(int(token) if re.fullmatch(r"-?\d+", token) else float(token))
        except ValueError:
            raise ConfigError(f"--loss-sweep {text!r}: {token!r} is not a number; separate values by commas") from None
    if len(set(numbers)) != len(numbers):
        raise ConfigError(f"--loss-sweep {text!r}: a value is listed twice")
    return loss, arg, numbers


def plan_entries(models: Sequence[str], base: dict[str, Any], loss_sweep: str | None = None) -> list[Entry]:
    """The entries: each model, or each model × each value of the swept loss argument."""
    models = [m.strip() for m in models if m.strip()]
    if not models:
        raise ConfigError("--models: give at least one model, separated by commas")
    if len(set(models)) != len(models):
        raise ConfigError(f"--models {','.join(models)}: a model is listed twice")
    loss = str(base.get("loss") or FinetuneConfig.loss)
    loss_args = dict(base.get("loss_args") or {})
    if loss_sweep is None:
        return [Entry(_safe(m), m, loss, loss_args) for m in models]
    swept, arg, values = parse_loss_sweep(loss_sweep)
    entries = []
    for m in models:
        for v in values:
            name = f"{_safe(m)}-{swept}-{arg}={v}" if len(models) > 1 else f"{swept}-{arg}={v}"
            entries.append(Entry(name, m, swept, {**loss_args, arg: v}))
    return entries


def _safe(text: str) -> str:
    """A folder name for a model (a tag, a folder or a repo id may hold ``/``)."""
    return re.sub(r"[^\w.=-]+", "_", text).strip("_") or "model"


def compare(
    entries: Sequence[Entry],
    base: dict[str, Any],
    out: str | Path,
    *,
    quiet: bool = False,
    on_entry: Callable[[Entry, str], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every entry (``base`` options with the entry's model and loss) into ``out/<entry>``;
    the rows of the comparison, in entry order. Writes the table and chart on the main process.

    ``on_entry(entry, what)`` is told ``"skip"``, ``"resume"`` or ``"run"`` before each entry.
    """
    from .loop import finetune
    from .setup import config_for_resume

    out = Path(out)
    configs = []
    for entry in entries:  # check every entry's options before the first run starts
        values = {**base, "model": entry.model, "loss": entry.loss, "loss_args": entry.loss_args,
                  "out": str(out / entry.name)}  # fmt: skip
        configs.append(FinetuneConfig.from_dict(values, origin="options"))
    rows: list[dict[str, Any]] = []
    main = True
    for entry, config in zip(entries, configs, strict=True):
        folder = RunFolder(out / entry.name)
        done = folder.path / ROW_FILE
        if folder.is_run():
            _check_same_options(folder, config)
        if done.is_file():
            _tell(on_entry, entry, "skip")
            rows.append(json.loads(done.read_text()))
            continue
        if folder.is_run() and folder.latest_checkpoint() is not None:
            _tell(on_entry, entry, "resume")
            result = finetune(config_for_resume(folder.path, {}), resume=True, quiet=quiet)
        else:
            _tell(on_entry, entry, "run")
            result = finetune(config, overwrite=folder.path.exists(), quiet=quiet)
        main = result.main
        row = entry_row(entry, folder.path)
        if main:
            _atomic_text(done, json.dumps(row, indent=1) + "\n")
        rows.append(row)
    if main:
        write_comparison(out, rows)
    return rows


def _check_same_options(folder: RunFolder, config: FinetuneConfig) -> None:
    """Refuse to skip or resume an entry that was trained with other options than asked now."""
    from .config import read_yaml

    saved = read_yaml(folder.config)
    saved.pop("versions", None)
    wanted = config.to_dict()
    # options left to the run (None, "auto") were resolved when it started: not a difference
    changed = sorted(k for k, v in wanted.items() if v not in (None, "auto") and k in saved and saved[k] != v)
    if changed:
        key = changed[0]
        raise ConfigError(
            f"{folder.path}: trained with {key}: {saved[key]!r}, now asked {wanted[key]!r}"
            f"{f' (and {len(changed) - 1} more option(s))' if len(changed) > 1 else ''}; "
            "compare into another --out folder, or delete that entry's folder to train it again"
        )


def _tell(on_entry, entry: Entry, what: str) -> None:
    if on_entry is not None:
        on_entry(entry, what)


def entry_row(entry: Entry, run: Path) -> dict[str, Any]:
    """The comparison row of a finished run: its best validation epoch, size and speed."""
    from ..hub import from_pretrained

    metrics = RunFolder(run).read_metrics()
    if not metrics:
        raise ConfigError(f"{run}: the run logged no epoch")
    scored = [r for r in metrics if r.get("val_dice") not in (None, "")]
    best = max(scored, key=lambda r: float(r["val_dice"])) if scored else metrics[-1]
    seconds = sum(float(r.get("seconds") or 0) for r in metrics)
    speeds = [float(r["samples_per_s"]) for r in metrics if r.get("samples_per_s") not in (None, "")]
    model = from_pretrained(run / "best")
    loss = entry.loss + "".join(f" {k}={v}" for k, v in entry.loss_args.items())
    return {
        "entry": entry.name, "model": entry.model, "loss": loss,
        "best_val_dice": round(float(best.get("val_dice") or "nan"), 4),
        "best_val_iou": round(float(best.get("val_iou") or "nan"), 4),
        "best_epoch": int(best["epoch"]), "epochs": len(metrics),
        "parameters": sum(p.numel() for p in model.parameters()),
        "seconds": round(seconds, 1), "samples_per_s": round(sum(speeds) / len(speeds), 2) if speeds else None,
        "history": [[int(r["epoch"]), float(r["val_dice"])] for r in scored],
    }  # fmt: skip


def write_comparison(out: Path, rows: Sequence[dict[str, Any]]) -> list[Path]:
    """``comparison.csv``, ``comparison.md`` and ``comparison.png`` (validation Dice per epoch)."""
    out.mkdir(parents=True, exist_ok=True)
    text = io.StringIO()
    writer = csv.DictWriter(text, COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _atomic_text(out / "comparison.csv", text.getvalue())
    header = "| " + " | ".join(COLUMNS) + " |"
    table = [header, "|" + "---|" * len(COLUMNS)]
    for row in rows:
        table.append("| " + " | ".join(_md_cell(row.get(c)) for c in COLUMNS) + " |")
    _atomic_text(out / "comparison.md", "\n".join(table) + "\n")
    from ..viz import save_lines

    series = {row["entry"]: row.get("history", []) for row in rows}
    save_lines(out / "comparison.png", series, xlabel="epoch", ylabel="validation Dice",
               title="validation Dice per epoch")  # fmt: skip
    return [out / "comparison.csv", out / "comparison.md", out / "comparison.png"]


def _md_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 10_000:
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def _atomic_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
