"""Command-line failures are one line on stderr with exit status 2; check-data's JSON report and tables."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import unetzoo
from unetzoo.cli import app
from unetzoo.data.base import Problem
from unetzoo.hub import ModelConfigError
from unetzoo.weight_tags import TABLE_ENV

TINY = dict(encoder_channels=(4, 8), bottleneck_channels=8, decoder_channels=(8, 4))


def run(*args: str, **env: str):
    """``unetzoo ARGS`` through typer's runner, stderr kept apart from stdout."""
    return CliRunner().invoke(app, list(args), env=env or None)


def one_line_error(result, *needles: str) -> str:
    """The single stderr line of a failed command, after checking status 2, no traceback and the needles."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def no_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TABLE_ENV, raising=False)


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    """A tiny U-Net saved with save_pretrained."""
    return unetzoo.create_model("unet", **TINY).save_pretrained(tmp_path / "model")


def grey_png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) * 4).save(path)
    return path


# ----------------------------------------------------------------------------- download, push, info


def test_download_of_a_model_without_published_weights(no_table) -> None:
    one_line_error(run("download", "unet"), "no published weights for 'unet'")


def test_push_offline_is_one_line(saved: Path, hf_cache: Path) -> None:
    one_line_error(run("push", str(saved), "me/tiny"), f"push of {saved} to 'me/tiny' failed", "offline")


def test_push_without_a_token_is_one_line(saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import LocalTokenNotFoundError

    def no_token(self, *args, **kwargs):
        raise LocalTokenNotFoundError("Token is required (`token=True`), but no token found.\nRun `hf auth login`.")

    monkeypatch.setattr("unetzoo.models.saving.check_hub", lambda: None)
    monkeypatch.setattr(HfApi, "create_repo", no_token)
    one_line_error(run("push", str(saved), "me/tiny"), "LocalTokenNotFoundError: Token is required")


@pytest.mark.parametrize(("flag", "value"), [("--classes", "-1"), ("--in-channels", "0")])
def test_info_with_bad_counts(flag: str, value: str) -> None:
    argument = flag[2:].replace("-", "_")
    one_line_error(run("info", "unet", flag, value), f"unet: {argument}={value}; give a whole number >= 1")


# ----------------------------------------------------------------------------- weights tables

BROKEN_TABLES = {
    "missing": (None, "cannot be read (No such file or directory)"),
    "not-json": (b"[{'tag': 'unet.x'}]", "not valid JSON"),
    "not-utf8": ('[{"tag": "unet.caf\u00e9"}]'.encode("latin-1"), "not UTF-8 text"),
    "not-a-list": (b'{"tag": "unet.x"}', "holds a JSON dict; write a list of objects"),
    "entry-not-object": (b'["unet.x"]', "entry 1 is a JSON str, not an object"),
    "missing-field": (b'[{"tag": "unet.x", "repo_id": "o/r", "revision": "main"}]', "field 'sha256' is missing"),
    "wrong-type": (b'[{"tag": "unet.x", "repo_id": "o/r", "revision": "main", "sha256": 5}]',
                   "field 'sha256' is 5, not a str"),
    "unknown-field": (b'[{"tag": "unet.x", "repo_id": "o/r", "revision": "main", "sha256": "0", "url": "x"}]',
                      "unknown field 'url'"),
}  # fmt: skip

TABLE_COMMANDS = {
    "list": lambda tmp: ["list", "--pretrained"],
    "info": lambda tmp: ["info", "unet"],
    "download": lambda tmp: ["download", "unet.x"],
    "predict": lambda tmp: ["predict", "unet.x", str(grey_png(tmp / "in" / "a.png")), "--out", str(tmp / "out")],
    "evaluate": lambda tmp: ["evaluate", "unet.x", str(tmp)],
    "export": lambda tmp: ["export", "unet.x", "--out", str(tmp / "m.onnx")],
}


@pytest.mark.parametrize("command", list(TABLE_COMMANDS))
@pytest.mark.parametrize("case", list(BROKEN_TABLES))
def test_an_unreadable_weights_table_is_one_line_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           command: str, case: str) -> None:  # fmt: skip
    content, what = BROKEN_TABLES[case]
    table = tmp_path / "weights.json"
    if content is not None:
        table.write_bytes(content)
    monkeypatch.setenv(TABLE_ENV, str(table))
    result = run(*TABLE_COMMANDS[command](tmp_path))
    line = one_line_error(result, str(table), TABLE_ENV, what)
    assert line.count(str(table)) == 1 and not result.stdout.strip()


def test_a_good_table_after_a_broken_one_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = tmp_path / "weights.json"
    table.write_text("[")
    monkeypatch.setenv(TABLE_ENV, str(table))
    one_line_error(run("list", "--pretrained"), "not valid JSON")
    table.write_text('[{"tag": "unet.mine", "repo_id": "org/tiny", "revision": "abc", "sha256": "0"}]')
    result = run("list", "--pretrained")
    assert result.exit_code == 0 and "unet.mine" in result.output and "org/tiny" in result.output
    assert "unet.mine" in run("info", "unet").output


# ----------------------------------------------------------------------------- model config.json

BROKEN_CONFIGS = {
    "not-an-object": (b"[1, 2]", "holds a list, not an object"),
    "no-architecture": (b'{"args": {}}', "no 'architecture' key"),
    "architecture-not-a-name": (b'{"architecture": 3}', "'architecture' is a number (3), not a model name"),
    "unknown-architecture": (b'{"architecture": "unett"}', "'architecture': unknown model 'unett'; closest: unet"),
    "args-not-an-object": (b'{"architecture": "unet", "args": [4, 8]}', "'args' is a list, not an object"),
    "wrong-type": (b'{"architecture": "unet", "args": {"classes": "two"}}',
                   "'args' \u2192 'classes': unet: classes='two'; give a value of type int"),
    "bad-value": (b'{"architecture": "unet", "args": {"encoder_channels": []}}', "'args' \u2192 'encoder_channels'"),
    "unknown-argument": (b'{"architecture": "unet", "args": {"widths": [4]}}',
                         "'args' \u2192 'widths': model 'unet' takes no such argument"),
    "not-utf8": ('{"architecture": "unet", "dataset": "caf\u00e9"}'.encode("latin-1"), "not UTF-8 text"),
    "not-json": (b'{"architecture": "unet",}', "not valid JSON"),
}  # fmt: skip


def break_config(folder: Path, case: str) -> tuple[Path, str]:
    content, what = BROKEN_CONFIGS[case]
    (folder / "config.json").write_bytes(content)
    return folder / "config.json", what


@pytest.mark.parametrize("case", list(BROKEN_CONFIGS))
def test_a_bad_config_json_names_the_file_and_the_key(saved: Path, case: str) -> None:
    path, what = break_config(saved, case)
    loaders = [lambda: unetzoo.from_pretrained(saved), lambda: unetzoo.create_model("unet", pretrained=str(saved)),
               lambda: unetzoo.create_model(str(saved))]  # fmt: skip
    for load in loaders:
        with pytest.raises(ModelConfigError) as caught:
            load()
        assert str(caught.value).startswith(f"{path}: ") and what in str(caught.value)
        assert "\n" not in str(caught.value)


@pytest.mark.parametrize("case", ["not-an-object", "unknown-architecture", "wrong-type", "not-utf8", "not-json"])
@pytest.mark.parametrize("command", ["info", "predict", "evaluate", "export"])
def test_commands_given_a_folder_with_a_bad_config_are_one_line(saved: Path, tmp_path: Path, case: str,
                                                                 command: str) -> None:  # fmt: skip
    path, what = break_config(saved, case)
    args = {
        "info": ["info", str(saved)],
        "predict": ["predict", str(saved), str(grey_png(tmp_path / "in" / "a.png")), "--out", str(tmp_path / "o")],
        "evaluate": ["evaluate", str(saved), str(tmp_path)],
        "export": ["export", str(saved), "--out", str(tmp_path / "m.onnx")],
    }[command]
    one_line_error(run(*args), str(path), what)


def test_info_of_a_saved_folder_shows_the_model_it_rebuilds(tmp_path: Path) -> None:
    model = unetzoo.create_model("unet", in_channels=1, classes=2, **TINY)
    folder = model.save_pretrained(tmp_path / "grey")
    result = run("info", str(folder), "--size", "32")
    assert result.exit_code == 0, result.output
    assert f"{folder} (unet)" in result.output
    assert f"parameters: {sum(p.numel() for p in model.parameters()):,}" in result.output
    assert "input: (N, 1, H, W)" in result.output and "multiple of 4" in result.output
    assert "mean [0.0], std [1.0]" in result.output
    assert '"classes": 2' in result.output
    one_line_error(run("info", str(tmp_path)), f"{tmp_path}: a folder without config.json")


def test_a_bad_override_is_the_callers_error_not_the_files(saved: Path) -> None:
    with pytest.raises(ValueError, match="^unet: classes=0") as caught:
        unetzoo.from_pretrained(saved, classes=0)
    assert not isinstance(caught.value, ModelConfigError)


# ----------------------------------------------------------------------------- colour tables


def rgb_dataset(root: Path) -> Path:
    """Three 8×8 images whose masks are red on top, black below."""
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(root / "images" / f"{i}.png")
        mask = np.zeros((8, 8, 3), np.uint8)
        mask[:4] = (255, 0, 0)
        Image.fromarray(mask).save(root / "masks" / f"{i}.png")
    return root


@pytest.mark.parametrize(
    "value", ['{"#ff0000": 1', '{"#ff00": 1}', '{"255,0": 1}', '{"#ff0000": "one"}', '{"#ff0000": 300}', "no_such_preset"]
)
def test_a_malformed_colour_table_names_the_option(tmp_path: Path, value: str) -> None:
    data = rgb_dataset(tmp_path / "data")
    one_line_error(run("check-data", str(data), "-o", f"colors={value}"), "--option colors")
    finetune = run("finetune", "unet", str(data), "--out", str(tmp_path / "run"), "--data-arg", f"colors={value}")
    one_line_error(finetune, "--data-arg colors")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("table", ['{"#ff0000": 1, "#000000": 0}', '{"255,0,0": 1, "0,0,0": 0}'])
def test_the_documented_colour_table_forms_work(tmp_path: Path, table: str) -> None:
    result = run("check-data", str(rgb_dataset(tmp_path / "data")), "-o", f"colors={table}", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["samples"] == 3 and len(report["classes"]) == 2 and report["problems"] == []


def test_the_colour_forms_are_documented() -> None:
    import typer.main

    from tests.conftest import REPO

    commands = typer.main.get_command(app).commands
    option = next(p for p in commands["check-data"].params if "--option" in p.opts)
    data_arg = next(p for p in commands["finetune"].params if "--data-arg" in p.opts)
    docs = (REPO / "docs" / "cli.md").read_text()
    for text in ('"#rrggbb"', '"r,g,b"', "colors=suim", "--option colors"):
        assert text in docs, text
    for text in ('"#rrggbb"', '"r,g,b"', "colors=suim"):
        assert text in option.help, text
    assert "colors=" in data_arg.help


# ----------------------------------------------------------------------------- check-data --json and tables


@pytest.fixture
def kvasir_three(shared: Path, tmp_path: Path) -> Path:
    """Three real Kvasir-SEG pairs; the mask of the second is removed."""
    source = shared / "datasets" / "Kvasir-SEG"
    images = sorted((source / "images").iterdir())[:3]
    for sub in ("images", "masks"):
        (tmp_path / "kvasir" / sub).mkdir(parents=True)
    for image in images:
        shutil.copyfile(image, tmp_path / "kvasir" / "images" / image.name)
        shutil.copyfile(source / "masks" / image.name, tmp_path / "kvasir" / "masks" / image.name)
    (tmp_path / "kvasir" / "masks" / images[1].name).unlink()
    return tmp_path / "kvasir"


def test_check_data_json_report_on_real_data(kvasir_three: Path) -> None:
    missing = sorted((kvasir_three / "images").iterdir())[1]
    result = run("check-data", str(kvasir_three), "--json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["path"] == str(kvasir_three) and report["format"] == "paired"
    assert report["samples"] == 2 and report["classes"] == ["background", "foreground"]
    assert report["errors"] == 1
    errors = [p for p in report["problems"] if p["level"] == "error"]
    assert len(errors) == 1 and set(errors[0]) == {"id", "file", "message", "level"}
    assert errors[0]["id"] == missing.stem and errors[0]["file"] == str(missing)
    assert "without a mask" in errors[0]["message"]
    assert run("check-data", str(kvasir_three)).exit_code == 1  # the table form exits the same


class FakeDataset:
    """What check-data reads of a dataset, with chosen problems."""

    format, class_names, mask_encoding = "fake", ["background", "thing"], "binary 0/255"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems

    def __len__(self) -> int:
        return 7

    def check(self) -> list[Problem]:
        return self.problems


LONG_ID = "sample_" + "x" * 150
LONG_FILE = "/data/" + "deep/" * 60 + "image_000123.png"


@pytest.mark.parametrize("as_json", [False, True])
def test_warnings_alone_exit_zero_and_show_a_level_column(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                          as_json: bool) -> None:  # fmt: skip
    monkeypatch.delenv("COLUMNS", raising=False)
    warned = [Problem(LONG_ID, LONG_FILE, "mask is all background", "warning")]
    monkeypatch.setattr("unetzoo.data.open_dataset", lambda *a, **k: FakeDataset(warned))
    result = run("check-data", str(tmp_path), *(["--json"] if as_json else []))
    assert result.exit_code == 0, result.output
    if as_json:
        report = json.loads(result.stdout)
        assert report["mask_encoding"] == "binary 0/255" and report["samples"] == 7 and report["format"] == "fake"
        assert report["problems"] == [{"id": LONG_ID, "file": LONG_FILE, "message": "mask is all background",
                                       "level": "warning"}]  # fmt: skip
        return
    header = next(line for line in result.stdout.splitlines() if "sample" in line and "problem" in line)
    assert "level" in header
    row = next(line for line in result.stdout.splitlines() if LONG_ID in line)
    assert LONG_FILE in row and "warning" in row  # neither the id nor the path is cut or folded


def test_errors_exit_one_and_no_level_column_without_warnings(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:  # fmt: skip
    monkeypatch.delenv("COLUMNS", raising=False)
    problems = [Problem(LONG_ID, LONG_FILE, "unreadable image")]
    monkeypatch.setattr("unetzoo.data.open_dataset", lambda *a, **k: FakeDataset(problems))
    result = run("check-data", str(tmp_path))
    assert result.exit_code == 1
    header = next(line for line in result.stdout.splitlines() if "sample" in line and "problem" in line)
    assert "level" not in header
    assert any(LONG_ID in line and LONG_FILE in line for line in result.stdout.splitlines())
    mixed = [*problems, Problem("b", "b.png", "odd values", "warning")]
    monkeypatch.setattr("unetzoo.data.open_dataset", lambda *a, **k: FakeDataset(mixed))
    report = run("check-data", str(tmp_path), "--json")
    assert report.exit_code == 1 and json.loads(report.stdout)["warnings"] == 1


def test_check_data_json_when_the_dataset_cannot_be_opened(tmp_path: Path) -> None:
    result = run("check-data", str(tmp_path / "nothing"), "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["samples"] is None and report["format"] is None
    assert report["problems"][0]["level"] == "error" and report["problems"][0]["file"] == str(tmp_path / "nothing")


def test_piped_tables_never_cut_tags_or_repos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    tag, repo = "unet." + "long_tag_" * 12, "organisation-" * 6 + "/" + "repository-" * 6
    table = tmp_path / "weights.json"
    table.write_text(json.dumps([{"tag": tag, "repo_id": repo, "revision": "abc", "sha256": "0" * 64}]))
    monkeypatch.setenv(TABLE_ENV, str(table))
    result = run("list", "--pretrained")
    assert result.exit_code == 0
    assert any(tag in line and repo in line for line in result.stdout.splitlines())
    models = run("list")
    for name in unetzoo.list_models():
        assert any(f" {name} " in line for line in models.stdout.splitlines()), name
