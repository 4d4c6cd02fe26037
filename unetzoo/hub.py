"""Save, load and share models: ``config.json`` + ``model.safetensors`` + a ``README.md`` card.

Loading never runs code from a repository or unpickles: weights are safetensors, and legacy
``.pth``/``.pt`` files are read only with ``torch.load(weights_only=True)``. Everything works
offline from a local directory, a local file, or the Hugging Face cache
(``HF_HUB_OFFLINE=1``); a missing file is an error that names the repository, the file and
those three ways to provide it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from . import __version__
from .models import MODELS, create_model, model_spec
from .models.papers import full_references
from .network import HubUnreachableError, check_hub

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
# Arguments of the loading functions: never accepted from a config.json's "args".
LOADER_ONLY = frozenset({"pretrained", "revision", "sha256", "config_sha256", "cache_dir", "token",
                         "local_files_only"})  # fmt: skip
LEGACY_WEIGHTS = ("pytorch_model.bin", "model.pth", "model.pt")


class WeightsUnavailableError(FileNotFoundError):
    """A weights or config file that cannot be had (offline, not cached, not published)."""


class ChecksumError(ValueError):
    """A downloaded or cached file whose sha256 differs from the published one."""


# ----------------------------------------------------------------------------- saving


def default_preprocessing(model: nn.Module) -> dict[str, Any]:
    """Normalisation and size hints for a model: ImageNet statistics for timm encoders.

    Inputs are scaled to [0, 1] first; ``mean``/``std`` then apply per channel.
    """
    config = getattr(model, "config", {})
    channels = int(config.get("in_channels", 3))
    if config.get("encoder", "classic") != "classic":
        mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
        if channels != 3:
            mean, std = [sum(mean) / 3] * channels, [sum(std) / 3] * channels
    else:
        mean, std = [0.0] * channels, [1.0] * channels
    prep: dict[str, Any] = {"scale": 1 / 255, "mean": mean, "std": std, "input_size": None}
    stride = getattr(model, "output_stride", None)
    if stride:
        prep["pad_multiple"] = stride
    return prep


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
        f"- preprocessing: scale {prep.get('scale')}, mean {prep.get('mean')}, std {prep.get('std')}",
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


def _default_mode(directory: bool = False) -> int:
    """The permissions ``open``/``mkdir`` would give under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def _atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename: never a half-written file.
    The file gets the permissions a plain ``open`` would give it (not ``mkstemp``'s 0600)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


_SAVED = (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME)
_STAGING, _OLD = ".tmp-", ".old-"


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


def _link_or_copy(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst, symlinks=True)
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _swap_into_place(new: Path, target: Path) -> None:
    """Make ``new`` the folder at ``target``; afterwards ``new``'s path holds the old folder (or nothing)."""
    if not target.exists():
        os.rename(new, target)
        return
    if not target.is_dir():
        raise NotADirectoryError(f"{target}: exists and is not a folder")
    if _exchange(new, target):
        shutil.rmtree(new, ignore_errors=True)  # now the old folder
        return
    old = target.with_name(f".{target.name}{_OLD}{os.getpid()}")
    os.rename(target, old)
    os.rename(new, target)
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); ``False`` where unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    done = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return done == 0


def _clean_leftovers(directory: Path) -> None:
    """Remove what a killed save left: staging folders beside ``directory``, temporary files in it;
    an old folder that never got its replacement is put back first."""
    parent = directory.parent
    if not parent.is_dir():
        return
    for path in parent.glob(f".{directory.name}{_OLD}*"):
        if not directory.exists():
            os.rename(path, directory)  # killed between the two renames: the old model returns
        else:
            shutil.rmtree(path, ignore_errors=True)
    for path in parent.glob(f".{directory.name}{_STAGING}*"):
        shutil.rmtree(path, ignore_errors=True)
    if directory.is_dir():
        for path in directory.glob(".*.tmp"):
            path.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- loading


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors``, or from ``.pth``/``.pt``/``.bin`` with ``weights_only=True``.

    ``{"state_dict": ...}``/``{"model": ...}`` wrappers and ``module.`` prefixes are removed.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsUnavailableError(f"weights file {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        try:
            return load_file(path)
        except Exception as exc:
            raise ValueError(f"{path}: not a readable safetensors file ({exc})") from exc
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"{path}: cannot be read with torch.load(weights_only=True), which refuses "
            f"pickled code; convert it to safetensors ({type(exc).__name__}: {exc})"
        ) from exc
    return unwrap_state_dict(state, str(path))


def unwrap_state_dict(state: Any, origin: str) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint: ``{"state_dict": ...}``/``{"model": ...}`` unwrapped, ``module.`` removed."""
    for wrapper in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
    if not isinstance(state, Mapping):
        raise ValueError(f"{origin}: holds a {type(state).__name__}, not a state dict")
    return {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _hub_file(repo_id: str, filename: str, revision: str | None, **hub_kwargs: Any) -> Path:
    """A file of a Hub repo through the Hugging Face cache (honours ``HF_HUB_OFFLINE``)."""
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled
    except ImportError as exc:  # pragma: no cover - the hub extra is missing
        raise WeightsUnavailableError(
            f"loading {repo_id!r} from the Hugging Face Hub needs huggingface_hub: "
            "pip install 'unetzoo[hub]', or pass a local directory or file instead"
        ) from exc
    unreachable: HubUnreachableError | None = None
    if not hub_kwargs.get("local_files_only"):
        try:
            check_hub()
        except HubUnreachableError as exc:  # the cache may still hold the file
            unreachable, hub_kwargs = exc, {**hub_kwargs, "local_files_only": True}
    try:
        return Path(
            hf_hub_download(
                repo_id, filename, revision=revision, library_name="unetzoo",
                library_version=__version__, **hub_kwargs,
            )
        )  # fmt: skip
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, HfHubHTTPError, OSError) as exc:
        rev = f" at revision {revision}" if revision else ""
        why = unreachable or exc
        raise WeightsUnavailableError(
            f"cannot get {filename!r} of Hugging Face repo {repo_id!r}{rev}: "
            f"{type(why).__name__}: {str(why).splitlines()[0] if str(why) else ''}\n"
            "Provide it in one of three ways:\n"
            f"  1. a local directory with {CONFIG_NAME} and {WEIGHTS_NAME}: "
            "unetzoo.from_pretrained('/path/to/dir');\n"
            f"  2. the Hugging Face cache: run 'unetzoo download {repo_id}' where there is "
            "internet and copy the cache (HF_HUB_CACHE, default ~/.cache/huggingface/hub), "
            "then load with HF_HUB_OFFLINE=1;\n"
            f"  3. a local file: create_model(name, pretrained='/path/to/{WEIGHTS_NAME}')."
        ) from exc


def resolve_files(
    source: str | os.PathLike,
    *,
    revision: str | None = None,
    sha256: str | None = None,
    config_sha256: str | None = None,
    **hub_kwargs: Any,
) -> tuple[dict[str, Any] | None, Path]:
    """``(config or None, weights path)`` for a local directory, a local file or a Hub repo id.

    With ``sha256`` the weights file must have that digest, with ``config_sha256`` the
    ``config.json`` (which must then exist), else :class:`ChecksumError`.
    """
    path = Path(source)
    config_path: Path | None
    if path.is_dir():
        weights = path / WEIGHTS_NAME
        if not weights.is_file():
            legacy = [path / n for n in LEGACY_WEIGHTS if (path / n).is_file()]
            if not legacy:
                raise WeightsUnavailableError(f"{path}: no {WEIGHTS_NAME} in this directory")
            weights = legacy[0]
        config_path = path / CONFIG_NAME if (path / CONFIG_NAME).is_file() else None
    elif path.is_file():
        weights, config_path = path, None
        if (path.parent / CONFIG_NAME).is_file():
            config_path = path.parent / CONFIG_NAME
    elif _looks_like_repo_id(str(source)):
        config_path = _hub_file(str(source), CONFIG_NAME, revision, **hub_kwargs)
        weights = _hub_file(str(source), WEIGHTS_NAME, revision, **hub_kwargs)
    else:
        raise WeightsUnavailableError(
            f"{str(source)!r} is neither a local directory, a local file, nor a Hub repo id 'org/name'"
        )
    if sha256 is not None:
        actual = sha256_of(weights)
        if actual != sha256:
            raise ChecksumError(
                f"{weights}: sha256 {actual} differs from the published {sha256}; the file is "
                "corrupt or not the published one. Delete it (or the cache entry) and download again."
            )
    if config_sha256 is not None:
        if config_path is None:
            raise ChecksumError(f"{source}: the published weights pin a {CONFIG_NAME}, and there is none")
        actual = sha256_of(config_path)
        if actual != config_sha256:
            raise ChecksumError(
                f"{config_path}: sha256 {actual} differs from the published {config_sha256}; the "
                "architecture or arguments are not the published ones. Delete it and download again."
            )
    config = None
    if config_path is not None:
        try:
            config = json.loads(config_path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{config_path}: not valid JSON ({exc})") from exc
    return config, weights


def _looks_like_repo_id(text: str) -> bool:
    parts = text.split("/")
    return len(parts) == 2 and all(parts) and not text.startswith((".", "~"))


def load_weights_into(
    model: nn.Module, state: Mapping[str, torch.Tensor], *, source: str, allow_reinit: bool
) -> list[str]:
    """Copy ``state`` into ``model``; returns the model keys that kept their fresh initialisation.

    Keys whose shape differs (a new head after ``classes=...``) are skipped when
    ``allow_reinit``, with a warning listing them; otherwise any mismatch is an error.
    """
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    unexpected = sorted(k for k in state if k not in own)
    not_loaded = sorted(k for k in own if k not in fitting)
    if unexpected or (not_loaded and not allow_reinit):
        raise ValueError(
            f"weights in {source} do not fit the model built from its config: "
            f"{len(not_loaded)} not loaded (e.g. {not_loaded[:4]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:4]})"
        )
    model.load_state_dict(fitting, strict=False)
    if not_loaded:
        warnings.warn(
            f"{source}: {len(not_loaded)} tensors were not loaded and keep their fresh "
            f"initialisation (the overrides changed their shape): {', '.join(not_loaded)}",
            stacklevel=3,
        )
    return not_loaded


def from_pretrained(
    source: str | os.PathLike,
    *,
    revision: str | None = None,
    sha256: str | None = None,
    config_sha256: str | None = None,
    architecture: str | None = None,
    **overrides: Any,
) -> nn.Module:
    """Rebuild a saved model from a local directory, a weights file, or a Hub repo id.

    The architecture and arguments come from ``config.json``; keyword ``overrides`` change
    them (``classes=3`` re-initialises only the head, with a warning listing what was not
    loaded). Hub keyword arguments (``cache_dir``, ``token``, ``local_files_only``) pass to
    huggingface_hub. Returns the model in eval mode with ``pretrained_info`` (preprocessing,
    class names, dataset, metrics).
    """
    hub_kwargs = {k: overrides.pop(k) for k in ("cache_dir", "token", "local_files_only") if k in overrides}
    config, weights = resolve_files(source, revision=revision, sha256=sha256, config_sha256=config_sha256,
                                    **hub_kwargs)  # fmt: skip
    if config is None:
        if architecture is None:
            raise ValueError(
                f"{weights}: no {CONFIG_NAME} beside it; pass architecture='<model name>' "
                "to say which network these weights belong to"
            )
        config = {"architecture": architecture, "args": {}}
    if architecture is not None and config["architecture"] != architecture:
        raise ValueError(f"{source} holds a {config['architecture']!r} model, not {architecture!r}")
    saved_args = config.get("args", {})
    refused = sorted(set(saved_args) & LOADER_ONLY) if isinstance(saved_args, Mapping) else []
    if refused:  # a config must not send the loader elsewhere (another repo, a recursion)
        raise ValueError(f"{source}: {CONFIG_NAME} 'args' holds {refused[0]!r}, an argument of the loader, "
                         "not of the architecture; a saved model's config may not name other weights")  # fmt: skip
    args = {**saved_args, **overrides}
    if "encoder_weights" in args:  # the saved weights hold the encoder: never load it again
        args["encoder_weights"] = None
    model = create_model(config["architecture"], **args)
    load_weights_into(model, read_weights(weights), source=str(weights), allow_reinit=bool(overrides))
    model.pretrained_info = {k: config.get(k) for k in ("preprocessing", "class_names", "dataset", "metrics")}
    model.pretrained_info["source"] = str(source)
    return model.eval()


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
