"""Search spaces: the declarative YAML format, parsed and validated with line numbers.

A space file (see ``docs/search-spaces.md``)::

    name: default
    description: joint width x pruning x mixed precision x distillation
    width_multiplier: {choices: [0.5, 0.75, 1.0]}
    kd_temperature: {low: 1.0, high: 8.0}
    kd_alpha: {low: 0.3, high: 0.9}
    layers:
      - match: [first, last]          # aliases of the first and last conv/linear layer
        protect: true                 # never pruned nor slimmed
        weight_bits: 8
        activation_bits: 8
      - match: "*"                    # fnmatch globs over teacher module names
        prune_ratio: {low: 0.0, high: 0.5, step: 0.125}
        weight_bits: {choices: [4, 8]}
        activation_bits: {choices: [8, 16]}
        sparsity: {choices: [none, "2:4"]}

A value is a constant, ``{choices: [...]}`` or ``{low:, high:, step:, log:}``.
For each layer and each field, the FIRST rule that matches the layer and sets
that field wins. A field no rule sets keeps its neutral value (no pruning,
float weights/activations, dense).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autocompress.core.errors import ConfigError
from autocompress.core.sparsity_pattern import is_nm
from autocompress.search.yaml_lines import LineDict, LineList, load_yaml_with_lines, plain

LAYER_FIELDS = ("prune_ratio", "weight_bits", "activation_bits", "sparsity")
GLOBAL_FIELDS = ("width_multiplier", "kd_temperature", "kd_alpha")
TOP_KEYS = {"name", "description", "layers", *GLOBAL_FIELDS}
RULE_KEYS = {"match", "protect", *LAYER_FIELDS}
LAYER_ALIASES = ("first", "last")


@dataclass(frozen=True)
class ParamSpec:
    """One searchable value: a constant, a list of choices, or a numeric range.

    Exactly one form is used: ``choices`` (a tuple; one element = constant) or
    ``low``/``high`` (with optional ``step`` and ``log``).
    """

    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False

    @property
    def is_fixed(self) -> bool:
        if self.choices is not None:
            return len(self.choices) == 1
        return self.low == self.high

    @property
    def fixed_value(self) -> Any:
        return self.choices[0] if self.choices is not None else self.low

    def values_in_range(self) -> tuple[Any, ...] | None:
        """Choices as given, or None for a continuous range."""
        return self.choices

    def to_dict(self) -> Any:
        if self.choices is not None:
            return self.choices[0] if len(self.choices) == 1 else {"choices": list(self.choices)}
        data: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.step is not None:
            data["step"] = self.step
        if self.log:
            data["log"] = True
        return data


@dataclass(frozen=True)
class LayerRule:
    """Settings for the layers whose names match ``patterns`` (globs or first/last)."""

    patterns: tuple[str, ...]
    params: dict[str, ParamSpec]
    protect: bool | None
    line: int

    def matches(self, name: str, aliases: dict[str, str]) -> bool:
        for pattern in self.patterns:
            if pattern in LAYER_ALIASES:
                if aliases.get(pattern) == name:
                    return True
            elif fnmatch.fnmatchcase(name, pattern):
                return True
        return False


@dataclass(frozen=True)
class SearchSpace:
    """A parsed, validated space file (not yet tied to a model or chip)."""

    name: str
    description: str
    path: str | None
    globals: dict[str, ParamSpec]
    rules: tuple[LayerRule, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "description": self.description}
        for key, spec in self.globals.items():
            data[key] = spec.to_dict()
        rules = []
        for rule in self.rules:
            item: dict[str, Any] = {"match": list(rule.patterns)}
            if rule.protect is not None:
                item["protect"] = rule.protect
            item.update({k: v.to_dict() for k, v in rule.params.items()})
            rules.append(item)
        data["layers"] = rules
        return data


# -- parsing ---------------------------------------------------------------------------


class _Where:
    """Builds 'file:line: field ...' messages."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(
        self, line: int, field_path: str, message: str, hint: str | None = None
    ) -> ConfigError:
        return ConfigError(f"{self.source}:{line}: field {field_path!r}: {message}", hint=hint)


# field -> (kind, minimum, maximum)
_FIELD_RULES: dict[str, tuple[str, float, float]] = {
    "width_multiplier": ("float", 0.01, 1.0),
    "kd_temperature": ("float", 0.1, 100.0),
    "kd_alpha": ("float", 0.0, 1.0),
    "prune_ratio": ("float", 0.0, 0.95),
    "weight_bits": ("int", 2, 16),
    "activation_bits": ("int", 2, 16),
    "sparsity": ("pattern", 0, 0),
}


def _check_scalar(value: Any, name: str, line: int, path: str, where: _Where) -> Any:
    kind, low, high = _FIELD_RULES[name]
    if kind == "pattern":
        text = "none" if value is None else str(value)
        if text != "none" and not is_nm(text):
            raise where.error(
                line,
                path,
                f"{value!r} is not a sparsity pattern",
                'Use "none" or N:M such as "2:4".',
            )
        return text
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise where.error(line, path, f"expected a number, got {value!r}")
    if kind == "int" and int(value) != value:
        raise where.error(line, path, f"expected a whole number of bits, got {value!r}")
    if not low <= value <= high:
        raise where.error(line, path, f"{value!r} is outside [{low:g}, {high:g}]")
    return int(value) if kind == "int" else float(value)


def _parse_param(value: Any, name: str, line: int, path: str, where: _Where) -> ParamSpec:
    if isinstance(value, dict):
        keys = set(value)
        if "choices" in keys:
            extra = keys - {"choices"}
            if extra:
                raise where.error(line, path, f"'choices' cannot be combined with {sorted(extra)}")
            choices = value["choices"]
            if not isinstance(choices, list) or not choices:
                raise where.error(line, f"{path}.choices", "expected a non-empty list")
            checked = []
            for i, item in enumerate(choices):
                item_line = choices.line_of(i) if isinstance(choices, LineList) else line
                checked.append(_check_scalar(item, name, item_line, f"{path}.choices[{i}]", where))
            return ParamSpec(choices=tuple(dict.fromkeys(checked)))
        if "low" in keys or "high" in keys:
            extra = keys - {"low", "high", "step", "log"}
            if extra:
                raise where.error(
                    line, path, f"unknown keys {sorted(extra)}", "A range has low, high, step, log."
                )
            if "low" not in keys or "high" not in keys:
                raise where.error(line, path, "a range needs both 'low' and 'high'")
            if name == "sparsity":
                raise where.error(line, path, "sparsity takes choices, not a range")
            get_line = value.line_of if isinstance(value, LineDict) else (lambda _k: line)
            low = _check_scalar(value["low"], name, get_line("low"), f"{path}.low", where)
            high = _check_scalar(value["high"], name, get_line("high"), f"{path}.high", where)
            if low > high:
                raise where.error(line, path, f"low {low!r} is greater than high {high!r}")
            step = value.get("step")
            if step is not None and (
                isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0
            ):
                raise where.error(
                    get_line("step"), f"{path}.step", f"expected a positive number, got {step!r}"
                )
            log = value.get("log", False)
            if not isinstance(log, bool):
                raise where.error(
                    get_line("log"), f"{path}.log", f"expected true or false, got {log!r}"
                )
            if log and low <= 0:
                raise where.error(line, path, "a log range needs low > 0")
            if _FIELD_RULES[name][0] == "int":
                step = int(step) if step is not None else 1
                return ParamSpec(choices=tuple(range(int(low), int(high) + 1, step)))
            return ParamSpec(
                low=low, high=high, step=float(step) if step is not None else None, log=log
            )
        raise where.error(
            line,
            path,
            f"unknown keys {sorted(keys)}",
            "Write a constant, {choices: [...]} or {low: .., high: ..}.",
        )
    if isinstance(value, list):
        raise where.error(
            line,
            path,
            "a bare list is ambiguous",
            "Write {choices: [...]} for a categorical value.",
        )
    return ParamSpec(choices=(_check_scalar(value, name, line, path, where),))


def parse_space(data: Any, *, source: str, default_name: str = "space") -> SearchSpace:
    """Validate a space read by :func:`load_yaml_with_lines`; errors name source, line, field."""
    where = _Where(source)
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}:1: a search space is a mapping (name, layers, ...), "
            f"got {type(data).__name__}"
        )
    line_of = data.line_of if isinstance(data, LineDict) else (lambda _k: 1)
    unknown = set(data) - TOP_KEYS
    if unknown:
        key = sorted(unknown, key=str)[0]
        raise where.error(
            line_of(key), str(key), "unknown field", f"Known fields: {', '.join(sorted(TOP_KEYS))}."
        )
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise where.error(line_of("name"), "name", f"expected a non-empty string, got {name!r}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise where.error(line_of("description"), "description", "expected a string")
    globals_: dict[str, ParamSpec] = {}
    for key in GLOBAL_FIELDS:
        if key in data:
            globals_[key] = _parse_param(data[key], key, line_of(key), key, where)
    rules_data = data.get("layers", [])
    if not isinstance(rules_data, list):
        raise where.error(line_of("layers"), "layers", "expected a list of rules (- match: ...)")
    rules = []
    for i, rule in enumerate(rules_data):
        path = f"layers[{i}]"
        rule_line = rules_data.line_of(i) if isinstance(rules_data, LineList) else line_of("layers")
        if not isinstance(rule, dict):
            raise where.error(rule_line, path, "expected a mapping with 'match' and settings")
        rule_line_of = rule.line_of if isinstance(rule, LineDict) else (lambda _k, _l=rule_line: _l)
        unknown = set(rule) - RULE_KEYS
        if unknown:
            key = sorted(unknown, key=str)[0]
            raise where.error(
                rule_line_of(key),
                f"{path}.{key}",
                "unknown field",
                f"Known fields: {', '.join(sorted(RULE_KEYS))}.",
            )
        if "match" not in rule:
            raise where.error(
                rule_line, f"{path}.match", "missing", 'Say which layers, e.g. match: "*".'
            )
        patterns = rule["match"]
        if isinstance(patterns, str):
            patterns = [patterns]
        if (
            not isinstance(patterns, list)
            or not patterns
            or not all(isinstance(p, str) and p for p in patterns)
        ):
            raise where.error(
                rule_line_of("match"), f"{path}.match", "expected a glob or a list of globs"
            )
        protect = rule.get("protect")
        if protect is not None and not isinstance(protect, bool):
            raise where.error(
                rule_line_of("protect"),
                f"{path}.protect",
                f"expected true or false, got {protect!r}",
            )
        params = {
            key: _parse_param(rule[key], key, rule_line_of(key), f"{path}.{key}", where)
            for key in LAYER_FIELDS
            if key in rule
        }
        rules.append(LayerRule(tuple(patterns), params, protect, rule_line))
    return SearchSpace(
        name=name, description=description, path=None, globals=globals_, rules=tuple(rules)
    )


def load_space_file(path: str | Path) -> SearchSpace:
    """Load and validate a space file."""
    path = Path(path)
    data = load_yaml_with_lines(path)
    space = parse_space(data, source=str(path), default_name=path.stem)
    return SearchSpace(space.name, space.description, str(path), space.globals, space.rules)


def space_as_plain_dict(space: SearchSpace) -> dict[str, Any]:
    """The space in its YAML form (plain containers)."""
    return plain(space.to_dict())


def rule_for(
    rules: Sequence[LayerRule], layer: str, field_name: str, aliases: dict[str, str]
) -> ParamSpec | None:
    """The first rule matching ``layer`` that sets ``field_name``."""
    for rule in rules:
        if field_name in rule.params and rule.matches(layer, aliases):
            return rule.params[field_name]
    return None


def is_protected(rules: Sequence[LayerRule], layer: str, aliases: dict[str, str]) -> bool:
    """The first matching rule that says ``protect`` decides (default: not protected)."""
    for rule in rules:
        if rule.protect is not None and rule.matches(layer, aliases):
            return rule.protect
    return False
