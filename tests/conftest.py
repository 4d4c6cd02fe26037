"""Shared fixtures: the ../shared folder beside the checkout, and small helpers."""

from __future__ import annotations

import os
from pathlib import Path

# No test reaches the network: Hugging Face lookups answer from the cache at once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared() -> Path:
    """``../shared``; tests that need it skip with the reason when it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"real data and reference files not found: {SHARED} is absent")
    return SHARED


@pytest.fixture(scope="module")
def kvasir(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 12 Kvasir-SEG pairs copied into a temporary folder (real data for short runs)."""
    from tests.training_utils import copy_kvasir

    return copy_kvasir(shared, tmp_path_factory.mktemp("kvasir"))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache in a temporary folder, used offline for this test."""
    import huggingface_hub.constants as hf_constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def error_with_and_without(outside: Path, create, call) -> str:
    """The DataError message of ``call()`` when ``outside`` exists (made by ``create(outside)``) and
    when it does not; both must be the same, so the error tells nothing of files outside a dataset."""
    from unetzoo.data import DataError

    messages = []
    for exists in (True, False):
        if exists:
            create(outside)
        else:
            outside.unlink()
        with pytest.raises(DataError) as info:
            call()
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    return messages[0]
