"""``autocompress spaces``: list, show and check search spaces."""

from __future__ import annotations

import click
import yaml
from rich.markup import escape
from rich.table import Table

from autocompress.cli.console import print_json, stdout


def _describe_value(value: object) -> str:
    if isinstance(value, dict):
        if "choices" in value:
            return "{" + ", ".join(str(v) for v in value["choices"]) + "}"
        text = f"[{value['low']}, {value['high']}]"
        if value.get("step"):
            text += f" step {value['step']}"
        if value.get("log"):
            text += " log"
        return text
    return str(value)


@click.group(name="spaces", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def command(ctx: click.Context, as_json: bool) -> None:
    """List the built-in search spaces (`spaces show NAME`, `spaces check FILE`)."""
    if ctx.invoked_subcommand is not None:
        return
    from autocompress.search.space_catalog import builtin_space_dir, list_spaces

    spaces = list_spaces()
    if as_json:
        print_json([{"name": s.name, "description": s.description, "path": s.path} for s in spaces])
        return
    table = Table(title=f"Search spaces ({builtin_space_dir()})")
    table.add_column("name", style="bold")
    table.add_column("description")
    table.add_column("searches")
    for space in spaces:
        searched = [k for k, v in space.globals.items() if not v.is_fixed]
        for rule in space.rules:
            searched += [k for k, v in rule.params.items() if not v.is_fixed]
        table.add_row(space.name, space.description, ", ".join(dict.fromkeys(searched)) or "-")
    stdout.print(table)
    stdout.print(
        "Use one with `autocompress search --space NAME`, or pass a file: --space my_space.yaml"
    )


@command.command(name="show")
@click.argument("name")
@click.option(
    "--chip", default=None, help="Also show what the chip leaves of it (e.g. rockchip/rv1126)."
)
@click.option(
    "--model",
    default="small_cnn",
    show_default=True,
    help="Model for the per-layer view with --chip.",
)
@click.option(
    "--input-shape", default="1x8x8", show_default=True, help="CxHxW input for the per-layer view."
)
@click.option("--num-classes", default=10, show_default=True, type=int)
def show(name: str, chip: str | None, model: str, input_shape: str, num_classes: int) -> None:
    """Print a space (a name or a file); with --chip, its dimensions for a model on that chip."""
    from autocompress.search.space import space_as_plain_dict
    from autocompress.search.space_catalog import load_space

    space = load_space(name)
    stdout.print(f"[bold]{space.name}[/] — {space.path}")
    stdout.print(yaml.safe_dump(space_as_plain_dict(space), sort_keys=False).rstrip(), markup=False)
    if chip is None:
        return
    from autocompress.core.input_shape import parse_image_shape
    from autocompress.search.space_catalog import resolve_for_chip

    shape = parse_image_shape(input_shape, what="--input-shape")
    resolved = resolve_for_chip(space, chip, model, shape, num_classes=num_classes)
    table = Table(title=f"{space.name} for {model} on {chip}")
    table.add_column("dimension")
    table.add_column("values")
    for dim in resolved.dimensions:
        table.add_row(
            escape(dim.name),
            _describe_value(dim.spec.to_dict()) + (" (fixed)" if dim.spec.is_fixed else ""),
        )
    stdout.print(table)
    stdout.print(f"protected (never pruned): {', '.join(resolved.protect) or '-'}")
    for note in resolved.notes:
        stdout.print(f"note: {note}", markup=False)


@command.command(name="check")
@click.argument("path", type=click.Path(dir_okay=False))
def check(path: str) -> None:
    """Validate a space file; errors name the file, line and field."""
    from autocompress.search.space import load_space_file

    space = load_space_file(path)
    rules = len(space.rules)
    stdout.print(
        f"[green]ok[/] {path}: space {space.name!r}, {rules} layer rule{'s' if rules != 1 else ''}"
    )
