"""The ``unetzoo`` command line."""

from __future__ import annotations

import json
import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ._version import __version__
from .checkpoint import is_repo_id
from .models import list_models
from .models.papers import full_references
from .registry import PluginWarning, UnknownNameError
from .summary import count_macs, summarize
from .weight_tags import TABLE_ENV, WeightsTableError, get_weights, list_pretrained, resolve_pretrained


class _Commands(typer.core.TyperGroup):
    """The commands; a bad weights table or model ``config.json`` ends any of them with one line."""

    def invoke(self, ctx):
        from .hub import ModelConfigError

        try:
            return super().invoke(ctx)
        except (WeightsTableError, ModelConfigError) as exc:
            _fail(str(exc))


app = typer.Typer(
    help="unetzoo: U-Net variants for 2D and 3D segmentation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=_Commands,
)


def _page_width() -> int | None:
    """Piped output (no terminal, no COLUMNS) gets a wide page, so tables never cut ids or paths."""
    return None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 1000


console = Console(width=_page_width())


def _reason(exc: BaseException) -> str:
    """``Type: first line of the message``, for one-line errors from libraries' multi-line ones."""
    lines = str(exc).splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


@app.callback()
def _main(ctx: typer.Context) -> None:
    # plugin warnings print as one line on stderr, without the Python source line, while a command runs
    previous = warnings.formatwarning

    def format_warning(message, category, filename, lineno, line=None) -> str:
        if issubclass(category, PluginWarning):
            return f"warning: {str(message).removeprefix('unetzoo: ')}\n"
        return previous(message, category, filename, lineno, line)

    warnings.formatwarning = format_warning
    ctx.call_on_close(lambda: setattr(warnings, "formatwarning", previous))


def _fail(message: str) -> None:
    Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(2)


KINDS = ("models", "datasets", "losses", "plugins")


@app.command("list")
def list_command(
    what: Annotated[
        str, typer.Argument(help="models (default), datasets, losses or plugins; or a model-name pattern.")
    ] = "models",
    pattern: Annotated[str, typer.Argument(help="Shell-style filter on names.")] = "*",
    pretrained: Annotated[bool, typer.Option("--pretrained", help="Show published weight tags.")] = False,
) -> None:
    """Show the registered models (name, dimensions, parameters, paper), datasets, losses or plugins."""
    if what not in KINDS:  # 'unetzoo list attn*' filters models
        what, pattern = "models", what
    if pretrained:
        _list_pretrained(pattern)
    elif what == "models":
        _list_models(pattern)
    elif what == "plugins":
        _list_plugins()
    else:
        from .data import DATASETS
        from .losses import LOSSES

        _list_entries(DATASETS if what == "datasets" else LOSSES, pattern, what)


def _list_models(pattern: str) -> None:
    names = list_models(pattern)
    if not names:
        _fail(f"no model matches {pattern!r}; try 'unetzoo list' for all of them")
    table = Table(title=f"unetzoo {__version__}: {len(names)} models")
    table.add_column("name", style="bold cyan", no_wrap=True)
    table.add_column("dims")
    table.add_column("parameters", justify="right")
    table.add_column("paper")
    for name in names:
        s = summarize(name)
        table.add_row(name, s.dims, f"{s.parameters:,}", s.paper)
    console.print(table)


def _first_line(obj) -> str:
    return (getattr(obj, "__doc__", None) or "").strip().split("\n")[0]


def _list_entries(registry, pattern: str, plural: str) -> None:
    entries = [e for e in registry if e.name in registry.names(pattern)]
    table = Table(title=f"{len(entries)} {plural}")
    table.add_column("name", style="bold cyan", no_wrap=True)
    table.add_column("package")
    table.add_column("description")
    for e in entries:
        table.add_row(e.name, e.source, _first_line(e.obj))
    console.print(table)


def _registries() -> list:
    from .data import DATASETS
    from .encoders.encoder_weights import ENCODER_WEIGHTS
    from .losses import LOSSES
    from .models import MODELS
    from .weight_tags import WEIGHTS

    return [MODELS, DATASETS, LOSSES, WEIGHTS, ENCODER_WEIGHTS]


def _list_plugins() -> None:
    """One line per plugin entry point: group, name, package, target and what became of it."""
    from .registry import call_mismatch

    table = Table(title="plugins")
    for column in ("group", "name", "package", "entry point", "status"):
        table.add_column(column, no_wrap=column != "status", overflow="fold")
    styles = {"loaded": "green", "rejected": "yellow", "failed": "red"}
    rows = 0
    for registry in _registries():
        for p in registry.plugins:
            status = Text(p.status, style=styles.get(p.status, ""))
            if p.reason:
                status.append(f": {p.reason}")
            elif registry.group == "unetzoo.datasets" and p.status == "loaded":
                refused = call_mismatch(registry.get(p.name), ".", strict=False)
                if refused:  # check-data opens every dataset with strict=False
                    status.append(f" (warning: check-data cannot open it: {refused})")
            table.add_row(p.group, p.name, p.package, p.target, status)
            rows += 1
    if rows:
        console.print(table)
    else:
        groups = ", ".join(r.group for r in _registries())
        console.print(f"no plugins installed (entry-point groups: {groups})")


OPTION_HELP = (
    "Format option key=value, the value as JSON (else as text); repeatable. A colour table of RGB masks: "
    """colors='{"#ff0000": 1, "0,255,0": 2}' (keys "#rrggbb" or "r,g,b", values class ids 0-255) """
    "or a preset name, colors=suim."
)


@app.command("check-data")
def check_data(
    path: Annotated[Path, typer.Argument(help="The dataset folder.")],
    format: Annotated[str | None, typer.Option(help="Dataset format (default: from the layout).")] = None,
    option: Annotated[
        list[str] | None, typer.Option("--option", "-o", help=OPTION_HELP)
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON on stdout (same exit status).")
    ] = False,
) -> None:
    """Report every problem of a dataset at once, errors and warnings, and how its masks are read;
    exit status 1 when there are errors (warnings alone exit 0)."""
    from .data import DataError, open_dataset
    from .data.base import Problem
    from .data.io import DataWarning

    options = dict(_parse_option(o) for o in option or [])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)  # listed in the table below instead
            dataset = open_dataset(path, format=format, strict=False, **options)
            problems = dataset.check()
    except (DataError, TypeError) as exc:
        dataset, problems = None, [Problem("", str(path), str(exc))]
    except Exception as exc:  # a plugin format's constructor may raise anything: a row, not a traceback
        dataset, problems = None, [Problem("", str(path), f"{type(exc).__name__}: {exc}")]
    errors = sum(p.level != "warning" for p in problems)
    if json_out:
        print(json.dumps(_data_report(path, dataset, problems), indent=2, default=str))
        raise typer.Exit(1 if errors else 0)
    if dataset is not None:
        console.print(
            f"{path}: {len(dataset)} samples, format {dataset.format}, classes {dataset.class_names}"
        )
        if getattr(dataset, "mask_encoding", None):
            console.print(f"masks: {dataset.mask_encoding}", markup=False)
    if not problems:
        console.print("[green]no problems found[/green]")
        return
    warned = len(problems) - errors
    plural = "" if warned == 1 else "s"
    table = Table(title=f"{errors} problems" + (f", {warned} warning{plural}" if warned else ""))
    columns = ("sample", "file", "level", "problem") if warned else ("sample", "file", "problem")
    for column in columns:  # ids and paths are never cut or folded; the message folds
        table.add_column(column, no_wrap=column in ("sample", "file"), overflow="fold")
    for p in problems:
        table.add_row(*(p.id, p.file, p.level, p.message) if warned else (p.id, p.file, p.message))
    Console(soft_wrap=True, width=_page_width()).print(table)
    if errors:
        raise typer.Exit(1)


def _data_report(path: Path, dataset, problems: list) -> dict:
    """The ``check-data --json`` report: the dataset's facts and its problems as objects."""
    report: dict = {"path": str(path), "format": None, "samples": None, "classes": None}
    if dataset is not None:
        report.update(format=dataset.format, samples=len(dataset), classes=dataset.class_names)
        encoding = getattr(dataset, "mask_encoding", None)
        if encoding is not None:
            report["mask_encoding"] = encoding
    report["errors"] = sum(p.level != "warning" for p in problems)
    report["warnings"] = len(problems) - report["errors"]
    report["problems"] = [{"id": p.id, "file": p.file, "message": p.message, "level": p.level} for p in problems]
    return report


def _parse_option(text: str, flag: str = "--option") -> tuple[str, object]:
    """``key=value`` with the value read as JSON (text when it is not JSON); a ``colors`` table is
    checked here, so that a malformed one is one line naming the flag."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        _fail(f"{flag} {text!r}: write key=value")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        if key == "colors" and value.lstrip().startswith(("{", "[")):
            _fail(f"{flag} colors: not valid JSON ({exc.msg} at column {exc.colno}); "
                  """write e.g. colors='{"#ff0000": 1, "0,255,0": 2}' or a preset name such as colors=suim""")  # fmt: skip
        parsed = value
    if key == "colors":
        _check_colors(parsed, flag)
    return key, parsed


def _check_colors(value: object, flag: str) -> None:
    """One line naming ``FLAG colors`` when ``value`` is no colour table the datasets accept."""
    from .data import DataError
    from .data.encoding import colour_table

    try:
        colour_table(value, f"{flag} colors")
    except DataError as exc:
        _fail(str(exc))


def _list_pretrained(pattern: str) -> None:
    tags = list_pretrained(pattern if "." in pattern or pattern == "*" else f"{pattern}.*")
    table = Table(title=f"published weights: {len(tags)} tags")
    for column in ("tag", "default", "repo", "revision", "dataset", "sha256"):
        table.add_column(column, no_wrap=column in ("tag", "sha256"))
    for tag in tags:
        w = get_weights(tag)
        table.add_row(tag, "yes" if w.default else "", w.repo_id, w.revision[:12], w.dataset, w.sha256[:16])
    console.print(table)
    if not tags:
        console.print(
            f"No tags match {pattern!r}. Tables: the built-in one, files named in {TABLE_ENV}, "
            "and plugins of the 'unetzoo.weights' entry points."
        )


def _parse_size(size: str, spatial_dims: int) -> tuple[int, ...]:
    try:
        dims = tuple(int(v) for v in size.lower().split("x"))
    except ValueError:
        dims = ()
    if len(dims) == 1:
        dims = dims * spatial_dims
    if len(dims) != spatial_dims or min(dims) < 1:
        _fail(f"--size {size!r}: give {spatial_dims} positive sizes like " + "x".join(["256"] * spatial_dims))
    return dims


@app.command()
def info(
    name: Annotated[str, typer.Argument(help="Model name (see 'unetzoo list'), or a saved model folder.")],
    size: Annotated[str, typer.Option(help="Input size for MACs, e.g. 256x256 or 96x96x96.")] = "256",
    spatial_dims: Annotated[int | None, typer.Option(help="Build in 2D or 3D.")] = None,
    in_channels: Annotated[int | None, typer.Option(help="Input channels.")] = None,
    classes: Annotated[int | None, typer.Option(help="Output classes.")] = None,
) -> None:
    """Show a model's config, parameters, multiply-accumulates, preprocessing, input constraints
    and published weights; a saved model folder (config.json) shows the model it rebuilds."""
    import torch

    from .hub import CONFIG_NAME, create_model, default_preprocessing, read_config, rebuild

    given = {
        k: v
        for k, v in dict(spatial_dims=spatial_dims, in_channels=in_channels, classes=classes).items()
        if v is not None
    }
    arch, saved, overrides = name, None, given
    if name not in list_models() and Path(name).is_dir():
        if not (Path(name) / CONFIG_NAME).is_file():
            _fail(f"{name}: a folder without {CONFIG_NAME}; give a model name or a folder written by save_pretrained")
        saved = read_config(Path(name) / CONFIG_NAME)
        arch = saved["architecture"]
        overrides = {**saved.get("args", {}), **given}
        if "encoder_weights" in overrides:  # the folder's weights hold the encoder
            overrides["encoder_weights"] = None
    try:
        with torch.device("meta"):
            built = rebuild(saved, Path(name) / CONFIG_NAME, **given) if saved else create_model(arch, **given)
        s = summarize(arch, **overrides)
    except (UnknownNameError, TypeError, ValueError) as exc:
        _fail(str(exc))
    tags = list_pretrained(f"{arch}.*")
    dims = s.config.get("spatial_dims", 2)
    shape = _parse_size(size, dims)
    macs = count_macs(arch, shape, **overrides)
    stride = s.output_stride
    console.print(f"[bold cyan]{name}[/bold cyan]{f' ({arch})' if saved else ''} — {s.description}")
    for reference in full_references(s.paper):
        console.print(f"paper: {reference}")
    console.print(f"source: {s.source}")
    console.print(f"parameters: {s.parameters:,}")
    console.print(
        f"MACs at 1×{s.config.get('in_channels', 3)}×{'×'.join(map(str, shape))}: {macs / 1e9:.2f} G"
    )
    console.print(
        f"input: (N, {s.config.get('in_channels', 3)}, {'D, H, W' if dims == 3 else 'H, W'}); "
        + (
            f"any spatial size, zero-padded inside to a multiple of {stride} and cropped back"
            if stride
            else "see the plugin's documentation for size constraints"
        )
    )
    prep = (saved or {}).get("preprocessing") or default_preprocessing(built)
    _print_preprocessing(prep)
    shown = [f"{t} (default)" if get_weights(t).default else t for t in tags]
    console.print(f"published weights: {', '.join(shown) or 'none'}", highlight=False)
    console.print_json(json.dumps(s.config))


def _print_preprocessing(prep: dict) -> None:
    """The preprocessing lines of ``unetzoo info``: normalisation, then the sizes."""
    scale = prep.get("scale", 1 / 255)
    shown_scale = "1/255" if scale and abs(scale - 1 / 255) < 1e-12 else f"{scale:g}"
    mean = [round(v, 4) for v in prep.get("mean") or []]
    std = [round(v, 4) for v in prep.get("std") or []]
    steps = ["CLAHE, then " if prep.get("clahe") else "", f"x × {shown_scale}, then (x - mean) / std per channel"]
    console.print(f"preprocessing: {''.join(steps)} with mean {mean}, std {std}", highlight=False)
    sizes = []
    multiple = prep.get("input_multiple") or prep.get("pad_multiple")
    if multiple:
        sizes.append(f"input multiple {multiple}")
    if prep.get("expected_size"):
        sizes.append(f"expected size {'×'.join(map(str, prep['expected_size']))}")
    if prep.get("input_size"):
        sizes.append(f"resized to {'×'.join(map(str, prep['input_size']))} in training")
    if sizes:
        console.print(f"sizes: {'; '.join(sizes)}", highlight=False)


@app.command()
def download(
    name_or_tag: Annotated[
        str, typer.Argument(help="A weight tag, a model name (its default tag) or a repo id.")
    ],
    to: Annotated[Path | None, typer.Option(help="Copy into this folder instead of the HF cache.")] = None,
) -> None:
    """Fetch published weights into the Hugging Face cache (or a folder) for later offline use."""
    from huggingface_hub import snapshot_download

    from .hub import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, resolve_files
    from .network import check_hub

    if name_or_tag in list_pretrained() or name_or_tag in list_models():
        model, _, tag = name_or_tag.partition(".")
        try:
            repo_id, revision, sha256, config_sha256 = resolve_pretrained(model, tag or True)
        except (FileNotFoundError, ValueError) as exc:  # a model without published weights
            _fail(str(exc))
    elif is_repo_id(name_or_tag):
        repo_id, revision, sha256, config_sha256 = name_or_tag, None, None, None
    else:
        _fail(f"{name_or_tag!r} is no weight tag, model name or repo id; see 'unetzoo list --pretrained'")
    files = [CONFIG_NAME, WEIGHTS_NAME, CARD_NAME]
    try:
        check_hub()
        folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=files))
        resolve_files(folder, sha256=sha256, config_sha256=config_sha256)
    except Exception as exc:
        _fail(f"download of {repo_id!r} failed: {_reason(exc)}")
    if to is not None:  # copied from the cache, so this also works offline once cached
        to.mkdir(parents=True, exist_ok=True)
        for name in files:
            if (folder / name).is_file():
                shutil.copyfile(folder / name, to / name)
        folder = to
    console.print(f"{repo_id} → {folder}")


@app.command()
def push(
    directory: Annotated[Path, typer.Argument(help="A folder written by save_pretrained.")],
    repo_id: Annotated[str, typer.Argument(help="Target Hub repo, 'org/name'.")],
    private: Annotated[bool, typer.Option(help="Create the repo as private.")] = False,
) -> None:
    """Publish a saved model (config.json, model.safetensors, README.md) to the Hub."""
    from .hub import from_pretrained, push_to_hub

    try:
        model = from_pretrained(directory)  # proves the folder loads before anything is sent
    except Exception as exc:
        _fail(f"{directory}: not a loadable unetzoo model folder: {exc}")
    info = model.pretrained_info
    card = {k: info.get(k) for k in ("class_names", "dataset", "metrics", "preprocessing")}
    try:
        url = push_to_hub(model, repo_id, private=private, **card)
    except Exception as exc:  # offline, no token, refused: one line, whatever huggingface_hub raised
        _fail(f"push of {directory} to {repo_id!r} failed: {_reason(exc)}")
    console.print(f"pushed {directory} to {repo_id}: {url}")


Opt = typer.Option
_MODEL, _DATA, _LOSS, _OPT, _SPEED, _RUN = "Model", "Data", "Loss", "Optimisation", "Speed", "Run folder"


@app.command()
def finetune(
    model: Annotated[str | None, typer.Argument(help="A model name, a weight tag, a save_pretrained folder or a Hub repo id.")] = None,
    data: Annotated[str | None, typer.Argument(help="A dataset folder (any format open_dataset reads), or 'demo'.")] = None,
    out: Annotated[str | None, Opt("--out", "-o", help="The run folder to create.", rich_help_panel=_RUN)] = None,
    config: Annotated[Path | None, Opt(help="A YAML file of options (flags win over it); RUN/config.yaml repeats a run.", rich_help_panel=_RUN)] = None,
    resume: Annotated[Path | None, Opt(help="Continue this run folder from its newest complete checkpoint.", rich_help_panel=_RUN)] = None,
    overwrite: Annotated[bool, Opt(help="Replace an existing --out folder.", rich_help_panel=_RUN)] = False,
    quiet: Annotated[bool, Opt(help="Plain logs: one line per epoch, no progress bars.", rich_help_panel=_RUN)] = False,
    model_arg: Annotated[list[str] | None, Opt(help="create_model override key=value (JSON value); repeatable.", rich_help_panel=_MODEL)] = None,
    pretrained: Annotated[str | None, Opt(help="Start from these weights: a tag, a folder or a Hub repo id.", rich_help_panel=_MODEL)] = None,
    encoder_weights: Annotated[str | None, Opt(help="Encoder weights: imagenet or a file.", rich_help_panel=_MODEL)] = None,
    classes: Annotated[int | None, Opt(help="Output classes (default: from the dataset).", rich_help_panel=_MODEL)] = None,
    in_channels: Annotated[int | None, Opt(help="Input channels (default: from the dataset).", rich_help_panel=_MODEL)] = None,
    format: Annotated[str | None, Opt(help="Dataset format (default: from the layout).", rich_help_panel=_DATA)] = None,
    data_arg: Annotated[list[str] | None, Opt(help="Dataset format option key=value (JSON value); labels=FILE.csv gives per-sample classes; colors= a colour table, as in check-data --option.", rich_help_panel=_DATA)] = None,
    val: Annotated[float | None, Opt(help="Validation fraction of a seeded ratio split (default: 0.2).", rich_help_panel=_DATA)] = None,
    folds: Annotated[int | None, Opt(help="K-fold split with K folds.", rich_help_panel=_DATA)] = None,
    fold: Annotated[int | None, Opt(help="Which fold validates (default: 0).", rich_help_panel=_DATA)] = None,
    split: Annotated[str | None, Opt(help="Reuse a split.json.", rich_help_panel=_DATA)] = None,
    size: Annotated[str | None, Opt(help="Resize (2D) or centre pad/crop (3D) to HxW or DxHxW.", rich_help_panel=_DATA)] = None,
    crop: Annotated[str | None, Opt(help="Mask-aware random crops of HxW or DxHxW; validation on whole images.", rich_help_panel=_DATA)] = None,
    crop_foreground: Annotated[float | None, Opt(help="Probability that a crop holds foreground (default: 0.7).", rich_help_panel=_DATA)] = None,
    repeats: Annotated[int | None, Opt(help="Times each training sample is drawn per epoch, each with its own crop and augmentation (default: 1).", rich_help_panel=_DATA)] = None,
    preset: Annotated[str | None, Opt(help="Augmentation: none, light, standard, heavy (default: standard).", rich_help_panel=_DATA)] = None,
    clahe: Annotated[bool | None, Opt("--clahe/--no-clahe", help="Contrast-limited histogram equalisation first.", rich_help_panel=_DATA)] = None,
    batch_size: Annotated[int | None, Opt(help="Samples per batch and process (default: 8).", rich_help_panel=_DATA)] = None,
    val_batch_size: Annotated[int | None, Opt(help="Validation batch (default: batch size; 1 with --crop).", rich_help_panel=_DATA)] = None,
    accumulate: Annotated[int | None, Opt(help="Gradient accumulation: batches per optimizer step (default: 1).", rich_help_panel=_DATA)] = None,
    workers: Annotated[int | None, Opt(help="DataLoader worker processes (default: 2).", rich_help_panel=_DATA)] = None,
    drop_last: Annotated[bool | None, Opt("--drop-last/--keep-last", help="Drop the last incomplete batch (default: drop).", rich_help_panel=_DATA)] = None,
    loss: Annotated[str | None, Opt(help="Loss name, see 'unetzoo list losses' (default: dice_bce).", rich_help_panel=_LOSS)] = None,
    loss_arg: Annotated[list[str] | None, Opt(help="Loss option key=value, e.g. alpha=0.7; repeatable.", rich_help_panel=_LOSS)] = None,
    mode: Annotated[str | None, Opt(help="auto, binary or multiclass (default: auto: from the class count).", rich_help_panel=_LOSS)] = None,
    ignore_index: Annotated[int | None, Opt(help="Mask value that counts nowhere.", rich_help_panel=_LOSS)] = None,
    aux_loss_weight: Annotated[float | None, Opt(help="Weight of the classification-head loss (default: 0.2).", rich_help_panel=_LOSS)] = None,
    optimizer: Annotated[str | None, Opt(help="adamw, adam or sgd (default: adamw).", rich_help_panel=_OPT)] = None,
    lr: Annotated[float | None, Opt(help="Learning rate (default: 1e-3).", rich_help_panel=_OPT)] = None,
    weight_decay: Annotated[float | None, Opt(help="Weight decay, not on biases and norms (default: 1e-4).", rich_help_panel=_OPT)] = None,
    momentum: Annotated[float | None, Opt(help="SGD momentum (default: 0.9).", rich_help_panel=_OPT)] = None,
    encoder_lr_mult: Annotated[float | None, Opt(help="Encoder learning rate = lr × this; 0 freezes it (default: 1).", rich_help_panel=_OPT)] = None,
    freeze_encoder_epochs: Annotated[int | None, Opt(help="Encoder frozen (statistics too) for these first epochs (default: 0).", rich_help_panel=_OPT)] = None,
    scheduler: Annotated[str | None, Opt(help="onecycle, cosine, poly, plateau or none (default: cosine).", rich_help_panel=_OPT)] = None,
    warmup: Annotated[int | None, Opt(help="Linear warm-up steps (default: 0).", rich_help_panel=_OPT)] = None,
    min_lr: Annotated[float | None, Opt(help="Final learning rate of cosine/poly (default: 0).", rich_help_panel=_OPT)] = None,
    clip: Annotated[float | None, Opt(help="Clip the gradient norm to this.", rich_help_panel=_OPT)] = None,
    ema: Annotated[float | None, Opt(help="Weight EMA decay, e.g. 0.999; kept as best when better.", rich_help_panel=_OPT)] = None,
    epochs: Annotated[int | None, Opt(help="Epochs (default: 10).", rich_help_panel=_OPT)] = None,
    max_steps: Annotated[int | None, Opt(help="Optimizer steps instead of --epochs (0: validate only).", rich_help_panel=_OPT)] = None,
    early_stop: Annotated[int | None, Opt(help="Stop after this many epochs without improvement.", rich_help_panel=_OPT)] = None,
    monitor: Annotated[str | None, Opt(help="Metric that picks best/ and early stopping (default: val_dice).", rich_help_panel=_OPT)] = None,
    monitor_mode: Annotated[str | None, Opt(help="max or min (default: max).", rich_help_panel=_OPT)] = None,
    threshold: Annotated[float | None, Opt(help="Probability threshold of binary predictions (default: 0.5).", rich_help_panel=_OPT)] = None,
    seed: Annotated[int | None, Opt(help="Seed of the split, order, augmentation and init (default: 0).", rich_help_panel=_OPT)] = None,
    deterministic: Annotated[bool | None, Opt("--deterministic/--nondeterministic", help="Deterministic kernels only.", rich_help_panel=_OPT)] = None,
    device: Annotated[str | None, Opt(help="auto, cpu or cuda (default: auto).", rich_help_panel=_SPEED)] = None,
    mixed_precision: Annotated[str | None, Opt(help="auto (bf16 where native, else no), no, fp16, bf16.", rich_help_panel=_SPEED)] = None,
    channels_last: Annotated[bool | None, Opt("--channels-last/--no-channels-last", help="Channels-last memory (default: on in 2D).", rich_help_panel=_SPEED)] = None,
    compile: Annotated[bool | None, Opt("--compile/--no-compile", help="torch.compile the model.", rich_help_panel=_SPEED)] = None,
    gradient_checkpointing: Annotated[bool | None, Opt("--gradient-checkpointing/--no-gradient-checkpointing", help="Recompute activations to save memory.", rich_help_panel=_SPEED)] = None,
    checkpoint_every: Annotated[int | None, Opt(help="Also checkpoint every N optimizer steps.", rich_help_panel=_RUN)] = None,
    keep_checkpoints: Annotated[int | None, Opt(help="Checkpoints kept (default: 2).", rich_help_panel=_RUN)] = None,
    samples: Annotated[int | None, Opt(help="Validation images drawn in samples/epoch_NNN.png (default: 4).", rich_help_panel=_RUN)] = None,
    log_with: Annotated[str | None, Opt(help="An Accelerate tracker: tensorboard, wandb, ...", rich_help_panel=_RUN)] = None,
) -> None:  # fmt: skip
    """Fine-tune a zoo model on a dataset; writes a run folder with best/ and last/ models.

    Several processes: torchrun --nproc_per_node N -m unetzoo finetune ..., or
    accelerate launch --multi_gpu --num_processes N -m unetzoo finetune ...
    """
    given = _finetune_options(locals())
    try:
        import accelerate  # noqa: F401

        from .data import DataError
        from .hub import WeightsUnavailableError
        from .training import ConfigError, FinetuneConfig, RunFolderError, config_for_resume, read_yaml
        from .training import finetune as run_finetune
        from .training.run_folder import describe_os_error
    except ImportError as exc:
        _fail(f"unetzoo finetune needs the training extras ({exc.name} is missing): "
              "pip install 'unetzoo[train,data]'")  # fmt: skip

    try:
        if resume is not None:
            if out is not None and Path(out) != resume:
                _fail(f"--out {out} and --resume {resume}: a resumed run stays in its own folder")
            options = config_for_resume(resume, given)
        else:
            values = {**(read_yaml(config) if config else {}), **given}
            for name, what in (("model", "MODEL"), ("data", "DATA"), ("out", "--out RUN")):
                if not values.get(name):
                    _fail(f"missing {what}: unetzoo finetune MODEL DATA --out RUN (or --config FILE, --resume RUN)")
            options = FinetuneConfig.from_dict(values, origin=str(config) if config else "options")
        result = run_finetune(options, resume=resume is not None, overwrite=overwrite, quiet=quiet)
    except (ConfigError, RunFolderError, DataError, UnknownNameError, WeightsUnavailableError) as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(describe_os_error(exc))
    if not result.main:
        return
    best = result.best_metrics
    shown = ", ".join(f"{k} {v:.4f}" for k, v in best.items() if isinstance(v, float))
    console.print(f"best: {result.best} (epoch {result.best_epoch}: {shown})", highlight=False)
    console.print(f'load it: model = unetzoo.from_pretrained("{result.best}")', highlight=False)


def _finetune_options(params: dict) -> dict:
    """The FinetuneConfig values of parsed ``finetune`` parameters: the ones given, repeatable
    key=value options as dictionaries, the run-control flags left out."""
    given = {k: v for k, v in params.items() if v is not None}
    for flag in ("config", "resume", "overwrite", "quiet"):
        given.pop(flag, None)
    for name in ("model_arg", "data_arg", "loss_arg"):
        if name in given:
            given[name + "s"] = dict(_parse_option(t, "--" + name.replace("_", "-")) for t in given.pop(name))
    return given


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def compare(
    ctx: typer.Context,
    data: Annotated[str, typer.Argument(help="A dataset folder (any format open_dataset reads), or 'demo'.")],
    models: Annotated[str, Opt(help="The models to compare, separated by commas (names, tags or folders).")],
    out: Annotated[Path, Opt("--out", "-o", help="The comparison folder: one run folder per entry, the table, the chart.")],
    loss_sweep: Annotated[str | None, Opt(help="Sweep one loss argument: LOSS:ARG=V1,V2,... (e.g. dice_bce:alpha=0,0.5,1).")] = None,
    config: Annotated[Path | None, Opt(help="A YAML file of finetune options shared by every entry.")] = None,
    quiet: Annotated[bool, Opt(help="Plain logs: one line per epoch, no progress bars.")] = False,
) -> None:  # fmt: skip
    """Fine-tune several models (or loss settings) on the same split with the same seed, and compare them.

    Every other option is a `unetzoo finetune` option shared by all entries (e.g. --epochs
    20 --crop 256x256 --model-arg ...). Writes OUT/<entry>/ run folders, OUT/comparison.csv,
    comparison.md and comparison.png. Calling it again skips finished entries and resumes an
    interrupted one. Under torchrun every entry runs on all processes.
    """
    import typer.exceptions
    import typer.main

    from .data import DataError
    from .hub import WeightsUnavailableError
    from .training import ConfigError, RunFolderError, read_yaml
    from .training.compare import compare as run_compare
    from .training.compare import plan_entries
    from .training.run_folder import describe_os_error

    command = typer.main.get_command(app).commands["finetune"]
    try:
        parsed = command.make_context("finetune", ["MODEL", data, *ctx.args], resilient_parsing=False)
    except typer.exceptions.TyperException as exc:  # a usage error of the finetune options
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        _fail(f"{message} (compare takes the options of unetzoo finetune)")
    given = _finetune_options(parsed.params)
    given.pop("model", None)
    for flag in ("out", "resume"):
        if parsed.params.get(flag) is not None:
            _fail(f"--{flag}: compare gives every entry its own run folder inside --out {out}")
    try:
        base = {**(read_yaml(config) if config else {}), **given}
        entries = plan_entries(models.split(","), base, loss_sweep)
        rows = run_compare(entries, base, out, quiet=quiet,
                           on_entry=lambda e, what: console.print(f"[bold]{e.name}[/bold]: {what}"))  # fmt: skip
    except (ConfigError, RunFolderError, DataError, UnknownNameError, WeightsUnavailableError) as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(describe_os_error(exc))
    table = Table("entry", "val Dice", "val IoU", "epoch", "params", "s", "samples/s")
    for row in rows:
        table.add_row(row["entry"], f"{row['best_val_dice']:.4f}", f"{row['best_val_iou']:.4f}",
                      str(row["best_epoch"]), f"{row['parameters']:,}", str(row["seconds"]),
                      str(row["samples_per_s"]))  # fmt: skip
    console.print(table)
    console.print(f"table: {out / 'comparison.md'}  chart: {out / 'comparison.png'}")


def _window(text: str | None, model, show: bool) -> tuple[int, ...] | None:
    """``--window HxW`` (or ``DxHxW``) rounded up to the model's stride; the rounding is noted on stderr."""
    from .evaluation import fit_window

    if text is None:
        return None
    size, note = fit_window(model, _parse_size(text, text.count("x") + 1))
    if note and show:
        Console(stderr=True).print(f"note: {note}", highlight=False)
    return size


@app.command()
def evaluate(
    source: Annotated[str, typer.Argument(help="A run folder, a saved model folder, a weight tag or a Hub repo id.")],
    data: Annotated[str | None, typer.Argument(help="The dataset (default: the run's).")] = None,
    split: Annotated[str, Opt(help="auto (test folder, else all), all, train, val, test or a split.json.")] = "auto",
    tta: Annotated[str, Opt(help="Test-time augmentation: none, flips or d4.")] = "none",
    threshold: Annotated[str, Opt(help="Binary threshold, or auto (best Dice on the run's validation split).")] = "0.5",
    window: Annotated[str | None, Opt(help="Sliding window HxW (DxHxW); default: whole images.")] = None,
    overlap: Annotated[float, Opt(help="Window overlap fraction.")] = 0.5,
    blend: Annotated[str, Opt(help="Window blending: gaussian or constant.")] = "gaussian",
    roi: Annotated[bool, Opt("--roi/--no-roi", help="Count only the dataset's region of interest (DRIVE's field of view).")] = False,
    data_arg: Annotated[list[str] | None, Opt(help="Dataset format option key=value (default: the run's).")] = None,
    json_out: Annotated[Path | None, Opt("--json", help="Write the scores and settings as JSON.")] = None,
    per_image: Annotated[Path | None, Opt(help="Write one CSV row of scores per image.")] = None,
) -> None:  # fmt: skip
    """Score a model on a dataset: global (pixels pooled) and mean-per-image Dice, IoU and more.

    Several processes: torchrun --nproc_per_node N -m unetzoo evaluate ... gives the same numbers.
    """
    import csv
    import os

    from .data import DataError
    from .evaluation import EvaluationError, load_source
    from .evaluation import evaluate as run_evaluate
    from .hub import WeightsUnavailableError

    accelerator = None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch
        from accelerate import Accelerator

        accelerator = Accelerator(cpu=not torch.cuda.is_available())
    main = accelerator is None or accelerator.is_main_process
    try:
        chosen = threshold if threshold == "auto" else float(threshold)
        loaded = load_source(source)
        size = _window(window, loaded.model, show=main)
        if data is None:
            if loaded.run is None:
                _fail("DATA: give the dataset to evaluate on (only a run folder knows its own)")
            data = str(loaded.options["data"])
        options = dict(_parse_option(t, "--data-arg") for t in data_arg) if data_arg else None
        from rich.progress import Progress

        with Progress(console=Console(stderr=True), transient=True, disable=not main) as bar:
            task = bar.add_task("evaluating", total=None)
            result = run_evaluate(loaded, data, split=split, tta=tta, threshold=chosen, window=size,
                                  overlap=overlap, blend=blend, roi=roi, data_args=options, accelerator=accelerator,
                                  progress=lambda n=1, total=None: bar.update(task, advance=n, total=total))  # fmt: skip
    except ValueError as exc:
        if "could not convert" in str(exc):
            _fail(f"--threshold {threshold!r}: give a probability such as 0.5, or auto")
        _fail(str(exc))
    except (DataError, EvaluationError, UnknownNameError, WeightsUnavailableError, FileNotFoundError) as exc:
        _fail(str(exc))
    if not main:
        return
    table = Table(title=f"{source} on {data} ({result.settings['split']}, {len(result.per_image)} images, "
                        f"tta {tta}, threshold {result.threshold:g}{', within the region of interest' if roi else ''})")  # fmt: skip
    table.add_column("metric", style="bold cyan")
    table.add_column("global: pixels pooled", justify="right")
    table.add_column("per_image: mean of images", justify="right")
    shown = {**result.global_scores, **result.per_image_scores}
    for key in shown:
        cells = [result.global_scores.get(key), result.per_image_scores.get(key)]
        table.add_row(key, *("—" if v is None else f"{v:.4f}" for v in cells))
    Console(soft_wrap=True, width=_page_width()).print(table)
    if json_out is not None:
        json_out.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    if per_image is not None and result.per_image:
        with per_image.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(result.per_image[0]))
            writer.writeheader()
            writer.writerows(result.per_image)


@app.command("predict")
def predict_command(
    source: Annotated[str, typer.Argument(help="A run folder, a saved model folder, a weight tag or a Hub repo id.")],
    inputs: Annotated[list[str], typer.Argument(help="Image or NIfTI files, folders and glob patterns.")],
    out: Annotated[Path, Opt("--out", "-o", help="Folder for the masks (never one of the input folders).")],
    tta: Annotated[str, Opt(help="Test-time augmentation: none, flips or d4.")] = "none",
    threshold: Annotated[float, Opt(help="Probability threshold of one-channel (binary) models.")] = 0.5,
    window: Annotated[str | None, Opt(help="Sliding window HxW (DxHxW); default: whole images.")] = None,
    overlap: Annotated[float, Opt(help="Window overlap fraction.")] = 0.5,
    blend: Annotated[str, Opt(help="Window blending: gaussian or constant.")] = "gaussian",
    palette: Annotated[bool, Opt(help="Masks as colours of the class palette instead of class ids.")] = False,
    probabilities: Annotated[bool, Opt(help="Also write probabilities (float16 .npy; NIfTI for volumes).")] = False,
    overlay: Annotated[bool, Opt(help="Also write each image with its mask drawn on it.")] = False,
    batch_size: Annotated[int, Opt(help="Images of one size predicted together.")] = 4,
) -> None:  # fmt: skip
    """Segment images and volumes: PNG class-id masks (NIfTI for volumes, with the input's affine).

    A file that cannot be read is reported and skipped; the exit status is 1 if any failed.
    """
    from rich.progress import Progress

    from .data import DataError
    from .evaluation import EvaluationError, load_source
    from .hub import WeightsUnavailableError
    from .prediction import predict_files

    try:
        loaded = load_source(source)
        size = _window(window, loaded.model, show=True)
        with Progress(console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("predicting", total=None)
            report = predict_files(loaded, inputs, out, tta=tta, window=size, overlap=overlap, blend=blend,
                                   threshold=threshold, palette=palette, probabilities=probabilities,
                                   overlay=overlay, batch_size=batch_size,
                                   progress=lambda n=1, total=None: bar.update(task, advance=n, total=total))  # fmt: skip
    except (ValueError, DataError, EvaluationError, UnknownNameError, WeightsUnavailableError,
            FileNotFoundError) as exc:  # fmt: skip
        _fail(str(exc))
    console.print(f"{report.inputs - len(report.failures)} of {report.inputs} inputs segmented into {out}")
    for path, reason in report.failures:
        Console(stderr=True, soft_wrap=True).print(f"[yellow]skipped[/yellow] {path}: {reason}", highlight=False)
    if report.failures:
        raise typer.Exit(1)


@app.command("explain")
def explain_command(
    source: Annotated[str, typer.Argument(help="A run folder, a saved model folder, a weight tag or a Hub repo id.")],
    inputs: Annotated[list[str], typer.Argument(help="Image or NIfTI files, folders and glob patterns.")],
    out: Annotated[Path, Opt("--out", "-o", help="Folder for the pictures (never one of the input folders).")],
    mask: Annotated[list[str] | None, Opt(help="Ground-truth mask of each input, in order (repeat the option).")] = None,
    evolution: Annotated[bool, Opt(help="Masks of a run's kept checkpoints and best/ side by side (needs --mask).")] = False,
    tta: Annotated[str, Opt(help="Test-time augmentation: none, flips or d4.")] = "none",
    threshold: Annotated[float, Opt(help="Probability threshold of one-channel (binary) models.")] = 0.5,
    window: Annotated[str | None, Opt(help="Sliding window HxW (DxHxW); default: whole images.")] = None,
    overlap: Annotated[float, Opt(help="Window overlap fraction.")] = 0.5,
) -> None:  # fmt: skip
    """Pictures of predictions: error maps, probability heat maps, attention maps, checkpoint evolution.

    Per input: NAME_prediction.png (with --mask: ground truth and false positives/negatives),
    NAME_attention.png (attention gates and CBAM spatial attention, one panel per block),
    NAME_slices.png for volumes (three orthogonal slices); with --evolution, evolution.png.
    """
    from .data import DataError
    from .evaluation import EvaluationError, load_source
    from .explanation import explain_files
    from .hub import WeightsUnavailableError

    try:
        loaded = load_source(source)
        size = _window(window, loaded.model, show=True)
        written = explain_files(loaded, inputs, out, masks=mask or [], evolution=evolution, threshold=threshold,
                                tta=tta, window=size, overlap=overlap)  # fmt: skip
    except (ValueError, DataError, EvaluationError, UnknownNameError, WeightsUnavailableError,
            FileNotFoundError) as exc:  # fmt: skip
        _fail(str(exc))
    console.print(f"{len(written)} picture(s) written to {out}")


@app.command("export")
def export_command(
    source: Annotated[str, typer.Argument(help="A run folder, a saved model folder, a weight tag or a Hub repo id.")],
    out: Annotated[Path, Opt("--out", "-o", help="The file to write (.onnx, .pt2 or .pt).")],
    format: Annotated[str, Opt(help="onnx, exported (torch.export) or torchscript.")] = "onnx",
    size: Annotated[str | None, Opt(help="Example input size HxW (DxHxW), a multiple of the model's stride.")] = None,
    opset: Annotated[int, Opt(help="ONNX opset (17 or newer).")] = 17,
) -> None:  # fmt: skip
    """Export a model to ONNX (dynamic batch and sizes), a torch.export program or TorchScript.

    ONNX inputs must have sizes that are multiples of the model's stride (metadata
    'input_multiple'): pad them, and crop the output back.
    """
    from .evaluation import EvaluationError, load_source
    from .export import ExportError, export
    from .hub import WeightsUnavailableError

    try:
        model = load_source(source).model
        shape = _parse_size(size, size.count("x") + 1) if size else None
        path = export(model, out, format=format, size=shape, opset=opset)
    except (ExportError, EvaluationError, UnknownNameError, WeightsUnavailableError, FileNotFoundError) as exc:
        _fail(str(exc))
    except ImportError as exc:
        _fail(f"export needs {exc.name}: pip install 'unetzoo[export]'")
    stride = getattr(model, "output_stride", None)
    console.print(f"wrote {path}" + (f" (input sizes: multiples of {stride})" if stride and format == "onnx" else ""))


if __name__ == "__main__":
    app()
