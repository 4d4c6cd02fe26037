"""Checkpoint files: reading weights, checksums, atomic writes, and what names a Hub repo.

The bottom of the weights stack: it knows file formats and file systems, not models. Weights
are read from safetensors, or from legacy ``.pth``/``.pt``/``.bin`` files only with
``torch.load(weights_only=True)``, which refuses pickled code.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
LEGACY_WEIGHTS = ("pytorch_model.bin", "model.pth", "model.pt")

_STAGING, _OLD = ".tmp-", ".old-"


class WeightsUnavailableError(FileNotFoundError):
    """A weights or config file that cannot be had (offline, not cached, not published)."""


class ChecksumError(ValueError):
    """A downloaded or cached file whose sha256 differs from the published one."""


def is_repo_id(text: str | os.PathLike) -> bool:
    """Whether ``text`` names a Hugging Face Hub repo, ``"org/name"``, rather than a local path.

    Two non-empty parts around one ``/``, not starting with ``.`` or ``~``, and no existing
    file or folder of that name.
    """
    text = os.fspath(text)
    parts = text.split("/")
    return len(parts) == 2 and all(parts) and not text.startswith((".", "~")) and not os.path.exists(text)


# ----------------------------------------------------------------------------- reading


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


# ----------------------------------------------------------------------------- writing


def _default_mode(directory: bool = False) -> int:
    """The permissions ``open``/``mkdir`` would give under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def atomic_write(path: str | os.PathLike, write: Callable[[str], Any], *, suffix: str = "") -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``.

    Never a half-written file at ``path``. The temporary file's name ends in ``.tmp`` and then
    ``suffix`` (for writers that go by the extension, e.g. ``".pt2"``); it is removed when
    ``write`` fails. The file gets the permissions a plain ``open`` would give it (not
    ``mkstemp``'s 0600).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{suffix}")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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
