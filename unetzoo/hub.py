"""Load models: saved folders and files, Hub repos, published weight tags; ``create_model(pretrained=...)``.

The pretrained layer: it imports the models, never the other way round. Saving and pushing
live in :mod:`unetzoo.models.saving` and file formats in :mod:`unetzoo.checkpoint`; their
public names are re-exported here.

Loading never runs code from a repository or unpickles: weights are safetensors, and legacy
``.pth``/``.pt`` files are read only with ``torch.load(weights_only=True)``. Everything works
offline from a local directory, a local file, or the Hugging Face cache
(``HF_HUB_OFFLINE=1``); a missing file is an error that names the repository, the file and
those three ways to provide it.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._version import __version__
from .checkpoint import (
    CARD_NAME,
    CONFIG_NAME,
    LEGACY_WEIGHTS,
    WEIGHTS_NAME,
    ChecksumError,
    WeightsUnavailableError,
    is_repo_id,
    read_weights,
    sha256_of,
    unwrap_state_dict,
)
from .models import MODELS, ModelArgumentError, model_spec
from .models import create_model as _fresh_model
from .models.saving import (
    default_preprocessing,
    model_card,
    model_preprocessing,
    push_to_hub,
    save_pretrained,
    saved_config,
)
from .network import HubUnreachableError, check_hub
from .registry import UnknownNameError
from .weight_tags import resolve_pretrained

__all__ = [
    "CARD_NAME",
    "CONFIG_NAME",
    "LEGACY_WEIGHTS",
    "LOADER_ONLY",
    "WEIGHTS_NAME",
    "ChecksumError",
    "ModelConfigError",
    "WeightsUnavailableError",
    "check_config",
    "create_model",
    "default_preprocessing",
    "from_pretrained",
    "load_weights_into",
    "model_card",
    "model_preprocessing",
    "push_to_hub",
    "read_config",
    "read_weights",
    "rebuild",
    "resolve_files",
    "save_pretrained",
    "saved_config",
    "sha256_of",
    "unwrap_state_dict",
]

# Arguments of the loading functions: never accepted from a config.json's "args".
LOADER_ONLY = frozenset({"pretrained", "revision", "sha256", "config_sha256", "cache_dir", "token",
                         "local_files_only"})  # fmt: skip


class ModelConfigError(ValueError):
    """A ``config.json`` that cannot rebuild a model; the message names the file and the key."""


def _json_kind(value: Any) -> str:
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}
    return kinds.get(type(value), "a number")


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """The content of a saved model's ``config.json``, checked (see :func:`check_config`).

    A file that cannot be read, is not UTF-8 or not JSON is a :class:`ModelConfigError`
    naming the file and what is wrong.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ModelConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ModelConfigError(f"{path}: not UTF-8 text (byte {exc.start} is {raw[exc.start:exc.start + 1]!r}); "
                               "save it as UTF-8 JSON") from None  # fmt: skip
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelConfigError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    check_config(config, path)
    return config


def check_config(config: Any, path: str | os.PathLike) -> None:
    """Raise a :class:`ModelConfigError` naming ``path`` and the key when ``config`` is no model config.

    It must be an object whose ``architecture`` is a registered model name and whose ``args``
    (optional) is an object of arguments that model takes, none of them an argument of the
    loader; ``preprocessing`` and ``metrics`` are objects or null, ``class_names`` a list or null.
    Argument values are checked when the model is built (:func:`from_pretrained`).
    """
    if not isinstance(config, dict):
        raise ModelConfigError(f"{path}: holds {_json_kind(config)}, not an object with 'architecture' and 'args'")
    if "architecture" not in config:
        raise ModelConfigError(f"{path}: no 'architecture' key; it names the model, e.g. \"architecture\": \"unet\"")
    arch = config["architecture"]
    if not isinstance(arch, str):
        raise ModelConfigError(f"{path}: 'architecture' is {_json_kind(arch)} ({arch!r}), not a model name")
    try:
        MODELS.entry(arch)
    except UnknownNameError as exc:
        raise ModelConfigError(f"{path}: 'architecture': {exc} (a model of a plugin needs that plugin installed)") \
            from None  # fmt: skip
    args = config.get("args", {})
    if not isinstance(args, dict):
        raise ModelConfigError(f"{path}: 'args' is {_json_kind(args)}, not an object of argument: value pairs")
    refused = sorted(set(args) & LOADER_ONLY)
    if refused:  # a config must not send the loader elsewhere (another repo, a recursion)
        raise ModelConfigError(f"{path}: 'args' holds {refused[0]!r}, an argument of the loader, not of the "
                               "architecture; a saved model's config may not name other weights")  # fmt: skip
    spec = model_spec(arch)
    unknown = spec.unknown_arguments(args) if spec is not None else []
    if unknown:
        raise ModelConfigError(f"{path}: 'args' → {unknown[0]!r}: model {arch!r} takes no such argument; "
                               f"it takes {', '.join(spec.arguments())}")  # fmt: skip
    for key, kind in (("preprocessing", dict), ("metrics", dict), ("class_names", list)):
        value = config.get(key)
        if value is not None and not isinstance(value, kind):
            raise ModelConfigError(f"{path}: '{key}' is {_json_kind(value)}, not {_json_kind(kind())} (or null)")


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


def _check_sha256(path: Path, expected: str, meaning: str) -> None:
    """A :class:`ChecksumError` saying ``meaning`` when ``path``'s sha256 is not ``expected``."""
    actual = sha256_of(path)
    if actual != expected:
        raise ChecksumError(f"{path}: sha256 {actual} differs from the published {expected}; {meaning}")


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
    config_path, weights = _locate(source, revision=revision, sha256=sha256, config_sha256=config_sha256,
                                   **hub_kwargs)  # fmt: skip
    return (read_config(config_path) if config_path is not None else None), weights


def _locate(
    source: str | os.PathLike,
    *,
    revision: str | None = None,
    sha256: str | None = None,
    config_sha256: str | None = None,
    **hub_kwargs: Any,
) -> tuple[Path | None, Path]:
    """``(config.json path or None, weights path)`` of :func:`resolve_files`, digests checked."""
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
    elif is_repo_id(source):
        config_path = _hub_file(str(source), CONFIG_NAME, revision, **hub_kwargs)
        weights = _hub_file(str(source), WEIGHTS_NAME, revision, **hub_kwargs)
    else:
        raise WeightsUnavailableError(
            f"{str(source)!r} is neither a local directory, a local file, nor a Hub repo id 'org/name'"
        )
    if sha256 is not None:
        _check_sha256(weights, sha256, "the file is corrupt or not the published one. Delete it (or the "
                                       "cache entry) and download again.")  # fmt: skip
    if config_sha256 is not None:
        if config_path is None:
            raise ChecksumError(f"{source}: the published weights pin a {CONFIG_NAME}, and there is none")
        _check_sha256(config_path, config_sha256, "the architecture or arguments are not the published ones. "
                                                  "Delete it and download again.")  # fmt: skip
    return config_path, weights


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
    config_path, weights = _locate(source, revision=revision, sha256=sha256, config_sha256=config_sha256,
                                   **hub_kwargs)  # fmt: skip
    if config_path is None:
        if architecture is None:
            raise ValueError(
                f"{weights}: no {CONFIG_NAME} beside it; pass architecture='<model name>' "
                "to say which network these weights belong to"
            )
        config: dict[str, Any] = {"architecture": architecture, "args": {}}
    else:
        config = read_config(config_path)
    if architecture is not None and config["architecture"] != architecture:
        raise ValueError(f"{source} holds a {config['architecture']!r} model, not {architecture!r}")
    model = rebuild(config, config_path, **overrides)
    load_weights_into(model, read_weights(weights), source=str(weights), allow_reinit=bool(overrides))
    model.pretrained_info = {k: config.get(k) for k in ("preprocessing", "class_names", "dataset", "metrics")}
    model.pretrained_info["source"] = str(source)
    return model.eval()


OLD_CLASSIC_DEPTH = 5
"""``encoder_depth`` as earlier releases saved it for every classic encoder (where it had no
effect); such configs load with the depth their stages give."""


def rebuild(config: Mapping[str, Any], config_path: str | os.PathLike | None = None, **overrides: Any) -> nn.Module:
    """The fresh (randomly initialised) model of a checked saved ``config`` (:func:`read_config`),
    its ``args`` updated by ``overrides``; ``encoder_weights`` is never loaded again.

    A saved argument the model refuses is a :class:`ModelConfigError` naming ``config_path`` and
    the key; a bad override stays the caller's error.
    """
    saved = dict(config.get("args", {}))
    if saved.get("encoder", "classic") == "classic" and saved.get("encoder_depth") == OLD_CLASSIC_DEPTH:
        saved.pop("encoder_depth")  # the old default, recorded by earlier versions whatever the stage count
    args = {**saved, **overrides}
    if "encoder_weights" in args:  # the saved weights hold the encoder: never load it again
        args["encoder_weights"] = None
    architecture = config["architecture"]
    try:
        return _fresh_model(architecture, **args)
    except ModelArgumentError as exc:
        if config_path is None or exc.argument in overrides or exc.argument not in saved:
            raise
        raise ModelConfigError(f"{config_path}: 'args' → {exc.argument!r}: {exc}") from None
    except (TypeError, ValueError) as exc:
        if config_path is None or overrides:
            raise
        raise ModelConfigError(f"{config_path}: 'args' do not build {architecture!r}: {exc}") from None


def create_model(name: str, pretrained: Any = False, **overrides: Any) -> nn.Module:
    """Build the registered model ``name``, fresh or with published or saved weights.

    ``name`` may also be a saved model folder (one with a ``config.json``), loaded with
    :func:`from_pretrained`.

    ``pretrained``: ``False``/``None`` builds a fresh model (:func:`unetzoo.models.create_model`);
    ``True`` loads the model's default published weights, a string a named tag (``"kvasir"``),
    a local directory or file, or a Hub repo id (see :mod:`unetzoo.weight_tags`). Keyword
    ``overrides`` replace the architecture's defaults. The returned module carries ``config``:
    ``{"architecture": name, ...}`` with every argument that rebuilds it. Unknown names raise
    :class:`unetzoo.registry.UnknownNameError` listing the closest names.
    """
    if name not in MODELS and (Path(name) / CONFIG_NAME).is_file():
        if pretrained not in (False, None):
            raise ValueError(f"{name} is a saved model folder: load it with create_model({name!r}) or "
                             "from_pretrained, without pretrained=")  # fmt: skip
        return from_pretrained(name, **overrides)
    if pretrained is False or pretrained is None:
        return _fresh_model(name, **overrides)
    source, revision, sha256, config_sha256 = resolve_pretrained(name, pretrained)
    return from_pretrained(source, revision=revision, sha256=sha256, config_sha256=config_sha256,
                           architecture=name, **overrides)  # fmt: skip
