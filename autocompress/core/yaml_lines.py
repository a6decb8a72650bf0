"""YAML that remembers where things were: line numbers for error messages.

``load_yaml_with_lines`` is ``yaml.safe_load`` (the same safe constructors, no
arbitrary objects) whose mappings and lists are :class:`LineDict` /
:class:`LineList`: plain ``dict`` / ``list`` subclasses that also know the line
of themselves and of each key or item (1-based, as editors show them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from autocompress.core.errors import ConfigError


class LineDict(dict):
    """A dict from YAML; ``line`` is where it starts, ``key_lines[key]`` where each key is."""

    line: int = 0
    key_lines: dict[Any, int]

    def line_of(self, key: Any) -> int:
        """Line of ``key``, or of the mapping itself when the key is absent."""
        return getattr(self, "key_lines", {}).get(key, self.line)


class LineList(list):
    """A list from YAML; ``line`` is where it starts, ``item_lines[i]`` where each item is."""

    line: int = 0
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        lines = getattr(self, "item_lines", [])
        return lines[index] if 0 <= index < len(lines) else self.line


class _LineLoader(yaml.SafeLoader):
    """SafeLoader whose containers carry line numbers."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                "found an unhashable key",
                key_node.start_mark,
            ) from None
        if key in result:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml_with_lines(path: str | Path) -> Any:
    """Parse a YAML file safely, keeping line numbers; a syntax error names file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file does not exist")
    text = path.read_text(encoding="utf-8")
    return parse_yaml_with_lines(text, source=str(path))


def parse_yaml_with_lines(text: str, *, source: str) -> Any:
    """Parse YAML text (``source`` names it in errors)."""
    try:
        return yaml.load(text, Loader=_LineLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{source}:{line}: not valid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None


def plain(data: Any) -> Any:
    """Drop the line bookkeeping: plain dicts and lists (for yaml.safe_dump)."""
    if isinstance(data, dict):
        return {k: plain(v) for k, v in data.items()}
    if isinstance(data, list):
        return [plain(v) for v in data]
    return data
