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
        rows = [line for line in page.splitlines() if line.startswith(f"| `{name}` |")]
        assert len(rows) == 1, f"{name}: {len(rows)} rows in docs/models.md"
        cells = [c.strip() for c in rows[0].strip("|").split("|")]
        assert cells[2] == f"{count:,}", f"{name}: the row says {cells[2]}, the model has {count:,} parameters"
