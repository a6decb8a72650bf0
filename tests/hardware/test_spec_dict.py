"""ChipSpec.to_dict: the one JSON form of a chip (``chips --json``, ``chips show --json``)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from autocompress.hardware.plugins import list_chips


@pytest.mark.parametrize("chip", list_chips(), ids=lambda c: c.chip_id)
def test_every_field_in_json_ready_form(chip):
    data = chip.to_dict()
    assert set(data) == {f.name for f in dataclasses.fields(chip)}
    assert json.loads(json.dumps(data)) == data  # plain JSON, nothing lost
    assert data["quantization"]["weight_granularity"] == chip.quantization.weight_granularity.value
    assert data["budgets"]["power_mw"] == chip.budgets.power_mw
    assert {int(k): v for k, v in data["peak_tops_by_bits"].items()} == dict(chip.peak_tops_by_bits)
