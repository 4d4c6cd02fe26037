"""The docs stay in step with the registry."""

from __future__ import annotations

import torch

import unetzoo
from tests.conftest import REPO


def test_models_page_lists_every_model_with_its_parameter_count() -> None:
    page = (REPO / "docs" / "models.md").read_text()
    for name in unetzoo.list_models():
        with torch.device("meta"):
            count = sum(p.numel() for p in unetzoo.create_model(name).parameters())
        assert f"| `{name}` |" in page, f"{name} is missing from docs/models.md"
        assert f"`{name}` | " in page and f"{count:,}" in page, f"{name}: {count:,} not in docs/models.md"
