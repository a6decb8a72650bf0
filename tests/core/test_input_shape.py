"""One input-size parser (core.input_shape) behind cost, estimate_cost, spaces, search, CSVs."""

from __future__ import annotations

import pytest

from autocompress.cli.cost import parse_input_size as cost_input_size
from autocompress.core.errors import ConfigError
from autocompress.core.input_shape import parse_hw, parse_image_shape
from autocompress.hardware.calibration_csv import parse_size as csv_size
from autocompress.hardware.estimate import normalize_input_shape
from autocompress.search.settings import parse_input_size as search_input_size


@pytest.mark.parametrize(
    ("text", "shape"),
    [
        ("224", (3, 224, 224)),
        ("32x24", (3, 32, 24)),
        ("1×28×28", (1, 28, 28)),
        ("1,8,8", (1, 8, 8)),
    ],
)
def test_every_reader_of_an_image_shape_agrees(text, shape):
    assert parse_image_shape(text) == shape
    assert cost_input_size(text) == shape
    assert csv_size(text, "m.csv: line 2, field 'input_size'") == shape
    assert normalize_input_shape(text) == shape  # estimate_cost's input_shape


@pytest.mark.parametrize(
    ("value", "hw"), [(32, (32, 32)), ("224x192", (224, 192)), ([8, 6], (8, 6))]
)
def test_height_and_width(value, hw):
    assert parse_hw(value) == hw
    assert search_input_size(value) == hw


@pytest.mark.parametrize("text", ["3x22a", "x32", "32x", "", "1x2x3x4x5", "-3"])
def test_malformed_sizes_name_the_value(text):
    with pytest.raises(ConfigError, match=r"--input-size .* is malformed"):
        cost_input_size(text)
    with pytest.raises(ConfigError, match="line 2"):
        csv_size(text, "m.csv: line 2, field 'input_size'")


def test_batch_only_where_allowed_and_sizes_positive():
    assert cost_input_size("2x3x8x8") == (2, 3, 8, 8)
    with pytest.raises(ConfigError, match="malformed"):
        parse_image_shape("2x3x8x8")
    with pytest.raises(ConfigError, match="malformed"):
        search_input_size("3x32x32")
    with pytest.raises(ConfigError, match="positive"):
        parse_image_shape("3x0x8")
