import json

import pytest

from autocompress.core.trial_config import TrialConfig


def test_round_trips_through_json():
    config = TrialConfig(
        width_multiplier=0.75,
        prune_ratios={"layer1.0.conv1": 0.25},
        weight_bits={"conv1": 8, "fc": 4},
        activation_bits={"conv1": 8},
        sparsity={"layer2.0.conv2": "2:4"},
        kd_temperature=3.0,
        kd_alpha=0.5,
    )
    data = json.loads(json.dumps(config.to_dict()))
    assert data["type"] == "TrialConfig" and data["version"] == 1
    assert TrialConfig.from_dict(data) == config


def test_unknown_fields_and_versions_are_rejected():
    with pytest.raises(ValueError, match="unknown TrialConfig fields"):
        TrialConfig.from_dict({"width": 1.0})
    with pytest.raises(ValueError, match="version 99"):
        TrialConfig.from_dict({"version": 99})
