"""``autocompress chips``: the chips installed plugins provide.

``autocompress chips`` prints a table, ``autocompress chips show ID`` one chip
with the source of every figure; both take ``--json``. Plugins that failed to
load are listed as warnings on stderr (the other chips still show).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import click
from rich.table import Table

from autocompress.cli.calibration_option import calibration_options
from autocompress.cli.console import print_json, print_warning, stdout
from autocompress.hardware.plugins import ChipRegistry, default_registry
from autocompress.hardware.spec import ChipSpec


def chip_to_dict(chip: ChipSpec, *, plugin: str | None = None) -> dict[str, Any]:
    """:meth:`ChipSpec.to_dict`, plus the plugin that provides the chip."""
    return {**chip.to_dict(), **({"plugin": plugin} if plugin is not None else {})}


def _precisions(chip: ChipSpec) -> str:
    weights = "/".join(map(str, chip.weight_bits_supported))
    activations = "/".join(map(str, chip.activation_bits_supported))
    text = f"w{weights} a{activations}"
    if chip.sparsity_patterns:
        text += " " + ",".join(chip.sparsity_patterns)
    return text


def _first_sentence(text: str, limit: int = 60) -> str:
    sentence = text.split(". ")[0].strip().rstrip(".")
    return sentence if len(sentence) <= limit else sentence[: limit - 1] + "…"


def _warn_problems(registry: ChipRegistry) -> None:
    for problem in registry.problems():
        print_warning(str(problem))


def _chips_table(registry: ChipRegistry, *, width: int) -> Table:
    # The notes column only fits a wide terminal; narrow ones keep the figures readable.
    with_notes = width >= 120
    table = Table(title="Installed chips", title_justify="left")
    table.add_column(
        "id",
        style="bold",
        no_wrap=True,
        min_width=max((len(c.chip_id) for c in registry.chips()), default=2),
    )
    table.add_column("vendor")
    table.add_column("int8 TOPS", justify="right")
    table.add_column("precisions", no_wrap=True)
    table.add_column("DRAM GB/s", justify="right")
    table.add_column("power mW", justify="right")
    if with_notes:
        table.add_column("notes", overflow="ellipsis", no_wrap=True, ratio=1)
    for chip in registry.chips():
        int8 = chip.peak_tops_by_bits.get(8)
        marker = "*" if "peak_tops_by_bits" in chip.unverified else ""
        row = [
            chip.chip_id,
            chip.vendor,
            "—" if int8 is None else f"{int8:g}{marker}",
            _precisions(chip),
            f"{chip.dram_bandwidth_gbps:g}",
            f"{chip.budgets.power_mw:g}",
        ]
        if with_notes:
            row.append(_first_sentence(chip.notes))
        table.add_row(*row)
    table.caption = "* unverified figure; `autocompress chips show ID` gives every source"
    return table


def _show_chip(chip: ChipSpec, plugin: str | None) -> None:
    table = Table(title=f"{chip.chip_id} — {chip.display_name}", title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_column("source")
    data = chip_to_dict(chip)
    for name in (f.name for f in dataclasses.fields(chip)):
        if name in {"sources", "unverified", "notes"}:
            continue
        value = data[name]
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items())
        elif isinstance(value, list):
            value = ", ".join(map(str, value)) or "—"
        source = chip.sources.get(name, "")
        if name in chip.unverified:
            source = f"[yellow]unverified[/] {source}"
        table.add_row(name, str(value), source)
    extra = {k: v for k, v in chip.sources.items() if k not in data}
    for key, source in extra.items():
        table.add_row(key, "", source)
    stdout.print(table)
    stdout.print(_calibration_text(chip.chip_id))
    if plugin:
        stdout.print(f"plugin: {plugin}")
    if chip.notes:
        stdout.print(f"notes: {chip.notes}")


def calibration_info(chip_id: str) -> dict[str, Any] | None:
    """The active calibration of ``chip_id`` for display: file, knobs, errors (None if none)."""
    from autocompress.hardware.calibration_store import calibration_summary

    return calibration_summary(chip_id, fitted_values=True)


def withheld_info(chip_id: str) -> dict[str, Any] | None:
    """The shipped calibration of ``chip_id`` that is not applied by default (path, reason,
    errors), or None."""
    from autocompress.hardware.calibration_store import withheld_calibration, withheld_reason

    found = withheld_calibration(chip_id)
    if found is None:
        return None
    return {
        "path": str(found.file.path),
        "sha256": found.file.sha256,
        "reason": withheld_reason(found.chip),
        **found.chip.to_dict(),
    }


def _calibration_text(chip_id: str) -> str:
    info = calibration_info(chip_id)
    if info is None:
        withheld = withheld_info(chip_id)
        if withheld is not None:
            return (
                "calibration: [yellow]not calibrated by default[/] — the knobs above are the "
                f"datasheet estimates; the shipped calibration {withheld['path']} is withheld: "
                f"{withheld['reason']} (apply it anyway: --calibration {withheld['path']})"
            )
        return (
            "calibration: [yellow]not calibrated[/] — the knobs above are the datasheet "
            "estimates (fit them: `autocompress calibrate`, docs/calibration.md)"
        )
    knobs = ", ".join(
        f"{name} {info['datasheet'].get(name, float('nan')):.3g} → {value:.3g}"
        for name, value in info["knobs"].items()
    )
    cv = info.get("cross_validation") or {}
    after = info.get("error_after") or {}
    before = info.get("error_before") or {}
    lines = [
        f"calibration: [green]calibrated[/] ({info['layer']}) from {info['rows']} measurements "
        f"of {len(info['models'])} models"
        + (
            f" (one NPU family, shared knobs: {', '.join(info['fitted_with'])})"
            if info.get("fitted_with")
            else ""
        )
        + f" — {info['path']}",
        f"  fitted knobs (datasheet → calibrated; the table above shows the datasheet): {knobs}",
        f"  median |error|: datasheet {before.get('median_abs_pct', float('nan')):.1f}%, "
        f"calibrated {after.get('median_abs_pct', float('nan')):.1f}%, "
        + (
            f"leave-one-model-out {cv['median_abs_pct']:.1f}%"
            if cv.get("median_abs_pct") is not None
            else "no cross-validation (one model only)"
        ),
    ]
    family = info.get("family_errors") or {}
    if family:
        family_cv = (family.get("cross_validation") or {}).get("median_abs_pct")
        lines.append(
            f"  over the family's {family.get('rows')} rows: datasheet "
            f"{(family.get('error_before') or {}).get('median_abs_pct', float('nan')):.1f}%, "
            + (
                f"leave-one-model-out {family_cv:.1f}%"
                if family_cv is not None
                else "no cross-validation"
            )
            + " (a shipped fit applies by default only when this is below the datasheet's)"
        )
    return "\n".join(lines)


@click.group(name="chips", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def command(ctx: click.Context, as_json: bool) -> None:
    """List the chips installed plugins provide.

    \b
    autocompress chips                      # table of every chip
    autocompress chips --json               # the same as JSON
    autocompress chips show rockchip/rv1126 # one chip, with sources
    """
    if ctx.invoked_subcommand is not None:
        return
    registry = default_registry()
    _warn_problems(registry)
    if as_json:
        print_json(
            [
                chip_to_dict(chip, plugin=registry.plugin_of(chip.chip_id))
                for chip in registry.chips()
            ]
        )
        return
    stdout.print(_chips_table(registry, width=stdout.width))


@command.command(name="show")
@click.argument("chip_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@calibration_options
def show(chip_id: str, as_json: bool) -> None:
    """Every figure of one chip, with its source."""
    registry = default_registry()
    _warn_problems(registry)
    chip = registry.get_chip(chip_id)
    plugin = registry.plugin_of(chip.chip_id)
    if as_json:
        print_json(
            {
                **chip_to_dict(chip, plugin=plugin),
                "calibration": calibration_info(chip.chip_id),
                "withheld_calibration": withheld_info(chip.chip_id),
            }
        )
        return
    _show_chip(chip, plugin)
