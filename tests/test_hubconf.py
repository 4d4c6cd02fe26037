"""hubconf.py: one torch.hub entry point per registered model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import unetzoo
from tests.conftest import REPO

MODELS = unetzoo.list_models()


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A torch.hub cache holding this checkout as the GitHub repo ``someone/unetzoo:main``."""
    hub_dir = tmp_path_factory.mktemp("hub")
    (hub_dir / "someone_unetzoo_main").symlink_to(REPO, target_is_directory=True)
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(hub_dir))
    yield "someone/unetzoo:main"
    torch.hub.set_dir(old)


def test_hub_list_has_every_model(hub_cache: str) -> None:
    assert torch.hub.list(hub_cache, trust_repo=True, skip_validation=True, verbose=False) == MODELS


@pytest.mark.parametrize("name", MODELS)
def test_hub_help_is_the_model_docstring(hub_cache: str, name: str) -> None:
    doc = torch.hub.help(hub_cache, name, trust_repo=True, skip_validation=True)
    assert unetzoo.models.model_spec(name).doc in doc
    assert f"create_model({name!r}" in doc


@pytest.mark.parametrize("name", MODELS)
def test_hub_load_local_with_overrides(name: str) -> None:
    with torch.device("meta"):
        model = torch.hub.load(str(REPO), name, source="local", classes=3, in_channels=2)
    assert model.config == {**model.config, "architecture": name, "classes": 3, "in_channels": 2}


def test_hub_load_attn_r2unet_resnet34_on_odd_input(tmp_path: Path) -> None:
    model = torch.hub.load(str(REPO), "attn_r2unet_resnet34", source="local").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 67, 61)).shape == (1, 1, 67, 61)
