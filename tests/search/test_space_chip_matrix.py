"""Every built-in search space on every bundled chip: resolve, sample, build and cost (no training).

A space file or a chip spec that breaks a combination fails here in milliseconds, not after a
teacher has trained. The spaces are autocompress/builtin_spaces/*.yaml and the chips are what
each plugin folder in plugins/ contributes, both listed at collection time (nothing copied)."""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import optuna
import pytest
import torch

from autocompress.compress.student import build_student
from autocompress.core.models import build_model
from autocompress.hardware.estimate import estimate_costs
from autocompress.hardware.extract import extract_layers
from autocompress.hardware.spec import ChipSpec
from autocompress.search.context import model_layers
from autocompress.search.resolve import resolve_space
from autocompress.search.settings import DEFAULT_MODEL
from autocompress.search.space_catalog import builtin_space_names, load_space
from autocompress.search.study import suggest_config

PLUGINS_DIR = Path(__file__).resolve().parents[2] / "plugins"
DIGITS_SHAPE = (1, 8, 8)
SAMPLES = 3
COSTED_MODEL = "small_cnn"
"""Built, run and costed for every sample; the default model (2,048 hidden units, ~1 s to trace
with fake quantization) is resolved and sampled only, to keep the whole matrix to seconds."""


def _bundled_chips() -> dict[str, ChipSpec]:
    """chip id -> spec, from every ``plugins/autocompress_*`` package's own hook."""
    chips: dict[str, ChipSpec] = {}
    for package in sorted(PLUGINS_DIR.glob("autocompress_*/__init__.py")):
        module = importlib.import_module(package.parent.name)
        for spec in module.autocompress_chips():
            chips[spec.chip_id] = spec
    return chips


BUNDLED_CHIPS = _bundled_chips()


def test_the_matrix_is_not_empty():
    assert len(BUNDLED_CHIPS) >= 10, sorted(BUNDLED_CHIPS)
    assert {"default", "mixed_precision", "pruning", "distillation"} <= set(builtin_space_names())


@pytest.fixture(scope="module")
def models() -> dict[str, tuple[torch.nn.Module, tuple[list[str], list[str], dict[str, int]]]]:
    """The search's default model and small_cnn for the digits (random weights: nothing trains)."""
    torch.manual_seed(0)
    out = {}
    for name in dict.fromkeys((DEFAULT_MODEL, COSTED_MODEL)):
        model = build_model(name, num_classes=10, in_channels=DIGITS_SHAPE[0]).eval()
        out[name] = model, model_layers(model, DIGITS_SHAPE)
    return out


@pytest.mark.parametrize("chip_id", sorted(BUNDLED_CHIPS))
@pytest.mark.parametrize("space_name", builtin_space_names())
def test_builtin_space_samples_and_costs_on_bundled_chip(space_name, chip_id, models):
    chip = BUNDLED_CHIPS[chip_id]
    for model_name, (model, (quantizable, prunable, out_channels)) in models.items():
        resolved = resolve_space(
            load_space(space_name),
            chip,
            quantizable=quantizable,
            prunable=prunable,
            out_channels=out_channels,
        )
        assert resolved.protect, f"{model_name}: no layer protected"
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(SAMPLES):
            trial = study.ask()
            config = suggest_config(trial, resolved)
            study.tell(trial, 0.0)
            where = (model_name, config)
            assert set(config.weight_bits) == set(quantizable), where
            assert set(config.weight_bits.values()) <= set(chip.weight_bits_supported), where
            assert set(config.activation_bits.values()) <= set(chip.activation_bits_supported), (
                where
            )
            assert set(config.prune_ratios) <= set(prunable) - set(resolved.protect), where
            assert set(config.sparsity.values()) <= set(chip.sparsity_patterns), where
            if model_name != COSTED_MODEL:
                continue
            student = build_student(model, config, chip, DIGITS_SHAPE, protect=resolved.protect)
            with torch.no_grad():
                logits = student(torch.zeros(1, *DIGITS_SHAPE))
            assert logits.shape == (1, 10), where
            cost = estimate_costs(extract_layers(student, DIGITS_SHAPE), [chip])[chip_id]
            for metric, value in cost.metrics().items():
                assert math.isfinite(value) and value > 0, (metric, value, *where)
