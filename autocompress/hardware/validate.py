"""Check a :class:`ChipSpec` before anything trusts it.

:func:`validate_chip_spec` returns a list of human-readable problems, each
naming the field (``"dram_bandwidth_gbps: must be > 0, got -1.0"``); an empty list
means the spec is usable. The plugin registry drops a chip with problems and
reports them with the plugin's name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from autocompress.core.sparsity_pattern import is_nm
from autocompress.hardware.spec import ChipBudgets, ChipSpec, QuantizationScheme

CHIP_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]*/[a-z0-9][a-z0-9_.+-]*$")
MIN_BITS = 2
MAX_BITS = 32

_POSITIVE_FIELDS = (
    "npu_clock_mhz",
    "dram_bandwidth_gbps",
    "channel_alignment",
)
_NON_NEGATIVE_FIELDS = (
    "onchip_buffer_kb",
    "sram_energy_pj_per_byte",
    "dram_energy_pj_per_byte",
    "static_power_mw",
    "launch_overhead_us",
    "onchip_weight_kb",
    "context_switch_us",
    "inference_overhead_us",
)
_EFFICIENCY_FIELDS = ("compute_efficiency", "bandwidth_efficiency", "depthwise_efficiency")
_TEXT_FIELDS = ("chip_id", "vendor", "display_name")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_bits_tuple(name: str, value: Any, problems: list[str]) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or not value:
        problems.append(f"{name}: must be a non-empty tuple of bit-widths, got {value!r}")
        return ()
    good: list[int] = []
    for bits in value:
        if not isinstance(bits, int) or isinstance(bits, bool) or not MIN_BITS <= bits <= MAX_BITS:
            problems.append(f"{name}: bit-width {bits!r} is outside {MIN_BITS}..{MAX_BITS}")
        else:
            good.append(bits)
    return tuple(good)


def _check_bits_table(
    name: str, table: Any, unit: str, problems: list[str], *, allow_zero: bool = False
) -> dict[int, float]:
    if not isinstance(table, Mapping) or not table:
        problems.append(f"{name}: must be a non-empty mapping bits -> {unit}, got {table!r}")
        return {}
    good: dict[int, float] = {}
    for bits, value in table.items():
        if not isinstance(bits, int) or isinstance(bits, bool) or not MIN_BITS <= bits <= MAX_BITS:
            problems.append(f"{name}: key {bits!r} is not a bit-width in {MIN_BITS}..{MAX_BITS}")
            continue
        if not _is_number(value) or value < 0 or (value == 0 and not allow_zero):
            problems.append(f"{name}[{bits}]: must be a positive number of {unit}, got {value!r}")
            continue
        good[bits] = float(value)
    return good


def _check_numbers(spec: ChipSpec, problems: list[str]) -> None:
    for name in _POSITIVE_FIELDS:
        value = getattr(spec, name)
        if not _is_number(value) or value <= 0:
            problems.append(f"{name}: must be > 0, got {value!r}")
    if _is_number(spec.channel_alignment) and int(spec.channel_alignment) != spec.channel_alignment:
        problems.append(
            f"channel_alignment: must be a whole number, got {spec.channel_alignment!r}"
        )
    for name in _NON_NEGATIVE_FIELDS:
        value = getattr(spec, name)
        if not _is_number(value) or value < 0:
            problems.append(f"{name}: must be >= 0, got {value!r}")
    element_launch = getattr(spec, "element_launch_overhead_us", None)
    if element_launch is not None and (not _is_number(element_launch) or element_launch < 0):
        problems.append(f"element_launch_overhead_us: must be None or >= 0, got {element_launch!r}")
    if not isinstance(getattr(spec, "npu_family", ""), str):
        problems.append(f"npu_family: must be a string, got {spec.npu_family!r}")
    if not isinstance(getattr(spec, "weights_on_chip", False), bool):
        problems.append(f"weights_on_chip: must be True or False, got {spec.weights_on_chip!r}")
    for name in _EFFICIENCY_FIELDS:
        value = getattr(spec, name)
        if not _is_number(value) or not 0 < value <= 1:
            problems.append(f"{name}: efficiency knob must be in (0, 1], got {value!r}")


def _check_precisions(spec: ChipSpec, problems: list[str]) -> None:
    weight_bits = _check_bits_tuple("weight_bits_supported", spec.weight_bits_supported, problems)
    act_bits = _check_bits_tuple(
        "activation_bits_supported", spec.activation_bits_supported, problems
    )
    peaks = _check_bits_table("peak_tops_by_bits", spec.peak_tops_by_bits, "TOPS", problems)
    energies = _check_bits_table(
        "energy_per_mac_pj_by_bits", spec.energy_per_mac_pj_by_bits, "pJ", problems
    )
    if peaks:
        widest = max(peaks)
        for label, bits_list in (("weight", weight_bits), ("activation", act_bits)):
            for bits in bits_list:
                if bits > widest:
                    problems.append(
                        f"{label}_bits_supported: {bits}-bit has no peak_tops_by_bits entry that "
                        f"covers it (widest is {widest}); add a {bits}-bit throughput"
                    )
        missing = sorted(set(peaks) - set(energies))
        if energies and missing:
            problems.append(
                "energy_per_mac_pj_by_bits: no entry for compute width(s) "
                f"{', '.join(map(str, missing))} listed in peak_tops_by_bits"
            )


def _check_sparsity(spec: ChipSpec, problems: list[str]) -> None:
    patterns = spec.sparsity_patterns
    if not isinstance(patterns, (tuple, list)):
        problems.append(f"sparsity_patterns: must be a tuple like ('2:4',), got {patterns!r}")
        return
    for pattern in patterns:
        if not is_nm(pattern):
            problems.append(f"sparsity_patterns: {pattern!r} is not like 'N:M' with 0 < N < M")
    if not _is_number(spec.sparsity_speedup) or spec.sparsity_speedup < 1:
        problems.append(f"sparsity_speedup: must be >= 1, got {spec.sparsity_speedup!r}")
    elif spec.sparsity_speedup > 1 and not patterns:
        problems.append("sparsity_speedup: > 1 but the chip lists no sparsity_patterns")


def _check_budgets_and_scheme(spec: ChipSpec, problems: list[str]) -> None:
    budgets = spec.budgets
    if not isinstance(budgets, ChipBudgets):
        problems.append(f"budgets: must be a ChipBudgets, got {type(budgets).__name__}")
    else:
        for budget in fields(ChipBudgets):
            value = getattr(budgets, budget.name)
            if not _is_number(value) or value <= 0:
                problems.append(f"budgets.{budget.name}: must be > 0, got {value!r}")
    scheme = spec.quantization
    if not isinstance(scheme, QuantizationScheme):
        problems.append(f"quantization: must be a QuantizationScheme, got {type(scheme).__name__}")
    elif scheme.logarithmic and (
        not isinstance(scheme.log_steps_per_octave, int) or scheme.log_steps_per_octave < 1
    ):
        problems.append(
            f"quantization.log_steps_per_octave: must be >= 1, got {scheme.log_steps_per_octave!r}"
        )


def _check_provenance(spec: ChipSpec, problems: list[str]) -> None:
    field_names = {f.name for f in fields(ChipSpec)}
    if not isinstance(spec.sources, Mapping):
        problems.append(f"sources: must be a mapping field -> source, got {spec.sources!r}")
    else:
        for key, text in spec.sources.items():
            if not isinstance(text, str) or not text.strip():
                problems.append(f"sources[{key!r}]: must be a non-empty string")
    if not isinstance(spec.unverified, (tuple, list)):
        problems.append(f"unverified: must be a tuple of field names, got {spec.unverified!r}")
        return
    for name in spec.unverified:
        if name not in field_names:
            problems.append(f"unverified: {name!r} is not a ChipSpec field")


def validate_chip_spec(spec: Any) -> list[str]:
    """Problems with ``spec`` (field-named messages); ``[]`` when it is usable.

    Checks: type; non-empty text fields; ``chip_id`` like ``vendor/name`` in lower
    case; positive clock, bandwidth and alignment; non-negative energies, power,
    buffer and overhead; bit-widths in 2..32; every supported weight/activation
    width covered by a ``peak_tops_by_bits`` entry; an energy per MAC for every
    compute width; efficiency knobs in (0, 1]; sparsity patterns like ``"N:M"``;
    positive budgets; ``unverified`` naming real fields.
    """
    if not isinstance(spec, ChipSpec):
        return [f"expected a ChipSpec, got {type(spec).__name__}"]
    problems: list[str] = []
    for name in _TEXT_FIELDS:
        value = getattr(spec, name)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{name}: must be a non-empty string, got {value!r}")
    if isinstance(spec.chip_id, str) and spec.chip_id and not CHIP_ID_PATTERN.match(spec.chip_id):
        problems.append(
            f"chip_id: {spec.chip_id!r} must look like 'vendor/name' in lower case "
            "(letters, digits, '-', '_', '.')"
        )
    _check_numbers(spec, problems)
    _check_precisions(spec, problems)
    _check_sparsity(spec, problems)
    _check_budgets_and_scheme(spec, problems)
    _check_provenance(spec, problems)
    return problems
