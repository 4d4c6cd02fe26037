"""Plugins that clash, fail to import or misbehave stay isolated: built-ins and every other plugin work.

Each fake plugin is a real distribution (a ``*.dist-info`` folder with ``entry_points.txt`` beside
its module) in a temporary folder put on the path, so nothing is installed into the environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import unetzoo
import unetzoo.registry as registry_module
from tests.conftest import REPO
from unetzoo.data import DATASETS, Contours, LabelMe, PairedFolders, SliceStack, Volumes
from unetzoo.data import registry as data_registry
from unetzoo.registry import PluginLoadError, PluginWarning, Registry, UnknownNameError

GOOD = '''
from pathlib import Path

from torch import nn

from unetzoo.data import Item, Sample, SegmentationDataset, read_image, read_mask


class GoodPairs(SegmentationDataset):
    """Pairs listed in pairs.txt, one "image mask" line each; masks hold class ids 0, 1, 2."""

    format = "goodpairs"

    def __init__(self, root, strict=True):
        root = Path(root)
        lines = [line.split() for line in (root / "pairs.txt").read_text().splitlines() if line.strip()]
        items = [Item(Path(i).stem, {"image": root / i, "mask": root / m}) for i, m in lines]
        super().__init__(root, items, class_names=["background", "disc", "cup"], strict=strict)

    @classmethod
    def detect(cls, root):
        return (Path(root) / "pairs.txt").is_file()

    def read(self, item):
        image, mask = item.files["image"], item.files["mask"]
        return Sample(item.id, read_image(image), read_mask(mask, mode="index"), None, {"mask_path": str(mask)})


class GoodLoss(nn.Module):
    """The mean logit."""

    def forward(self, logits, target):
        return logits.mean()
'''

TWIN = '''
from torch import nn


class TwinLoss(nn.Module):
    """Always 42."""

    def forward(self, logits, target):
        return logits.sum() * 0 + 42
'''

CLASH = '''
class Paired:
    """A dataset format that takes the name of a built-in one."""

    def __init__(self, root, strict=True):
        raise AssertionError("the built-in paired format must keep its name")


def dice(**kwargs):
    raise AssertionError("the built-in dice loss must keep its name")
'''

BROKEN = 'raise ImportError("broken on purpose")\n'

FLAKY = '''
class Flaky:
    """A dataset format whose detect() raises on any folder."""

    @classmethod
    def detect(cls, root):
        raise RuntimeError("cannot look at this folder")
'''

NOSTRICT = '''
from unetzoo.data import PairedFolders


class NoStrict(PairedFolders):
    """images/ + masks/ folders, opened without the strict argument."""

    format = "nostrict"

    def __init__(self, root):
        super().__init__(root, "images", "masks")

    @classmethod
    def detect(cls, root):
        return (root / "images").is_dir()
'''

# distribution: (module name, module source, {group: {entry name: "module:attribute"}})
PACKAGES = {
    "unetzoo-good": ("unetzoo_good", GOOD, {
        "unetzoo.datasets": {"goodpairs": "unetzoo_good:GoodPairs"},
        "unetzoo.losses": {"good_loss": "unetzoo_good:GoodLoss"},
    }),
    "unetzoo-twin": ("unetzoo_twin", TWIN, {"unetzoo.losses": {"good_loss": "unetzoo_twin:TwinLoss"}}),
    "unetzoo-clash": ("unetzoo_clash", CLASH, {
        "unetzoo.datasets": {"paired": "unetzoo_clash:Paired"},
        "unetzoo.losses": {"dice": "unetzoo_clash:dice"},
    }),
    "unetzoo-broken": ("unetzoo_broken", BROKEN, {
        "unetzoo.datasets": {"brokenfmt": "unetzoo_broken:Format"},
        "unetzoo.losses": {"broken_loss": "unetzoo_broken:Loss"},
    }),
    "unetzoo-flaky": ("unetzoo_flaky", FLAKY, {"unetzoo.datasets": {"flaky": "unetzoo_flaky:Flaky"}}),
    "unetzoo-nostrict": ("unetzoo_nostrict", NOSTRICT, {"unetzoo.datasets": {"nostrict": "unetzoo_nostrict:NoStrict"}}),
}  # fmt: skip

BUILTIN_FORMATS = (PairedFolders, LabelMe, Contours, Volumes, SliceStack)


def make_distribution(
    site: Path, dist: str, module: str, source: str, groups: dict[str, dict[str, str]]
) -> None:
    """A distribution as pip leaves it in site-packages: the module and its ``.dist-info`` folder."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    sections = [
        f"[{group}]\n" + "".join(f"{n} = {t}\n" for n, t in names.items()) for group, names in groups.items()
    ]
    (info / "entry_points.txt").write_text("\n".join(sections))


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """Every package of ``PACKAGES`` in one folder, as if pip-installed there."""
    folder = tmp_path / "site"
    for dist, (module, source, groups) in PACKAGES.items():
        make_distribution(folder, dist, module, source, groups)
    return folder


@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget which plugin warnings this process has shown, so this test sees its own."""
    monkeypatch.setattr(registry_module, "_warned", set())


def run_unetzoo(site: Path, *args: str) -> subprocess.CompletedProcess:
    """A fresh process with the plugin folder installed on its path; output piped, as in a script."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env.update(PYTHONPATH=str(site), OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=120
    )


def write_goodpairs(root: Path) -> np.ndarray:
    """A one-sample ``goodpairs`` dataset; returns its mask (class ids 0, 1, 2)."""
    root.mkdir(parents=True)
    mask = np.zeros((6, 8), np.uint8)
    mask[1:5, 1:7] = 1
    mask[2:4, 3:5] = 2
    Image.fromarray(np.full((6, 8, 3), 90, np.uint8)).save(root / "eye.png")
    Image.fromarray(mask).save(root / "eye_mask.png")
    (root / "pairs.txt").write_text("eye.png eye_mask.png\n")
    return mask


def write_paired(root: Path) -> None:
    """A two-sample images/ + masks/ dataset of 0/255 masks."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for name in ("a", "b"):
        mask = np.zeros((8, 8), np.uint8)
        mask[2:6, 2:6] = 255
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "images" / f"{name}.png")
        Image.fromarray(mask).save(root / "masks" / f"{name}.png")


def fresh_datasets() -> Registry:
    """A dataset registry like unetzoo's, not yet having looked at the installed plugins."""
    registry = Registry("dataset", group="unetzoo.datasets", listing="unetzoo.list_datasets()")
    for cls in BUILTIN_FORMATS:
        registry.add(cls.format, cls)
    return registry


def plugin_warnings(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, PluginWarning)]


# -- the story of a new user: three packages beside a good one, all through the command line --


def test_list_plugins_shows_each_entry_with_its_package_and_status(site: Path) -> None:
    result = run_unetzoo(site, "-m", "unetzoo.cli", "list", "plugins")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()

    def line(name: str, package: str) -> str:
        found = [s for s in lines if f" {name} " in s and f" {package} " in s]
        assert len(found) == 1, f"{name} from {package}: {len(found)} lines in\n{result.stdout}"
        return found[0]

    good_format, good_loss = line("goodpairs", "unetzoo-good"), line("good_loss", "unetzoo-good")
    assert (
        "unetzoo.datasets" in good_format
        and "unetzoo_good:GoodPairs" in good_format
        and "loaded" in good_format
    )
    assert "unetzoo.losses" in good_loss and "loaded" in good_loss
    assert "rejected: clashes with the dataset 'paired' from unetzoo," in line("paired", "unetzoo-clash")
    assert "rejected: clashes with the loss 'dice' from unetzoo," in line("dice", "unetzoo-clash")
    assert "rejected: clashes with the loss 'good_loss' from unetzoo-good," in line(
        "good_loss", "unetzoo-twin"
    )
    assert "failed: ImportError: broken on purpose" in line("broken_loss", "unetzoo-broken")
    assert "unetzoo_broken:Format" in line("brokenfmt", "unetzoo-broken")
    assert "warning: check-data cannot open it" in line("nostrict", "unetzoo-nostrict")
    assert "strict" in line("nostrict", "unetzoo-nostrict")
    # each problem is also a warning on stderr, printed once
    assert result.stderr.count("broken_loss (unetzoo-broken: unetzoo_broken:Loss) failed to load") == 1
    assert result.stderr.count("good_loss (unetzoo-twin: unetzoo_twin:TwinLoss) is rejected") == 1
    assert "Traceback" not in result.stderr


def test_check_data_on_a_real_dataset_works_with_broken_plugins_installed(site: Path, kvasir: Path) -> None:
    result = run_unetzoo(site, "-m", "unetzoo.cli", "check-data", str(kvasir))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{kvasir}: 12 samples, format paired" in " ".join(result.stdout.split())
    assert "no problems found" in result.stdout
    # the plugins that misbehaved on this folder are named, each once, and why
    flaky = "dataset plugin flaky (unetzoo-flaky: unetzoo_flaky:Flaky) failed: detect("
    assert result.stderr.count(flaky) == 1, result.stderr
    assert "RuntimeError: cannot look at this folder" in result.stderr
    nostrict = "dataset plugin nostrict (unetzoo-nostrict: unetzoo_nostrict:NoStrict) failed: it recognises"
    assert result.stderr.count(nostrict) == 1, result.stderr
    assert "unexpected keyword argument 'strict'" in result.stderr
    assert "Traceback" not in result.stderr


def test_good_plugin_and_builtins_work_through_the_api(site: Path, kvasir: Path, tmp_path: Path) -> None:
    expected = write_goodpairs(tmp_path / "eyes")
    script = f"""
import torch, unetzoo
from unetzoo.data import DATASETS, PairedFolders, open_dataset
from unetzoo.losses import create_loss
good = open_dataset({str(tmp_path / "eyes")!r})
print("good", good.format, good[0].mask.tolist() == {expected.tolist()!r})
print("good_loss", float(create_loss("good_loss")(torch.full((1, 1, 2, 2), 3.0), None)))
for _ in range(3):
    print("paired", DATASETS.get("paired") is PairedFolders, open_dataset({str(kvasir)!r}, format="paired").format)
print("dice", type(create_loss("dice")).__module__)
print("detected", open_dataset({str(kvasir)!r}).format, open_dataset({str(kvasir)!r}, strict=False).format)
try:
    create_loss("broken_loss")
except unetzoo.UnknownNameError as exc:
    print("lookup", exc)
"""
    result = run_unetzoo(site, "-c", script)
    assert result.returncode == 0, result.stderr
    out = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert out["good"] == "goodpairs True"
    assert out["good_loss"] == "3.0"  # GoodLoss, not the twin's 42
    assert out["paired"] == "True paired"
    assert out["dice"] == "unetzoo.losses"
    assert out["detected"] == "nostrict paired"  # nostrict opens it, unless strict=False is asked for
    assert (
        out["lookup"]
        == "loss 'broken_loss' from unetzoo-broken failed to load: ImportError: broken on purpose"
    )
    # three lookups of the datasets, one warning per problem
    assert result.stderr.count("dataset plugin paired (unetzoo-clash: unetzoo_clash:Paired) is rejected") == 1
    assert result.stderr.count("brokenfmt (unetzoo-broken: unetzoo_broken:Format) failed to load") == 1


# -- the same rules, in this process --


def test_first_distribution_by_name_keeps_a_clashing_name_whatever_the_path_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_warnings: None
) -> None:
    group = {"unetzoo_test.widgets": {"shared": "{}:VALUE", "own": "{}:VALUE"}}
    for dist, value in (("alpha-widgets", "alpha"), ("zeta-widgets", "zeta")):  # zeta ends first on the path
        module = f"{dist.replace('-', '_')}_mod"
        groups = {g: {n: t.format(module) for n, t in names.items()} for g, names in group.items()}
        make_distribution(tmp_path / dist, dist, module, f"VALUE = {value!r}\n", groups)
        monkeypatch.syspath_prepend(str(tmp_path / dist))
    from importlib import metadata

    found = [ep.dist.name for ep in metadata.entry_points(group="unetzoo_test.widgets")]
    assert found[0] == "zeta-widgets"  # the path order alone would let zeta win
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        reg = Registry("widget", group="unetzoo_test.widgets")
        assert reg.names() == ["own", "shared"]
    assert sorted(plugin_warnings(record)) == [
        f"unetzoo: widget plugin {name} (zeta-widgets: zeta_widgets_mod:VALUE) is rejected: it clashes with "
        f"the widget {name!r} from alpha-widgets, which keeps the name; rename one of them"
        for name in ("own", "shared")
    ]
    for _ in range(3):
        assert reg.get("shared") == "alpha" and reg.entry("shared").source == "alpha-widgets"
        assert reg.names() == ["own", "shared"]
    assert reg.entry("own").source == "alpha-widgets"  # zeta's 'own' clashes too
    statuses = {(p.name, p.package): (p.status, p.reason) for p in reg.plugins}
    assert statuses[("shared", "alpha-widgets")] == ("loaded", "")
    assert statuses[("shared", "zeta-widgets")] == (
        "rejected", "clashes with the widget 'shared' from alpha-widgets, which keeps the name"
    )  # fmt: skip


def test_builtin_registered_after_the_plugins_takes_its_name_back(
    monkeypatch: pytest.MonkeyPatch, fresh_warnings: None
) -> None:
    from importlib import metadata

    eps = metadata.EntryPoints([metadata.EntryPoint("late", "json:dumps", "unetzoo_test.late")])
    monkeypatch.setattr(metadata, "entry_points", lambda group=None: eps.select(group=group))
    reg = Registry("widget", group="unetzoo_test.late")
    assert reg.names() == ["late"]
    with pytest.warns(PluginWarning, match="rejected: it clashes with the widget 'late' from unetzoo"):
        reg.add("late", "built-in")
    assert reg.get("late") == "built-in"
    assert [p.status for p in reg.plugins] == ["rejected"]
    with pytest.raises(ValueError, match="'late' from unetzoo clashes"):
        reg.add("late", "again")  # two built-ins of one name stay a programming error


def test_lookup_of_a_failed_plugin_names_its_package_and_error(
    site: Path, monkeypatch: pytest.MonkeyPatch, fresh_warnings: None
) -> None:
    monkeypatch.syspath_prepend(str(site))
    reg = Registry("loss", group="unetzoo.losses")
    with pytest.warns(PluginWarning), pytest.raises(PluginLoadError) as err:
        reg.get("broken_loss")
    assert (
        str(err.value)
        == "loss 'broken_loss' from unetzoo-broken failed to load: ImportError: broken on purpose"
    )
    assert isinstance(err.value, UnknownNameError)
    with pytest.raises(
        UnknownNameError, match=r"unknown loss 'nothing_like_it'\. See unetzoo\.list_losses\(\)"
    ):
        reg.get("nothing_like_it")
    assert reg.get("good_loss").__module__ == "unetzoo_good"


def test_each_plugin_warning_is_shown_once_per_process(
    site: Path, monkeypatch: pytest.MonkeyPatch, fresh_warnings: None
) -> None:
    monkeypatch.syspath_prepend(str(site))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for _ in range(2):  # a second registry of the group scans the plugins again
            reg = Registry("loss", group="unetzoo.losses")
            for _ in range(3):
                reg.names()
                with pytest.raises(PluginLoadError):
                    reg.get("broken_loss")
                reg.plugin_errors  # noqa: B018
    shown = plugin_warnings(record)
    assert len(shown) == 2, shown
    assert sum("broken_loss (unetzoo-broken: unetzoo_broken:Loss) failed to load" in s for s in shown) == 1
    assert sum("good_loss (unetzoo-twin: unetzoo_twin:TwinLoss) is rejected" in s for s in shown) == 1


def test_a_raising_detect_or_a_format_without_strict_does_not_stop_detection(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_warnings: None
) -> None:
    monkeypatch.syspath_prepend(str(site))
    datasets = fresh_datasets()
    monkeypatch.setattr(data_registry, "DATASETS", datasets)
    root = tmp_path / "shapes"
    write_paired(root)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        checked = data_registry.open_dataset(root, strict=False)  # as check-data opens it
        again = data_registry.open_dataset(root, strict=False)
    assert (type(checked), checked.format, len(checked), type(again)) == (
        PairedFolders,
        "paired",
        2,
        PairedFolders,
    )
    assert int(checked[0].mask.sum()) == 16  # the 4×4 square of 255s, read as binary
    shown = plugin_warnings(record)  # each once, though the folder was opened twice
    assert len(shown) == 4, shown
    for part in (
        "brokenfmt (unetzoo-broken",
        "paired (unetzoo-clash",
        "flaky (unetzoo-flaky",
        "nostrict (unetzoo-",
    ):
        assert sum(part in s for s in shown) == 1, (part, shown)
    flaky = datasets.status("flaky", "unetzoo-flaky")
    assert flaky.status == "failed" and "RuntimeError: cannot look at this folder" in flaky.reason
    nostrict = datasets.status("nostrict", "unetzoo-nostrict")
    assert nostrict.status == "failed" and "unexpected keyword argument 'strict'" in nostrict.reason
    assert data_registry.open_dataset(root).format == "nostrict"  # without strict= it opens the folder
    eyes = tmp_path / "eyes"
    mask = write_goodpairs(eyes)
    with pytest.warns(PluginWarning, match="flaky .* raised RuntimeError"):  # a new folder: a new warning
        good = data_registry.open_dataset(eyes, strict=False)
    assert good.format == "goodpairs"
    np.testing.assert_array_equal(good[0].mask, mask)


def test_unknown_names_suggest_a_listing_call_that_exists_for_every_registry() -> None:
    from unetzoo.cli import _registries

    assert Registry("loss").listing == "unetzoo.list_losses()"
    assert Registry("box").listing == "unetzoo.list_boxes()"
    assert Registry("model").listing == "unetzoo.list_models()"
    assert Registry("weights").listing == "unetzoo.list_weights()"
    registries = _registries()
    assert {r.kind for r in registries} == {"model", "dataset", "loss", "weights", "encoder weights"}
    for registry in registries:
        with pytest.raises(UnknownNameError) as err:
            registry.get("no-such-name")
        assert f"See {registry.listing} for all" in str(err.value)
        assert eval(registry.listing, {"unetzoo": unetzoo}) == registry.names(), registry.listing
    assert "losss" not in " ".join(r.listing for r in registries)
    assert DATASETS.listing == "unetzoo.list_datasets()" and unetzoo.list_datasets() == DATASETS.names()


def test_check_data_reports_a_format_constructor_that_raises_anything(tmp_path: Path, monkeypatch) -> None:
    import json

    from typer.testing import CliRunner

    from unetzoo.cli import app
    from unetzoo.data import SegmentationDataset

    class Exploding(SegmentationDataset):
        format = "exploding"

        def __init__(self, root, strict: bool = True) -> None:
            raise RuntimeError("the index file is corrupt")

    monkeypatch.setitem(DATASETS._entries, "exploding", registry_module.Entry("exploding", Exploding, "boom-pkg"))
    result = CliRunner().invoke(app, ["check-data", str(tmp_path), "--format", "exploding", "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["problems"] == [{"id": "", "file": str(tmp_path), "level": "error",
                                   "message": "RuntimeError: the index file is corrupt"}]  # fmt: skip


def test_a_weights_plugin_giving_something_else_fails_alone(tmp_path: Path) -> None:
    good = '''
from unetzoo import PretrainedWeights

WEIGHTS = [PretrainedWeights(tag="unet.goodtag", repo_id="org/good", revision="r", sha256="0" * 64)]
'''
    make_distribution(tmp_path, "unetzoo-goodw", "unetzoo_goodw", good, {"unetzoo.weights": {"good": "unetzoo_goodw:WEIGHTS"}})
    make_distribution(tmp_path, "unetzoo-wrongw", "unetzoo_wrongw", 'WEIGHTS = ["unet.wrong"]\n',
                      {"unetzoo.weights": {"wrong": "unetzoo_wrongw:WEIGHTS"}})  # fmt: skip
    listed = run_unetzoo(tmp_path, "-c", "import unetzoo; print(unetzoo.list_pretrained())")
    assert listed.returncode == 0, listed.stderr
    assert "unet.goodtag" in listed.stdout and "unet.wrong" not in listed.stdout
    assert "wrong (unetzoo-wrongw) failed: gives str, not a PretrainedWeights" in listed.stderr
    shown = run_unetzoo(tmp_path, "-m", "unetzoo.cli", "list", "plugins")
    assert shown.returncode == 0, shown.stderr
    row = next(line for line in shown.stdout.splitlines() if "unetzoo-wrongw" in line)
    assert "failed" in row and "gives str" in row
