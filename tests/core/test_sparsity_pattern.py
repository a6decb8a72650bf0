"""The one N:M parser, and that every reader of a pattern agrees with it."""

from __future__ import annotations

import dataclasses

import pytest

from autocompress.compress.sparsity import parse_pattern
from autocompress.core.errors import ConfigError
from autocompress.core.sparsity_pattern import is_nm, parse_nm
from autocompress.hardware.cost_model import _sparse_storage_fraction
from autocompress.hardware.plugins import get_chip
from autocompress.hardware.validate import validate_chip_spec

GOOD = {"2:4": (2, 4), "1:8": (1, 8), " 2:4 ": (2, 4)}
BAD = ["4:2", "2:2", "0:4", "2/4", "2:4:8", "a:b", "", "2:"]


@pytest.mark.parametrize(("text", "expected"), GOOD.items())
def test_well_formed_patterns_parse(text, expected):
    assert parse_nm(text) == expected
    assert parse_pattern(text) == expected
    assert is_nm(text)


@pytest.mark.parametrize("text", BAD)
def test_malformed_patterns_are_refused_everywhere(text):
    with pytest.raises(ConfigError, match="sparsity pattern"):
        parse_nm(text)
    assert not is_nm(text)
    assert _sparse_storage_fraction(text, 8) == 1.0  # the cost model treats it as dense
    chip = dataclasses.replace(get_chip("rockchip/rv1126"), sparsity_patterns=(text,))
    assert any("sparsity_patterns" in problem for problem in validate_chip_spec(chip))
