"""Re-export: the line-aware YAML loader lives in :mod:`autocompress.core.yaml_lines`."""

from autocompress.core.yaml_lines import (
    LineDict,
    LineList,
    load_yaml_with_lines,
    parse_yaml_with_lines,
    plain,
)

__all__ = ["LineDict", "LineList", "load_yaml_with_lines", "parse_yaml_with_lines", "plain"]
