"""The docs stay in step with the registry: names, dimensions and parameter counts on the pages."""

from __future__ import annotations

import functools
import re

import pytest
import torch
from torch import nn

import unetzoo
from tests.conftest import REPO
from tests.test_models import ZOO

MODELS_PAGE = (REPO / "docs" / "models.md").read_text()


def table_rows(page: str) -> list[list[str]]:
    """The cells of every table row of a Markdown page whose first cell is a code span."""
    return [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in page.splitlines() if line.startswith("| `")]  # fmt: skip


def models_table() -> dict[str, list[str]]:
    """docs/models.md's table: model name → the cells of its row (dims, parameters, description, papers)."""
    rows = table_rows(MODELS_PAGE)
    names = [row[0].strip("`") for row in rows]
    assert len(names) == len(set(names)), f"a model has more than one row: {names}"
    return {name: row[1:] for name, row in zip(names, rows, strict=True)}


@functools.cache
def parameters(name: str, **overrides: int) -> int:
    """The parameter count of model ``name`` with its defaults updated by ``overrides`` (built on meta)."""
    with torch.device("meta"):
        return sum(p.numel() for p in unetzoo.create_model(name, **overrides).parameters())


def test_models_table_lists_exactly_the_registered_models() -> None:
    assert list(models_table()) == ZOO
    assert sorted(models_table()) == unetzoo.list_models()


@pytest.mark.parametrize("name", ZOO)
def test_each_row_holds_that_models_own_parameter_count(name: str) -> None:
    documented = models_table()[name][1]
    assert documented == f"{parameters(name):,}", (
        f"{name}: docs/models.md says {documented}, the model has {parameters(name):,} parameters"
    )


@pytest.mark.parametrize("name", ZOO)
def test_each_row_states_the_dimensions_the_model_builds_in(name: str) -> None:
    dims = models_table()[name][0].split(", ")
    assert set(dims) <= {"2D", "3D"} and dims, dims
    for d in dims:
        with torch.device("meta"):
            model = unetzoo.create_model(name, spatial_dims=int(d[0]))
        conv = nn.Conv2d if d == "2D" else nn.Conv3d
        assert any(isinstance(m, conv) for m in model.modules()), f"{name} in {d} has no {conv.__name__}"
    if "3D" not in dims:
        with pytest.raises(ValueError), torch.device("meta"):
            unetzoo.create_model(name, spatial_dims=3)


def test_counts_quoted_in_the_notes_are_the_models_own() -> None:
    notes = MODELS_PAGE.split("## Notes on the named networks")[1].split("\n## ")[0]
    bullets = {
        m.group(1): m.group(2) for m in re.finditer(r"^- \*\*`(\w+)`\*\*(.*?)(?=^- |\Z)", notes, re.M | re.S)
    }
    aspp = " ".join(bullets["attn_unet_resnet50_aspp_se"].split())
    count, original, percent = re.search(
        r"It has ([\d,]+) parameters with one class; the original network has ([\d,]+) \(\+([\d.]+) %\)", aspp
    ).groups()
    assert count == f"{parameters('attn_unet_resnet50_aspp_se', classes=1):,}"
    ours, theirs = (int(c.replace(",", "")) for c in (count, original))
    assert percent == f"{100 * (ours - theirs) / theirs:.2f}"
    resattn = " ".join(bullets["resattn_unet_resnet50"].split())
    classes, count = re.search(r"With (\d+) classes it has ([\d,]+) parameters", resattn).groups()
    assert count == f"{parameters('resattn_unet_resnet50', classes=int(classes)):,}"


def expand(names: str) -> list[str]:
    """``"`unet`, `attn_unet_resnet34/50`"`` → ``["unet", "attn_unet_resnet34", "attn_unet_resnet50"]``."""
    out = []
    for code in re.findall(r"`([^`]+)`", names):
        stem, *alternatives = code.split("/")
        head = re.match(r"(.*?)(\d*)$", stem).group(1)
        out += [stem] + [head + alt for alt in alternatives]
    return out


def rendered(count: int, documented: str) -> str:
    """``count`` written as ``documented`` writes it: exact with commas, or in millions (``24.4M``)."""
    return f"{count / 1e6:.1f}M" if documented.endswith("M") else f"{count:,}"


def test_readme_model_table_counts_are_the_models_own() -> None:
    rows = [row for row in table_rows((REPO / "README.md").read_text()) if row[0].startswith("`")]
    assert {n for row in rows for n in expand(row[0])} == set(ZOO)
    for row in rows:
        names = expand(row[0])
        if " – " in row[1]:  # the smallest and the largest of the group
            low, high = row[1].split(" – ")
            counts = sorted(parameters(n) for n in names)
            assert (low, high) == (rendered(counts[0], low), rendered(counts[-1], high)), row
        else:
            documented = row[1].split(" / ")
            assert len(documented) == len(names), row
            for name, doc in zip(names, documented, strict=True):
                assert doc == rendered(parameters(name), doc), f"README: {name} says {doc}"


def test_reference_checkpoints_table_counts_are_the_models_own() -> None:
    rows = table_rows((REPO / "docs" / "reference-checkpoints.md").read_text())
    assert [row[1].strip("`") for row in rows] == ["unet", "attn_unet", "r2unet", "attn_r2unet"]
    for _, name, documented in rows:
        assert documented == f"{parameters(name.strip('`')):,}", name
