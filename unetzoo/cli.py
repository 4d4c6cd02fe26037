"""The ``unetzoo`` command line."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from .models import list_models
from .models.papers import full_references
from .registry import UnknownNameError
from .summary import count_macs, summarize

app = typer.Typer(
    help="unetzoo: U-Net variants for 2D and 3D segmentation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()


def _fail(message: str) -> None:
    Console(stderr=True).print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(2)


@app.command("list")
def list_command(
    pattern: Annotated[str, typer.Argument(help="Shell-style filter on model names.")] = "*",
) -> None:
    """Show the registered models: name, dimensions, parameters, paper."""
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


if __name__ == "__main__":
    app()
