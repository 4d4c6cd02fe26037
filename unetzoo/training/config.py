"""The fine-tuning options: one dataclass, read from YAML and flags, written back as ``config.yaml``.

Precedence: the dataclass defaults, then a YAML file (``--config``), then command-line flags.
``config.yaml`` in a run folder holds every resolved option, so ``--config RUN/config.yaml``
repeats the run.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHOICES: dict[str, tuple[str, ...]] = {
    "optimizer": ("adamw", "adam", "sgd"),
    "scheduler": ("onecycle", "cosine", "poly", "plateau", "none"),
    "mixed_precision": ("auto", "no", "fp16", "bf16"),
    "preset": ("none", "light", "standard", "heavy"),
    "mode": ("auto", "binary", "multiclass"),
    "device": ("auto", "cpu", "cuda"),
}
# Options that may differ when a run is resumed: they change how long or how it is watched,
# not what has been computed so far.
RESUMABLE_CHANGES = frozenset({"epochs", "max_steps", "workers", "log_with", "keep_checkpoints",
                               "checkpoint_every", "early_stop"})  # fmt: skip


class ConfigError(ValueError):
    """An option with a wrong value, type or name; the message names the option."""


@dataclass
class FinetuneConfig:
    """Every option of a fine-tuning run; see ``unetzoo finetune --help`` for each one."""

    model: str = ""
    data: str = ""
    out: str = ""
    # model
    model_args: dict[str, Any] = field(default_factory=dict)
    pretrained: str | None = None
    encoder_weights: str | None = None
    classes: int | None = None
    in_channels: int | None = None
    # data
    format: str | None = None
    data_args: dict[str, Any] = field(default_factory=dict)
    val: float = 0.2
    folds: int | None = None
    fold: int = 0
    split: str | None = None
    size: str | None = None
    crop: str | None = None
    crop_foreground: float = 0.7
    repeats: int = 1
    preset: str = "standard"
    clahe: bool = False
    batch_size: int = 8
    val_batch_size: int | None = None
    accumulate: int = 1
    workers: int = 2
    drop_last: bool = True
    # loss
    loss: str = "dice_bce"
    loss_args: dict[str, Any] = field(default_factory=dict)
    mode: str = "auto"
    ignore_index: int | None = None
    aux_loss_weight: float = 0.2
    # optimisation
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    encoder_lr_mult: float = 1.0
    freeze_encoder_epochs: int = 0
    scheduler: str = "cosine"
    warmup: int = 0
    min_lr: float = 0.0
    clip: float | None = None
    ema: float | None = None
    epochs: int = 10
    max_steps: int | None = None
    early_stop: int | None = None
    monitor: str = "val_dice"
    monitor_mode: str = "max"
    threshold: float = 0.5
    seed: int = 0
    deterministic: bool = False
    # speed and device
    device: str = "auto"
    mixed_precision: str = "auto"
    channels_last: bool | None = None
    compile: bool = False
    gradient_checkpointing: bool = False
    # run folder and logging
    checkpoint_every: int | None = None
    keep_checkpoints: int = 2
    samples: int = 4
    log_with: str | None = None

    @classmethod
    def names(cls) -> list[str]:
        """The option names, in declaration order."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: dict[str, Any], origin: str = "options") -> FinetuneConfig:
        """Build from a mapping; unknown names are a :class:`ConfigError` listing the closest ones."""
        known = cls.names()
        for key in values:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise ConfigError(f"{origin}: unknown option {key!r}{hint}")
        config = cls(**values)
        config.validate()
        return config

    def to_dict(self) -> dict[str, Any]:
        """Plain values (lists, dicts, numbers, strings) for YAML."""
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Check choices, ranges and types; raise a :class:`ConfigError` naming the option."""
        for name, choices in CHOICES.items():
            value = getattr(self, name)
            if value not in choices:
                close = difflib.get_close_matches(str(value), choices, n=2)
                hint = f" (closest: {', '.join(close)})" if close else ""
                raise ConfigError(f"--{_flag(name)} {value!r}: choose one of {', '.join(choices)}{hint}")
        for name in ("batch_size", "accumulate", "epochs", "keep_checkpoints", "repeats"):
            _check_int(name, getattr(self, name), minimum=1)
        for name in ("workers", "freeze_encoder_epochs", "warmup", "samples", "fold", "seed"):
            _check_int(name, getattr(self, name), minimum=0)
        for name in ("val_batch_size", "checkpoint_every", "early_stop"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), minimum=1)
        if self.max_steps is not None:
            _check_int("max_steps", self.max_steps, minimum=0)
        if self.folds is not None:
            _check_int("folds", self.folds, minimum=2)
            if self.fold >= self.folds:
                raise ConfigError(f"--fold {self.fold}: must be below --folds {self.folds}")
        for name in ("lr", "weight_decay", "encoder_lr_mult", "min_lr", "aux_loss_weight"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"--{_flag(name)} {value!r}: give a number >= 0")
        if not 0 <= self.val < 1:
            raise ConfigError(f"--val {self.val!r}: give a fraction in [0, 1)")
        if not 0 <= self.crop_foreground <= 1:
            raise ConfigError(f"--crop-foreground {self.crop_foreground!r}: give a probability in [0, 1]")
        if self.ema is not None and not 0 < self.ema < 1:
            raise ConfigError(f"--ema {self.ema!r}: give a decay in (0, 1), e.g. 0.999")
        if self.clip is not None and self.clip <= 0:
            raise ConfigError(f"--clip {self.clip!r}: give a positive gradient norm")
        if self.monitor_mode not in ("max", "min"):
            raise ConfigError(f"--monitor-mode {self.monitor_mode!r}: choose max or min")
        if self.size and self.crop:
            raise ConfigError("--size and --crop exclude each other: resize/pad to a size, or crop")
        for name in ("model_args", "data_args", "loss_args"):
            if not isinstance(getattr(self, name), dict):
                raise ConfigError(f"{name}: give a mapping of key: value")


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"--{_flag(name)} {value!r}: give a whole number >= {minimum}")


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The options of a YAML file (``versions``, written into run folders, is left out)."""
    import yaml

    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"--config {path}: cannot read it as YAML ({exc})") from exc
    if not isinstance(values, dict):
        raise ConfigError(f"--config {path}: expected a mapping of option: value")
    values.pop("versions", None)
    return values


def write_yaml(path: Path, config: FinetuneConfig, versions: dict[str, str]) -> None:
    """Write ``config.yaml`` atomically: the options, then the library versions."""
    import yaml

    text = yaml.safe_dump({**config.to_dict(), "versions": versions}, sort_keys=False)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def parse_size(text: str | None, option: str) -> tuple[int, ...] | None:
    """``"256"``, ``"256x192"`` or ``"64x96x96"`` as a tuple of ints (one value is kept as given)."""
    if text is None:
        return None
    try:
        dims = tuple(int(v) for v in str(text).lower().split("x"))
    except ValueError:
        dims = ()
    if not dims or len(dims) > 3 or min(dims) < 1:
        raise ConfigError(f"--{option} {text!r}: give sizes like 256, 256x256 or 64x128x128")
    return dims
