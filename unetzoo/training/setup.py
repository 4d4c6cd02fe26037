"""Turning options into the parts of a run: device settings, model, loss, resumed config."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import is_repo_id
from ..data import SegmentationDataset
from ..hub import create_model, from_pretrained
from ..losses import DeepSupervisionLoss, create_loss
from ..models import list_models
from ..weight_tags import list_pretrained
from .config import RESUMABLE_CHANGES, ConfigError, FinetuneConfig, read_yaml
from .run_folder import RunFolder, RunFolderError


def cpu_supports_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), where autocast pays off."""
    if platform.system() != "Linux":
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_mixed_precision(choice: str, cpu: bool) -> str:
    """``auto``: bf16 where the device computes it natively (this kind of CPU included), else ``no``."""
    if choice != "auto":
        return choice
    if cpu:
        return "bf16" if cpu_supports_bf16() else "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "no"


def use_cpu(config: FinetuneConfig) -> bool:
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is visible to PyTorch")
    return config.device == "cpu" or not torch.cuda.is_available()


def set_determinism(deterministic: bool) -> None:
    """Deterministic kernels everywhere (slower), as ``--deterministic`` asks."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def resolve_task(config: FinetuneConfig, dataset: SegmentationDataset) -> tuple[str, int, int]:
    """``(mode, classes, in_channels)``: the options where given, else read off the dataset.

    A dataset with background and one class (or no class table) trains as ``binary`` with one
    output channel; more classes train as ``multiclass`` with one channel per class.
    """
    known = dataset.num_classes
    mode = config.mode
    if mode == "auto":
        mode = "binary" if (config.classes or 1) == 1 and (known is None or known <= 2) else "multiclass"
    classes = config.classes or (1 if mode == "binary" else known)
    if classes is None:
        raise ConfigError(f"{config.data}: the dataset has no class table; give --classes N")
    if mode == "binary" and classes != 1:
        raise ConfigError(f"--classes {classes}: binary segmentation has one output channel")
    if known is not None and mode == "multiclass" and known > classes:
        raise ConfigError(
            f"--classes {classes}: the dataset has {known} classes ({', '.join(dataset.class_names)}); "
            f"the model needs at least {known}"
        )
    in_channels = config.in_channels or int(dataset[0].image.shape[-1])
    return mode, int(classes), in_channels


def class_names(dataset: SegmentationDataset, mode: str, classes: int) -> list[str]:
    """Names of the model's output channels (binary: the foreground class alone)."""
    names = list(dataset.class_names or [])
    if mode == "binary":
        return [names[-1] if len(names) == 2 else "foreground"]
    return names if len(names) == classes else [f"class_{i}" for i in range(classes)]


def build_model(config: FinetuneConfig, spatial_dims: int, classes: int, in_channels: int) -> nn.Module:
    """The model to train: a registered name, or saved weights (tag, folder, repo id) to continue from.

    ``--model-arg`` values override the architecture's defaults; ``classes`` and
    ``in_channels`` come from the dataset; a saved model with another class count gets a
    new head (with a warning that names the tensors not loaded).
    """
    overrides: dict[str, Any] = {**config.model_args, "classes": classes, "in_channels": in_channels}
    if config.encoder_weights:
        overrides["encoder_weights"] = config.encoder_weights
    if config.gradient_checkpointing:
        overrides["gradient_checkpointing"] = True
    if spatial_dims != 2:
        overrides.setdefault("spatial_dims", spatial_dims)
    name = config.model
    try:
        if name in list_models():
            return create_model(name, pretrained=config.pretrained or False, **overrides)
        if name in list_pretrained():
            arch, _, tag = name.partition(".")
            return create_model(arch, pretrained=tag, **overrides)
        if Path(name).exists() or is_repo_id(name):
            overrides.pop("encoder_weights", None)
            return from_pretrained(name, **overrides)
        return create_model(name, **overrides)  # raises UnknownNameError with the closest names
    except TypeError as exc:
        raise ConfigError(f"--model-arg: {exc}") from exc


def build_loss(config: FinetuneConfig, mode: str) -> nn.Module:
    """The named loss in the task's mode, wrapped for deep supervision (a list of outputs)."""
    kwargs = {"mode": mode, **config.loss_args}
    if config.ignore_index is not None:
        kwargs.setdefault("ignore_index", config.ignore_index)
    try:
        loss = create_loss(config.loss, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"--loss-arg for loss {config.loss!r}: {exc}") from exc
    return DeepSupervisionLoss(loss)


def config_for_resume(run: str | Path, explicit: dict[str, Any]) -> FinetuneConfig:
    """The run's saved options; a flag given now that contradicts them is an error naming it.

    Only the options in ``RESUMABLE_CHANGES`` (how long to train, how many workers, logging)
    may change on resume.
    """
    folder = RunFolder(run)
    if not folder.is_run():
        raise RunFolderError(f"--resume {run}: not a run folder (no config.yaml)")
    if folder.latest_checkpoint() is None:
        raise RunFolderError(
            f"--resume {run}: the run has no complete checkpoint to resume from; "
            f"start it again with --out {run} --overwrite"
        )
    saved = read_yaml(folder.config)
    for key, value in explicit.items():
        if key in ("out",) or key in RESUMABLE_CHANGES or key not in saved:
            continue
        if saved[key] != value:
            raise ConfigError(
                f"--{key.replace('_', '-')} {value!r} contradicts {folder.config} ({key}: {saved[key]!r}); "
                "a resumed run keeps its options (start a new run to change it)"
            )
    values = {**saved, **{k: v for k, v in explicit.items() if k in RESUMABLE_CHANGES}}
    values["out"] = str(run)
    return FinetuneConfig.from_dict(values, origin=str(folder.config))
