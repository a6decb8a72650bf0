"""Search spaces: YAML format, validation errors with file/line/field, chip intersection."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from autocompress.core.errors import ConfigError, UnknownNameError
from autocompress.core.models import build_model
from autocompress.hardware.plugins import get_chip
from autocompress.search.context import model_layers
from autocompress.search.resolve import resolve_space
from autocompress.search.space import load_space_file
from autocompress.search.space_catalog import builtin_space_names, list_spaces, load_space
from autocompress.search.study import suggest_config


def _layers(model_name: str = "small_cnn", shape=(1, 8, 8)):
    net = build_model(
        model_name, num_classes=10, in_channels=shape[0], small_input=model_name != "small_cnn"
    )
    return model_layers(net, shape)


def test_builtin_spaces_are_all_there_and_valid():
    assert {"default", "mixed_precision", "pruning", "distillation"} <= set(builtin_space_names())
    for space in list_spaces():
        assert space.rules, space.name
        assert Path(space.path).is_file()


@pytest.mark.parametrize("name", ["default", "mixed_precision", "pruning", "distillation"])
def test_every_builtin_space_resolves_on_every_rockchip_chip(name):
    q, p, oc = _layers()
    for chip_id in ("rockchip/rv1126", "rockchip/rk3588"):
        resolved = resolve_space(
            load_space(name), get_chip(chip_id), quantizable=q, prunable=p, out_channels=oc
        )
        assert resolved.protect == (q[0], q[-1])  # first and last layer protected
        config = resolved.config_from_params(
            {d.name: d.spec.fixed_value for d in resolved.free_dimensions}
        )
        assert set(config.weight_bits) == set(q), (name, chip_id)  # every layer has a width
        assert config.weight_bits[q[0]] == 8 and config.weight_bits[q[-1]] == 8


def test_chip_intersection_never_proposes_what_the_chip_cannot_run():
    q, p, oc = _layers()
    chip = get_chip("rockchip/rv1126")  # int8/int16 only, 16-channel alignment, no 2:4
    resolved = resolve_space(
        load_space("default"), chip, quantizable=q, prunable=p, out_channels=oc
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(60):
        trial = study.ask()
        config = suggest_config(trial, resolved)
        study.tell(trial, 0.0)
        assert set(config.weight_bits.values()) <= set(chip.weight_bits_supported)
        assert set(config.activation_bits.values()) <= set(chip.activation_bits_supported)
        assert not config.sparsity  # rv1126 accelerates no 2:4
        for layer, ratio in config.prune_ratios.items():
            kept = oc[layer] * (1 - ratio)
            assert abs(kept - round(kept)) < 1e-6 and round(kept) % chip.channel_alignment == 0
        assert q[0] not in config.prune_ratios and q[-1] not in config.prune_ratios
    assert any("dropped" in note for note in resolved.notes)


def test_unsupported_only_choice_falls_back_to_nearest_supported_width(tmp_path):
    path = tmp_path / "four.yaml"
    path.write_text("layers:\n  - match: '*'\n    weight_bits: 4\n")
    q, p, oc = _layers()
    resolved = resolve_space(
        load_space_file(path),
        get_chip("rockchip/rv1126"),
        quantizable=q,
        prunable=p,
        out_channels=oc,
    )
    bits = {d.spec.fixed_value for d in resolved.dimensions if d.field == "weight_bits"}
    assert bits == {8}
    assert any("using 8" in note for note in resolved.notes)


def test_first_matching_rule_wins_field_by_field(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(
        "layers:\n"
        "  - match: ['3']\n"
        "    weight_bits: 16\n"
        "  - match: '*'\n"
        "    weight_bits: 8\n"
        "    activation_bits: 16\n"
    )
    q, p, oc = _layers()
    resolved = resolve_space(
        load_space_file(path),
        get_chip("rockchip/rv1126"),
        quantizable=q,
        prunable=p,
        out_channels=oc,
    )
    config = resolved.config_from_params({})
    assert config.weight_bits["3"] == 16 and config.weight_bits["7"] == 8
    assert (
        config.activation_bits["3"] == 16
    )  # the later rule still sets the field the first one left


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        (
            "layers:\n  - match: '*'\n    weight_bits: {choices: [4, 40]}\n",
            3,
            "layers[0].weight_bits.choices[1]",
        ),
        ("name: x\nwidth_multiplier: {low: 0.9, high: 0.2}\n", 2, "width_multiplier"),
        ("layers:\n  - match: '*'\n    prune_ratoi: 0.5\n", 3, "layers[0].prune_ratoi"),
        ("layers:\n  - weight_bits: 8\n", 2, "layers[0].match"),
        ("kd_alpha: 1.5\n", 1, "kd_alpha"),
        (
            "layers:\n  - match: '*'\n    sparsity: {choices: [none, '2-4']}\n",
            3,
            "layers[0].sparsity.choices[1]",
        ),
        (  # N:M needs N < M (core.sparsity_pattern, as chip specs and the cost model say)
            "layers:\n  - match: '*'\n    sparsity: {choices: [none, '4:2']}\n",
            3,
            "layers[0].sparsity.choices[1]",
        ),
        ("colour: blue\n", 1, "colour"),
    ],
)
def test_invalid_space_names_file_line_and_field(tmp_path, text, line, field):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_space_file(path)
    message = str(info.value)
    assert f"{path}:{line}:" in message
    assert repr(field) in message


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nlayers:\n  - match: '*'\n    weight_bits: {choices: [4, 8\n")
    with pytest.raises(ConfigError, match=rf"{path}:\d+: not valid YAML"):
        load_space_file(path)


def test_unknown_space_name_suggests_close_names():
    with pytest.raises(UnknownNameError, match="did you mean 'pruning'"):
        load_space("prunning")


def test_resolve_for_chip_is_what_spaces_show_prints():
    from autocompress.search.space_catalog import resolve_for_chip

    resolved = resolve_for_chip(load_space("default"), "rockchip/rv1126", "small_cnn", (1, 8, 8))
    bits = [d.spec.to_dict() for d in resolved.dimensions if d.field == "weight_bits"]
    assert bits
    for spec in bits:  # only widths the RV1126 runs are left
        assert set(spec["choices"] if isinstance(spec, dict) else [spec]) <= {8, 16}
