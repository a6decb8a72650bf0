"""The deploy card (``card.json`` + ``card.md``): what was exported, for which chip, how well.

Keys chip plugins read (``autocompress_export_step``): ``chip_id``, ``layers``
[{name, weight_bits, activation_bits, out_channels, sparsity_pattern, …}],
``input_shape`` [C, H, W], ``normalization`` {mean, std}.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from autocompress.core.metrics import cost_metrics
from autocompress.core.workspace import write_atomic

CARD_FORMAT_VERSION = 1


def layer_entries(
    descriptors: Sequence[Any],
    layer_costs: Sequence[Any],
    quant_notes: Sequence[Mapping[str, Any]],
    raw_params: Mapping[str, Mapping[str, Any]],
    teacher_channels: Mapping[str, int],
) -> list[dict[str, Any]]:
    """One card entry per layer the chip runs: shape, bits, scheme, containers, predicted cost."""
    notes = {n["name"]: n for n in quant_notes}
    costs = {c.name: c for c in layer_costs}
    entries = []
    for d in descriptors:
        cost = costs.get(d.name)
        params = raw_params.get(d.name, {})
        entry: dict[str, Any] = {
            "name": d.name,
            "kind": d.kind.value if hasattr(d.kind, "value") else str(d.kind),
            "in_channels": d.in_channels,
            "out_channels": d.out_channels,
            "teacher_out_channels": teacher_channels.get(d.name),
            "kernel_size": list(d.kernel_size),
            "groups": d.groups,
            "weight_bits": d.weight_bits,
            "activation_bits": d.activation_bits,
            "sparsity_pattern": d.sparsity_pattern,
            "macs": d.macs,
            "weight_count": d.weight_count,
        }
        if params:
            entry["weight_scheme"] = params.get("weight_scheme")
            entry["activation_scheme"] = params.get("activation_scheme")
            entry["weight_granularity"] = params.get("weight_granularity")
            if params.get("activation_scale") is not None:
                entry["activation_scale"] = params["activation_scale"]
                entry["activation_zero_point"] = params.get("activation_zero_point")
                entry["activation_range"] = list(params.get("activation_range") or ())
        note = notes.get(d.name)
        if note:
            for key in (
                "weight_container",
                "activation_container",
                "weight_note",
                "activation_note",
            ):
                if key in note:
                    entry[key] = note[key]
        if cost is not None:
            entry["predicted"] = {
                "latency_ms": cost.latency_ms,
                "energy_mj": cost.energy_mj,
                "compute_ms": cost.compute_ms,
                "memory_ms": cost.memory_ms,
                "bound": cost.bound,
            }
        entries.append(entry)
    return entries


def write_card(directory: Path, card: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write ``card.json`` and ``card.md``; return both paths."""
    json_path, md_path = directory / "card.json", directory / "card.md"
    write_atomic(json_path, json.dumps(card, indent=2, default=str) + "\n")
    write_atomic(md_path, card_markdown(card))
    return json_path, md_path


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _weights_line(weights: Mapping[str, Any]) -> str:
    if weights.get("source") == "recovered":
        return (
            f"recovered by `autocompress finetune` ({_fmt(weights.get('epochs'))} epochs, "
            f"`{weights.get('file')}`)"
        )
    if weights.get("source") == "proxy":
        return (
            f"the search's proxy fine-tune ({_fmt(weights.get('epochs'))} epochs, "
            f"`{weights.get('file')}`); `autocompress finetune` trains it longer"
        )
    return "–"


def _check_lines(check: Mapping[str, Any]) -> list[str]:
    """How the export check's agreement bound was derived, and the layer-by-layer result."""
    tolerance, layers = check.get("tolerance") or {}, check.get("layers") or {}
    lines = []
    if tolerance.get("method") == "simulated":
        lines.append(
            f"  - accepted at >= {_fmt(check.get('min_agreement'))}: PyTorch with the measured "
            f"float error injected before each quantizer agrees "
            f"{_fmt(tolerance.get('simulated_agreement'))} with itself "
            f"({tolerance.get('simulated_runs')} runs on {tolerance.get('simulated_images')} "
            f"images), minus {_fmt(tolerance.get('margin_sigmas'))} standard deviations"
        )
    elif tolerance.get("method") == "fixed":
        lines.append(f"  - accepted at >= {_fmt(check.get('min_agreement'))} (fixed)")
    worst = layers.get("worst")
    if layers.get("compared"):
        lines.append(
            f"  - layer by layer (upstream quantized tensors forced equal): "
            f"{layers['compared']} layer inputs within one quantization step plus float "
            f"rounding; worst `{worst['name'] if worst else '–'}` "
            f"{_fmt(worst['error'] if worst else None)} (allowed "
            f"{_fmt(worst['allowed'] if worst else None)}); logits error "
            f"{_fmt(layers.get('logits_error'))}"
        )
    return lines


def card_markdown(card: Mapping[str, Any]) -> str:
    """The card as Markdown for people."""
    accuracy = card.get("accuracy", {})
    check = card.get("onnx_check", {})
    cost = card.get("predicted_cost", {})
    lines = [
        f"# Deploy card: {card['run']['name']} trial {card['trial']}",
        "",
        f"- chip: **{card['chip_id']}**",
        f"- input: {card['input_shape']} (C, H, W), normalisation mean "
        f"{card['normalization'].get('mean')}, "
        f"std {card['normalization'].get('std')}",
        f"- picked by: {card.get('picked_by')}",
        f"- weights: {_weights_line(card.get('weights') or {})}",
        f"- accuracy: validation {_fmt(accuracy.get('validation'))}, test "
        f"{_fmt(accuracy.get('test'))} "
        f"(PyTorch student); ONNX on {check.get('images')} test images: "
        f"{_fmt(check.get('onnx_accuracy'))}",
        "",
        "| accuracy | validation | test |",
        "|---|---|---|",
        f"| search proxy fine-tune | {_fmt(accuracy.get('proxy_validation'))} | "
        f"{_fmt(accuracy.get('proxy_test'))} |",
        f"| recovered (`autocompress finetune`) | {_fmt(accuracy.get('recovered_validation'))} "
        f"| {_fmt(accuracy.get('recovered_test'))} |",
        f"| teacher | – | {_fmt(accuracy.get('teacher_test'))} |",
        "",
        f"- ONNX vs PyTorch: top-1 agreement {_fmt(check.get('top1_agreement'))}, max logit error "
        f"{_fmt(check.get('max_abs_error'))} (onnxruntime {check.get('onnxruntime_version')})",
        *_check_lines(check),
        f"- predicted on {card['chip_id']}: "
        + ", ".join(f"{m.quantity} {_fmt(m.from_costs(cost))} {m.unit}" for m in cost_metrics()),
        f"- budget met: {card.get('feasible')} "
        f"({', '.join(f'{k} {v:.6g}' for k, v in card.get('budget', {}).items())})",
        "",
        "## Layers",
        "",
        "| layer | kind | channels (teacher) | w bits | a bits | sparsity | latency ms | energy "
        "mJ | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for layer in card.get("layers", []):
        predicted = layer.get("predicted", {})
        note = "; ".join(layer[k] for k in ("weight_note", "activation_note") if layer.get(k))
        weight_bits = layer["weight_bits"] if layer["kind"] in ("conv", "linear") else "–"
        lines.append(
            f"| {layer['name']} | {layer['kind']} | {layer['out_channels']} "
            f"({_fmt(layer.get('teacher_out_channels'))}) "
            f"| {weight_bits} | {layer['activation_bits']} | "
            f"{layer.get('sparsity_pattern') or ''} "
            f"| {_fmt(predicted.get('latency_ms'))} | {_fmt(predicted.get('energy_mj'))} | {note} |"
        )
    other = card.get("costs_all_chips", {})
    if other:
        lines += [
            "",
            "## Predicted cost on every chip the run costed",
            "",
            "| chip | " + " | ".join(m.html_label or m.label for m in cost_metrics()) + " |",
            "|---|" + "---|" * len(cost_metrics()),
        ]
        for chip, values in other.items():
            cells = " | ".join(_fmt(m.from_costs(values)) for m in cost_metrics())
            lines.append(f"| {chip} | {cells} |")
    lines += ["", "## How ONNX carries the bits", ""]
    lines += [f"- {n}" for n in card.get("representation_notes", [])] or [
        "- every bit-width has a native container"
    ]
    lines += ["", "## Files", ""]
    lines += [f"- `{name}` sha256 `{digest}`" for name, digest in card.get("files", {}).items()]
    for name in card.get("chip_files", []):
        lines.append(f"- `{name}` (written by the {card['chip_id']} plugin)")
    lines += [
        "",
        "## Reproduce",
        "",
        f"- seeds: {json.dumps(card.get('seeds', {}))}",
        f"- versions: {json.dumps(card.get('versions', {}))}",
        "",
        "```json",
        json.dumps(card.get("config", {}), indent=2),
        "```",
        "",
    ]
    return "\n".join(lines)
