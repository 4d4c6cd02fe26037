"""The shipped weight packages: installed from the checkout with no network, they load three
ways and reproduce, on the real test data, the numbers BENCHMARKS.md publishes for them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = {
    # package: (tag, benchmark result file, evaluation settings)
    "unetzoo-weights-drive": ("unet.drive", "accuracy_drive_shipped.json"),
    "unetzoo-weights-kvasir": ("unet_efficientnet_lite0.kvasir", "accuracy_kvasir_shipped.json"),
}


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args], check=True,
                   capture_output=True, text=True)  # fmt: skip


@pytest.fixture(scope="module")
def installed():
    present = {name: REPO / "plugins" / name for name in PACKAGES if (REPO / "plugins" / name).is_dir()}
    assert present, "no weight packages under plugins/"
    pip("install", "--no-deps", "--no-build-isolation", "--no-index", *map(str, present.values()))
    yield present
    pip("uninstall", "-y", *present)


def run(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "UNETZOO_HUB_TIMEOUT": "1"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=900)  # fmt: skip


@pytest.mark.parametrize("package", list(PACKAGES))
def test_shipped_weights_reproduce_the_published_numbers(installed, shared: Path, package: str) -> None:
    if package not in installed:
        pytest.fail(f"plugins/{package} is missing")
    tag, result_file = PACKAGES[package]
    published = json.loads((REPO / "benchmarks" / "results" / result_file).read_text())
    arch = tag.split(".")[0]
    code = f"""
import json, torch, unetzoo
from unetzoo.evaluation import evaluate, load_source
from unetzoo.weight_tags import get_weights
w = get_weights({tag!r})
hub = torch.hub.load({str(REPO)!r}, {arch!r}, pretrained={tag!r}, source="local")
model = unetzoo.create_model({arch!r}, pretrained={tag!r})
assert all(torch.equal(a, b) for a, b in zip(hub.state_dict().values(), model.state_dict().values()))
settings = json.loads({json.dumps(json.dumps(published["settings"]))})
ev = evaluate(load_source({tag!r}), **settings)
print(json.dumps({{"global": ev.global_scores, "per_image_mean": ev.per_image_scores, "metrics": w.metrics}}))
"""
    result = run(code)
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])
    for aggregation, values in published["scores"].items():
        for key, value in values.items():
            assert got[aggregation][key] == pytest.approx(value, abs=1e-4), (aggregation, key)
    # the tag's card metrics are the published ones, and BENCHMARKS.md shows them
    benchmarks = (REPO / "BENCHMARKS.md").read_text()
    for key, value in got["metrics"].items():
        assert f"{value:.4f}" in benchmarks, f"{tag}: {key} {value:.4f} is not in BENCHMARKS.md"


def test_predict_command_runs_the_shipped_weights_offline(installed, shared: Path, tmp_path: Path) -> None:
    if "unetzoo-weights-drive" not in installed:
        pytest.fail("plugins/unetzoo-weights-drive is missing")
    image = shared / "datasets" / "DRIVE" / "test" / "images" / "01_test.tif"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "unetzoo", "predict", "unet.drive", str(image), "--out",
                             str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "out" / "01_test.png").is_file()
