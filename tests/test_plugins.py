"""Plugins as a third party ships them: real packages installed with pip, used through the API."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO

PLUGINS = {
    "unetzoo-papila": REPO / "plugins" / "unetzoo-papila",
    "unetzoo-lovasz": REPO / "plugins" / "unetzoo-lovasz",
}


def pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
        check=True, capture_output=True, text=True,
    )  # fmt: skip


def install(*paths: Path) -> None:
    """pip install into this test environment, offline: no dependencies fetched, no build isolation."""
    pip("install", "--no-deps", "--no-build-isolation", "--no-index", *map(str, paths))


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, check=check)


@pytest.fixture(scope="module")
def installed():
    install(*PLUGINS.values())
    yield
    pip("uninstall", "-y", *PLUGINS)


def test_unetzoo_list_shows_plugins_with_their_packages(installed) -> None:
    out = run("-m", "unetzoo.cli", "list", "plugins").stdout
    assert "papila" in out and "unetzoo-papila" in out
    assert "lovasz_hinge" in out and "unetzoo-lovasz" in out
    datasets = run("-m", "unetzoo.cli", "list", "datasets").stdout
    assert "papila" in datasets and "labelme" in datasets
    assert "lovasz_hinge" in run("-m", "unetzoo.cli", "list", "losses").stdout


def test_plugins_through_the_public_api(installed, tmp_path: Path) -> None:
    script = f"""
import sys, torch
sys.path.insert(0, {str(PLUGINS["unetzoo-papila"] / "tests")!r})  # the plugin's own test helper
from test_papila import make_papila
from pathlib import Path
import unetzoo
from unetzoo.data import open_dataset
from unetzoo.losses import create_loss
ds = open_dataset(make_papila(Path({str(tmp_path)!r}) / "PAPILA"))
sample = ds[0]
loss = create_loss("lovasz_hinge")
target = torch.from_numpy(sample.mask > 0).long()[None]
print(ds.format, len(ds), sorted(set(sample.mask.ravel().tolist())), float(loss(torch.zeros(1, 1, *target.shape[1:]), target)))
"""
    out = run("-c", script).stdout.split()
    assert out[:5] == ["papila", "2", "[0,", "1,", "2]"]
    assert float(out[5]) > 0


@pytest.mark.parametrize("name", list(PLUGINS))
def test_plugin_own_tests_pass(installed, name: str) -> None:
    result = run("-m", "pytest", "-q", "-p", "no:cacheprovider", str(PLUGINS[name] / "tests"), check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_plugin_is_reported_and_the_rest_works(tmp_path: Path) -> None:
    pkg = tmp_path / "broken"
    (pkg / "unetzoo_broken").mkdir(parents=True)
    (pkg / "unetzoo_broken" / "__init__.py").write_text(
        "raise ImportError('this plugin is broken on purpose')\n"
    )
    (pkg / "pyproject.toml").write_text(
        textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "unetzoo-broken-example"
        version = "0.0.1"
        [project.entry-points."unetzoo.losses"]
        broken_loss = "unetzoo_broken:Loss"
        [tool.setuptools]
        packages = ["unetzoo_broken"]
    """)
    )
    install(pkg)
    try:
        plugins = run("-m", "unetzoo.cli", "list", "plugins")
        assert plugins.returncode == 0
        assert "broken_loss (unetzoo-broken-example: unetzoo_broken:Loss)" in plugins.stdout
        assert "this plugin is broken on purpose" in plugins.stdout
        losses = run("-m", "unetzoo.cli", "list", "losses")
        assert losses.returncode == 0 and "dice_focal" in losses.stdout
        assert "broken_loss" in losses.stderr and "failed to load" in losses.stderr
        api = run(
            "-c",
            "import unetzoo.losses as L; print(L.create_loss('dice')(__import__('torch').zeros(1,1,2,2), __import__('torch').zeros(1,2,2)).item())",
        )
        assert api.returncode == 0 and "failed to load" in api.stderr
    finally:
        pip("uninstall", "-y", "unetzoo-broken-example")


def test_the_docs_example_plugin_works_as_written(tmp_path: Path) -> None:
    """The package on docs/plugins.md, copied from the page alone, registers a dataset and a loss."""
    import re

    doc = (REPO / "docs" / "plugins.md").read_text()
    blocks = re.findall(r"```(\w+)\n(.*?)```", doc, re.S)
    pkg = tmp_path / "my-unetzoo-extras"
    (pkg / "src" / "my_unetzoo_extras").mkdir(parents=True)
    (pkg / "pyproject.toml").write_text(next(b for lang, b in blocks if lang == "toml"))
    code = next(b for lang, b in blocks if lang == "python" and "class CsvPairs" in b)
    (pkg / "src" / "my_unetzoo_extras" / "__init__.py").write_text(code)
    data = tmp_path / "my-data"
    (data / "img").mkdir(parents=True)
    (data / "lab").mkdir()
    import numpy as np
    from PIL import Image

    mask = np.zeros((16, 16), np.uint8)
    mask[2:6, 2:6] = 255
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(data / "img" / "a.png")
    Image.fromarray(mask).save(data / "lab" / "a.png")
    (data / "pairs.csv").write_text("image,mask\nimg/a.png,lab/a.png\n")
    install(pkg)
    try:
        out = run("-m", "unetzoo.cli", "list", "plugins").stdout
        assert "csvpairs" in out and "soft_iou" in out and "my-unetzoo-extras" in out
        script = (
            "import torch; from unetzoo.data import open_dataset; from unetzoo.losses import create_loss; "
            f"ds = open_dataset({str(data)!r}); "
            "print(ds.format, int(ds[0].mask.sum()), float(create_loss('soft_iou')(torch.zeros(1, 1, 2, 2), torch.ones(1, 2, 2))))"
        )
        fmt, foreground, loss = run("-c", script).stdout.split()
        assert (fmt, foreground) == ("csvpairs", "16")
        assert abs(float(loss) - (1 - 3 / 5)) < 1e-6  # p = 0.5 on 4 pixels: 1 - (2 + 1) / (2 + 4 - 2 + 1)
    finally:
        pip("uninstall", "-y", "my-unetzoo-extras")
