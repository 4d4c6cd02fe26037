"""Builds a Hugging Face hub cache by its documented layout, as huggingface_hub writes it.

``<cache>/models--<org>--<name>/blobs/<sha256>``, ``snapshots/<commit>/<file>`` (a symlink to
the blob) and ``refs/main`` (the commit) — what ``hf_hub_download`` reads under
``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path


def add_to_hf_cache(cache: Path, repo_id: str, files: dict[str, Path], commit: str | None = None) -> str:
    """Put ``files`` (name in repo → local path) into ``cache`` as ``repo_id`` at ``commit``; returns it."""
    commit = commit or hashlib.sha1(repo_id.encode()).hexdigest()
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, path in files.items():
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        blob = repo / "blobs" / digest
        shutil.copyfile(path, blob)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs" / "main").write_text(commit)
    return commit
