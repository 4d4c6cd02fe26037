"""Save and share models: ``config.json`` + ``model.safetensors`` + a ``README.md`` card.

Loading lives a floor above, in :mod:`unetzoo.hub`; the files written here are what it reads.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from safetensors.torch import save_file
from torch import nn

from .._version import __version__
from ..checkpoint import (
    _STAGING,
    CARD_NAME,
    CONFIG_NAME,
    WEIGHTS_NAME,
    _clean_leftovers,
    _default_mode,
    _link_or_copy,
    _swap_into_place,
)
from ..network import check_hub
from .factory import MODELS, Preprocessing, model_spec, preprocessing_of
from .papers import full_references

_SAVED = (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME)


def default_preprocessing(model: nn.Module) -> dict[str, Any]:
    """The preprocessing entry of a model's ``config.json``, from its registered model's
    :class:`~unetzoo.models.factory.Preprocessing` (:func:`~unetzoo.models.factory.preprocessing_of`).

    Inputs are scaled to [0, 1] first (``scale``); ``mean``/``std`` then apply per channel.
    ``input_multiple`` (also written as ``pad_multiple``, its older name) and ``expected_size``
    describe sizes; ``input_size`` is the size training resized to, filled in by training.
    A model that is not registered gets scaling only and its ``output_stride`` as multiple.
    """
    config = getattr(model, "config", None) or {}
    channels = int(config.get("in_channels", getattr(model, "in_channels", 3)))
    name = config.get("architecture")
    if isinstance(name, str) and name in MODELS:
        prep = preprocessing_of(name, model)
    else:
        prep = Preprocessing(input_multiple=int(getattr(model, "output_stride", None) or 1))
    return prep.to_dict(channels)


def model_preprocessing(model: nn.Module) -> dict[str, Any]:
    """The normalisation a model was trained with (saved with its weights), else its default."""
    saved = (getattr(model, "pretrained_info", None) or {}).get("preprocessing")
    return dict(saved or default_preprocessing(model))


def saved_config(
    model: nn.Module,
    *,
    class_names: Sequence[str] | None = None,
    preprocessing: Mapping[str, Any] | None = None,
    dataset: str | None = None,
    metrics: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The ``config.json`` content: architecture, rebuild arguments, preprocessing, metadata.

    ``encoder_weights`` is always saved as ``None``: the saved weights already hold the
    encoder, so loading never downloads it again.
    """
    config = dict(getattr(model, "config", {}) or {})
    if "architecture" not in config:
        raise ValueError(
            "model has no config with an 'architecture'; build it with unetzoo.create_model(name, ...)"
        )
    architecture = config.pop("architecture")
    if "encoder_weights" in config:
        config["encoder_weights"] = None
    info = getattr(model, "pretrained_info", {}) or {}
    classes = config.get("classes")
    names = list(class_names or info.get("class_names") or [])
    if names and classes is not None and len(names) != classes:
        raise ValueError(f"class_names has {len(names)} names but the model has classes={classes}")
    return {
        "architecture": architecture,
        "args": config,
        "unetzoo_version": __version__,
        "preprocessing": dict(preprocessing or info.get("preprocessing") or default_preprocessing(model)),
        "class_names": names or None,
        "dataset": dataset or info.get("dataset"),
        "metrics": dict(metrics or info.get("metrics") or {}) or None,
    }


def model_card(config: Mapping[str, Any], parameters: int, repo_id: str | None = None) -> str:
    """A ``README.md`` model card: architecture, parameters, how to load, data and metrics."""
    arch = config["architecture"]
    source = repo_id or "path/to/this/folder"
    lines = [
        "---",
        "library_name: unetzoo",
        "tags: [image-segmentation, unetzoo, pytorch]",
    ]
    if config.get("dataset"):
        lines.append(f"datasets: [{config['dataset']}]")
    lines += ["---", "", f"# {arch}", ""]
    spec = model_spec(arch) if arch in MODELS else None
    if spec is not None:
        lines += [spec.doc, ""]
        lines += [f"- {ref}" for ref in full_references(spec.paper)]
        lines.append("")
    args = config["args"]
    lines += [
        "## Model",
        "",
        f"- architecture: `{arch}` (unetzoo {config['unetzoo_version']})",
        f"- parameters: {parameters:,}",
        f"- input channels: {args.get('in_channels')}, classes: {args.get('classes')}",
    ]
    if config.get("class_names"):
        lines.append(f"- class names: {', '.join(config['class_names'])}")
    prep = config["preprocessing"]
    lines += [
        f"- preprocessing: scale {prep.get('scale')}, mean {prep.get('mean')}, std {prep.get('std')}"
        + (f", input multiple {prep['input_multiple']}" if prep.get("input_multiple") else ""),
        "",
        "## How to load",
        "",
        "```python",
        "import unetzoo",
        f'model = unetzoo.from_pretrained("{source}")',
        "```",
        "",
        "The weights are safetensors; loading runs no code from this repository.",
        "",
        "## Training data and metrics",
        "",
    ]
    if config.get("dataset") or config.get("metrics"):
        if config.get("dataset"):
            lines.append(f"- dataset: {config['dataset']}")
        for k, v in (config.get("metrics") or {}).items():
            lines.append(f"- {k}: {v:.4f}" if isinstance(v, float) else f"- {k}: {v}")
    else:
        lines.append("Not recorded.")
    return "\n".join(lines) + "\n"


def save_pretrained(
    model: nn.Module,
    directory: str | os.PathLike,
    *,
    class_names: Sequence[str] | None = None,
    preprocessing: Mapping[str, Any] | None = None,
    dataset: str | None = None,
    metrics: Mapping[str, float] | None = None,
    repo_id: str | None = None,
) -> Path:
    """Write ``config.json``, ``model.safetensors`` and ``README.md`` into ``directory``.

    The three files are written into a new folder beside ``directory``, which then takes its
    place in one atomic exchange (Linux ``renameat2``; elsewhere two renames, undone by the
    next save): a kill at any moment leaves the old model or the new one, never new weights
    with an old config. Other files in ``directory`` are kept; temporary folders left by a
    killed save are removed. Files get the usual permissions (``0o666`` less the umask).
    Returns the directory.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    _clean_leftovers(directory)
    config = saved_config(
        model, class_names=class_names, preprocessing=preprocessing, dataset=dataset, metrics=metrics
    )
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    parameters = sum(p.numel() for p in model.parameters())
    staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}{_STAGING}"))
    try:
        os.chmod(staging, _default_mode(directory=True))
        save_file(state, str(staging / WEIGHTS_NAME), metadata={"format": "pt"})
        (staging / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
        (staging / CARD_NAME).write_text(model_card(config, parameters, repo_id))
        for name in _SAVED:
            os.chmod(staging / name, _default_mode())
        if directory.is_dir():
            for extra in directory.iterdir():  # the user's own files stay with the model
                if extra.name not in _SAVED and not extra.name.startswith("."):
                    _link_or_copy(extra, staging / extra.name)
        _swap_into_place(staging, directory)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return directory


def push_to_hub(
    model: nn.Module,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    revision: str | None = None,
    commit_message: str = "Upload unetzoo model",
    **card: Any,
) -> str:
    """Publish ``config.json``, ``model.safetensors`` and ``README.md`` to a Hub model repo.

    ``card`` takes the metadata of :func:`save_pretrained` (class names, dataset, metrics).
    Returns the commit URL.
    """
    from huggingface_hub import HfApi

    check_hub()

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        save_pretrained(model, tmp, repo_id=repo_id, **card)
        info = api.upload_folder(
            repo_id=repo_id, folder_path=tmp, revision=revision, commit_message=commit_message
        )
    return str(info)
