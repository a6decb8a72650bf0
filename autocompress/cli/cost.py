"""``autocompress cost``: the simulated NPU cost of a model on a chip, per layer and in total."""

from __future__ import annotations

from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table

from autocompress.cli.calibration_option import calibration_options
from autocompress.cli.console import print_json, print_warning, stdout
from autocompress.core.errors import ConfigError
from autocompress.core.input_shape import parse_image_shape
from autocompress.core.metrics import cost_metrics
from autocompress.core.sparsity_pattern import is_nm
from autocompress.hardware.cost import Cost
from autocompress.hardware.layers import LayerDescriptor
from autocompress.hardware.spec import ChipSpec


def parse_input_size(text: str) -> tuple[int, ...]:
    """``224`` -> (3, 224, 224); ``HxW`` -> (3, H, W); ``CxHxW``; ``NxCxHxW``."""
    return parse_image_shape(text, what="--input-size", allow_batch=True)


def _shape_text(layer: LayerDescriptor | None) -> str:
    if layer is None:
        return ""
    h, w = layer.output_hw
    if layer.kind.value in ("conv", "pool"):
        kh, kw = layer.kernel_size
        text = f"{layer.in_channels}→{layer.out_channels} {kh}x{kw}"
        if layer.stride != (1, 1):
            text += f"/{layer.stride[0]}"
        if layer.groups > 1:
            text += " dw" if layer.is_depthwise else f" g{layer.groups}"
        return f"{text} @{h}x{w}"
    if layer.kind.value == "linear":
        return f"{layer.in_channels}→{layer.out_channels}"
    return f"{layer.out_channels}@{h}x{w}"


def _macs_text(macs: int) -> str:
    if macs >= 1e9:
        return f"{macs / 1e9:.2f} G"
    if macs >= 1e6:
        return f"{macs / 1e6:.2f} M"
    if macs >= 1e3:
        return f"{macs / 1e3:.1f} k"
    return str(macs)


def _layer_table(cost: Cost, layers: dict[str, LayerDescriptor]) -> Table:
    table = Table(title=f"per-layer cost on {cost.chip_id}", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("layer", overflow="fold", ratio=3)
    table.add_column("kind", overflow="fold", ratio=1)
    table.add_column("shape", overflow="fold", ratio=2)
    for column in ("MACs", "bits w/a", "fused"):
        table.add_column(column, overflow="fold")
    for column in ("compute ms", "memory ms", "latency ms", "energy mJ"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("bound", no_wrap=True)
    for item in cost.layers:
        layer = layers.get(item.name)
        bits = f"{item.weight_bits}/{item.activation_bits}"
        if item.sparsity_pattern:
            bits += f" {item.sparsity_pattern}"
        table.add_row(
            item.name,
            item.kind,
            _shape_text(layer),
            _macs_text(item.macs),
            bits,
            "+".join(layer.fused_ops) if layer else "",
            f"{item.compute_ms:.3g}",
            f"{item.memory_ms:.3g}",
            f"{item.latency_ms:.3g}",
            f"{item.energy_mj:.3g}",
            "mem" if item.bound == "memory" else "comp",
        )
    return table


def _budget_check(value: float, limit: float) -> str:
    return "[green]within[/]" if value <= limit else "[red]over[/]"


def _totals_table(cost: Cost, chip: ChipSpec) -> Table:
    budgets = chip.budgets
    table = Table(title="totals", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column(f"{chip.chip_id} default budget", justify="right")
    table.add_column("")
    totals = cost.metrics()
    rows = [
        (m.name, totals[m.name], getattr(budgets, m.budget, None) if m.budget else None)
        for m in cost_metrics()
    ]
    for name, value, limit in rows:
        table.add_row(
            name,
            f"{value:.4g}" if value < 1000 else f"{value:,.0f}",
            "" if limit is None else f"{limit:,.0f}" if limit >= 1000 else f"{limit:g}",
            "" if limit is None else _budget_check(value, limit),
        )
    table.add_row("MACs", _macs_text(cost.macs), "", "")
    return table


def _precision_note(chip: ChipSpec, layers: list[LayerDescriptor]) -> str | None:
    requested = {(layer.weight_bits, layer.activation_bits) for layer in layers}
    unsupported = sorted(
        {
            bits
            for pair in requested
            for bits in pair
            if bits not in chip.weight_bits_supported + chip.activation_bits_supported
        }
    )
    if not unsupported:
        return None
    widths = sorted(set(chip.weight_bits_supported) | set(chip.activation_bits_supported))
    return (
        f"{chip.chip_id} does not run {', '.join(map(str, unsupported))}-bit layers; they are "
        f"costed at the next width it has (it runs {', '.join(map(str, widths))}). "
        f"Pass --weight-bits/--activation-bits for a quantized deployment."
    )


def _json(model: str, shape: tuple[int, ...], cost: Cost, layers: list[LayerDescriptor]) -> Any:
    by_name = {layer.name: layer for layer in layers}
    rows = []
    for item in cost.to_dict()["layers"]:
        layer = by_name.get(item["name"])
        if layer is not None:
            item.update(
                in_channels=layer.in_channels,
                out_channels=layer.out_channels,
                kernel_size=list(layer.kernel_size),
                stride=list(layer.stride),
                groups=layer.groups,
                output_hw=list(layer.output_hw),
                fused_ops=list(layer.fused_ops),
            )
        rows.append(item)
    return {
        "model": model,
        "input_shape": list(shape),
        "chip_id": cost.chip_id,
        "calibration": _calibration_of(cost.chip_id),
        "totals": cost.to_dict(with_layers=False),
        "layers": rows,
    }


def _calibration_of(chip_id: str) -> dict[str, Any] | None:
    """The calibration applied to ``chip_id`` (path, sha256, cross-validated error), or None."""
    from autocompress.hardware.calibration_store import calibration_summary

    return calibration_summary(chip_id)


def _calibration_line(chip_id: str) -> str:
    found = _calibration_of(chip_id)
    if found is None:
        return f"calibration: none for {chip_id} (datasheet knobs; see `autocompress chips show`)"
    cv = found["cross_validation"] or {}
    error = cv.get("median_abs_pct")
    tail = f", leave-one-model-out median error {error:.1f}%" if error is not None else ""
    return f"calibration: {found['path']} ({found['layer']}, {found['rows']} measurements{tail})"


@click.command("cost")
@click.option(
    "--model",
    "model_name",
    required=True,
    help="torchvision name, small_cnn, or path/file.py:function.",
)
@click.option(
    "--input-size",
    default="224",
    show_default=True,
    help="224 (=3x224x224), HxW, CxHxW (e.g. 1x28x28) or NxCxHxW.",
)
@click.option(
    "--chip",
    "chip_ids",
    required=True,
    multiple=True,
    help="Chip id, e.g. rockchip/rv1126 (see `autocompress chips`); one per command.",
)
@click.option(
    "--weight-bits", type=int, default=None, help="Weight bit-width of every conv/linear layer."
)
@click.option(
    "--activation-bits", type=int, default=None, help="Activation bit-width of every layer."
)
@click.option(
    "--num-classes", type=int, default=1000, show_default=True, help="Classifier outputs."
)
@click.option(
    "--small-input", is_flag=True, help="CIFAR-style stem for 32x32 inputs (torchvision models)."
)
@click.option(
    "--sparsity",
    default=None,
    metavar="N:M",
    help="Semi-structured sparsity (e.g. 2:4) on every conv/linear layer whose input "
    "channels per group are a multiple of M; the chip must support the pattern.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
@calibration_options
def command(
    model_name: str,
    input_size: str,
    chip_ids: tuple[str, ...],
    weight_bits: int | None,
    activation_bits: int | None,
    num_classes: int,
    small_input: bool,
    sparsity: str | None,
    as_json: bool,
) -> None:
    """Simulated NPU cost of a model on a chip: per-layer table and totals.

    \b
    Examples:
      autocompress cost --model mobilenet_v2 --chip rockchip/rv1126
      autocompress cost --model resnet18 --input-size 224 --chip rockchip/rv1126 \\
          --weight-bits 8 --activation-bits 8
      autocompress cost --model small_cnn --input-size 1x8x8 --num-classes 10 \\
          --chip rockchip/rv1126 --weight-bits 8 --activation-bits 8 --json
      autocompress cost --model resnet18 --chip nvidia/orin-nano --weight-bits 8 \\
          --activation-bits 8 --sparsity 2:4
    """
    from autocompress.hardware.estimate import (
        cost_on_chip,
        estimate_with_layers,
        resolve_chip,
        sparsify_everywhere,
    )

    if len(chip_ids) > 1:
        raise ConfigError(
            f"cost takes one --chip, got {len(chip_ids)}: {', '.join(chip_ids)}",
            hint="Run it once per chip (or compare chips with `autocompress report --chip`).",
        )
    chip_id = chip_ids[0]
    shape = parse_input_size(input_size)
    if num_classes <= 0:
        raise ConfigError(f"--num-classes must be positive, got {num_classes}")
    chip = resolve_chip(chip_id)
    layers, cost = estimate_with_layers(
        model_name,
        shape,
        chip,
        weight_bits=weight_bits,
        activation_bits=activation_bits,
        num_classes=num_classes,
        small_input=small_input,
    )
    if sparsity:
        if not is_nm(sparsity):
            raise ConfigError(
                f"--sparsity {sparsity!r} is malformed; give N:M with N < M, e.g. 2:4"
            )
        layers = sparsify_everywhere(layers, sparsity, chip)
        cost = cost_on_chip(layers, chip)
    from autocompress.hardware.legality import check_layers, issues_text

    issues = check_layers(layers, chip)
    if as_json:
        data = _json(model_name, shape, cost, layers)
        data["legality"] = [issue.to_dict() for issue in issues]
        print_json(data)
        return
    # Piped output is not limited to a terminal's width: keep rows on one line.
    console = stdout if stdout.is_terminal else Console(highlight=False, width=170)
    console.print(_layer_table(cost, {layer.name: layer for layer in layers}))
    console.print(_totals_table(cost, chip))
    console.print(_calibration_line(chip.chip_id))
    note = _precision_note(chip, layers)
    if note:
        print_warning(note)
    if issues:
        print_warning(issues_text(chip.chip_id, issues, limit=len(issues)))
