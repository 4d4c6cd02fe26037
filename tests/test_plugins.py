"""Plugins as a third party ships them: real packages installed with pip, used through the API."""

from __future__ import annotations

import os
import subprocess
import sys
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


def install(*paths: Path, target: Path | None = None) -> None:
    """pip install offline (no dependencies fetched, no build isolation): into this test environment,
    or into the folder ``target``, which only processes started by :func:`run` with it see."""
    where = ["--target", str(target)] if target else []
    pip("install", "--no-deps", "--no-build-isolation", "--no-index", *where, *map(str, paths))


def run(*args: str, check: bool = True, site: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    if site is not None:
        env["PYTHONPATH"] = str(site)
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
    """A package that raises on import: listed as failed with its error; every built-in still listed."""
    from tests.test_plugin_isolation import make_distribution

    site = tmp_path / "site"
    make_distribution(
        site, "unetzoo-broken-example", "unetzoo_broken", "raise ImportError('this plugin is broken on purpose')\n",
        {"unetzoo.losses": {"broken_loss": "unetzoo_broken:Loss"}},
    )  # fmt: skip
    plugins = run("-m", "unetzoo.cli", "list", "plugins", site=site)
    assert plugins.returncode == 0
    row = next(line for line in plugins.stdout.splitlines() if "broken_loss" in line)
    assert "unetzoo-broken-example" in row and "unetzoo_broken:Loss" in row
    assert "failed: ImportError: this plugin is broken on purpose" in row
    losses = run("-m", "unetzoo.cli", "list", "losses", site=site)
    assert losses.returncode == 0 and "dice_focal" in losses.stdout
    shown = "broken_loss (unetzoo-broken-example: unetzoo_broken:Loss) failed to load"
    assert losses.stderr.count(shown) == 1


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
    site = tmp_path / "site"
    install(pkg, target=site)
    out = run("-m", "unetzoo.cli", "list", "plugins", site=site).stdout
    assert "csvpairs" in out and "soft_iou" in out and "my-unetzoo-extras" in out
    script = (
        "import torch; from unetzoo.data import open_dataset; from unetzoo.losses import create_loss; "
        f"ds = open_dataset({str(data)!r}); "
        "print(ds.format, int(ds[0].mask.sum()), float(create_loss('soft_iou')(torch.zeros(1, 1, 2, 2), torch.ones(1, 2, 2))))"
    )
    fmt, foreground, loss = run("-c", script, site=site).stdout.split()
    assert (fmt, foreground) == ("csvpairs", "16")
    assert abs(float(loss) - (1 - 3 / 5)) < 1e-6  # p = 0.5 on 4 pixels: 1 - (2 + 1) / (2 + 4 - 2 + 1)
