"""Shared fixtures: the ../shared folder beside the checkout, and small helpers."""

from __future__ import annotations

from pathlib import Path

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


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
