"""The ``unetzoo`` command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from .models import list_models
from .models.papers import full_references
from .registry import UnknownNameError
from .summary import count_macs, summarize
from .weights import TABLE_ENV, get_weights, list_pretrained, resolve_pretrained

app = typer.Typer(
    help="unetzoo: U-Net variants for 2D and 3D segmentation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()


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
    _report_plugin_errors([registry])


def _registries() -> list:
    from .data import DATASETS
    from .encoders.weights import ENCODER_WEIGHTS
    from .losses import LOSSES
    from .models import MODELS
    from .weights import WEIGHTS

    return [MODELS, DATASETS, LOSSES, WEIGHTS, ENCODER_WEIGHTS]


def _list_plugins() -> None:
    registries = _registries()
    table = Table(title="plugins")
    for column in ("kind", "name", "package", "status"):
        table.add_column(column, no_wrap=column != "status")
    for registry in registries:
        for e in registry:
            if e.source != "unetzoo":
                table.add_row(registry.kind, e.name, e.source, "loaded")
        for label, error in registry.plugin_errors.items():
            table.add_row(registry.kind, label, "", f"[red]failed[/red]: {error}")
    console.print(table)


def _report_plugin_errors(registries) -> None:
    for registry in registries:
        for label, error in registry.plugin_errors.items():
            Console(stderr=True, soft_wrap=True).print(
                f"[yellow]plugin {label} failed to load:[/yellow] {error}"
            )


@app.command("check-data")
def check_data(
    path: Annotated[Path, typer.Argument(help="The dataset folder.")],
    format: Annotated[str | None, typer.Option(help="Dataset format (default: from the layout).")] = None,
    option: Annotated[
        list[str] | None, typer.Option("--option", "-o", help="Format option key=value (value as JSON).")
    ] = None,
) -> None:
    """Report every problem of a dataset at once; exit status 1 when there are any."""
    from .data import DataError, open_dataset
    from .data.base import Problem

    options = dict(_parse_option(o) for o in option or [])
    try:
        dataset = open_dataset(path, format=format, strict=False, **options)
        problems = dataset.check()
    except (DataError, TypeError) as exc:
        dataset, problems = None, [Problem("", str(path), str(exc))]
    if dataset is not None:
        console.print(
            f"{path}: {len(dataset)} samples, format {dataset.format}, classes {dataset.class_names}"
        )
    if not problems:
        console.print("[green]no problems found[/green]")
        return
    table = Table(title=f"{len(problems)} problems")
    for column in ("sample", "file", "problem"):
        table.add_column(column, overflow="fold")
    for p in problems:
        table.add_row(p.id, p.file, p.message)
    Console(soft_wrap=True).print(table)
    raise typer.Exit(1)


def _parse_option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep:
        _fail(f"--option {text!r}: write key=value")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


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
    name: Annotated[str, typer.Argument(help="Model name (see 'unetzoo list').")],
    size: Annotated[str, typer.Option(help="Input size for MACs, e.g. 256x256 or 96x96x96.")] = "256",
    spatial_dims: Annotated[int | None, typer.Option(help="Build in 2D or 3D.")] = None,
    in_channels: Annotated[int | None, typer.Option(help="Input channels.")] = None,
    classes: Annotated[int | None, typer.Option(help="Output classes.")] = None,
) -> None:
    """Show a model's config, parameters, multiply-accumulates and input constraints."""
    overrides = {
        k: v
        for k, v in dict(spatial_dims=spatial_dims, in_channels=in_channels, classes=classes).items()
        if v is not None
    }
    try:
        s = summarize(name, **overrides)
    except (UnknownNameError, TypeError, ValueError) as exc:
        _fail(str(exc))
    dims = s.config.get("spatial_dims", 2)
    shape = _parse_size(size, dims)
    macs = count_macs(name, shape, **overrides)
    stride = s.output_stride
    console.print(f"[bold cyan]{name}[/bold cyan] — {s.description}")
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
    console.print_json(json.dumps(s.config))


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

    if name_or_tag in list_pretrained() or name_or_tag in list_models():
        model, _, tag = name_or_tag.partition(".")
        repo_id, revision, sha256 = resolve_pretrained(model, tag or True)
    elif name_or_tag.count("/") == 1:
        repo_id, revision, sha256 = name_or_tag, None, None
    else:
        _fail(f"{name_or_tag!r} is no weight tag, model name or repo id; see 'unetzoo list --pretrained'")
    files = [CONFIG_NAME, WEIGHTS_NAME, CARD_NAME]
    try:
        folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=files))
        resolve_files(folder, sha256=sha256)
    except Exception as exc:
        _fail(f"download of {repo_id!r} failed: {type(exc).__name__}: {exc}")
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
    url = push_to_hub(model, repo_id, private=private, **card)
    console.print(f"pushed {directory} to {repo_id}: {url}")


if __name__ == "__main__":
    app()
