"""Budget-filling anchors: a wider uniform model pruned where the chip spends its cost, costed
with the real cost model on a real model, and enqueued (and promoted) in a real search."""

from __future__ import annotations

import optuna
import pytest

from autocompress.core.budget import Budget
from autocompress.core.models import build_model
from autocompress.core.workspace import RunDirectory
from autocompress.hardware.plugins import get_chip
from autocompress.search import prepare
from autocompress.search.anchors import (
    ANCHOR_ATTR,
    CHEAPEST_ATTR,
    anchor_configs,
    cheapest_params,
    default_bits,
    enqueue_cheapest,
    uniform_params,
    uniform_widths,
)
from autocompress.search.budget_fill import BUDGET_FILL_ATTR, budget_fill_params
from autocompress.search.context import model_layers
from autocompress.search.resolve import resolve_space
from autocompress.search.space_catalog import load_space

CHIP = "rockchip/rv1126"
SHAPE = (1, 8, 8)


def _resolved(space_name: str):
    """fc_cnn, the space ``space_name`` resolved on CHIP, and the chip."""
    chip = get_chip(CHIP)
    model = build_model("fc_cnn", num_classes=10, in_channels=1).eval()
    quantizable, prunable, out_channels = model_layers(model, SHAPE)
    space = resolve_space(
        load_space(space_name),
        chip,
        quantizable=quantizable,
        prunable=prunable,
        out_channels=out_channels,
    )
    return model, space, chip


@pytest.fixture(scope="module")
def setting():
    model, space, chip = _resolved("default")

    def cost(config):
        return prepare.chip_cost(model, config, chip, SHAPE, space.protect)

    widths = uniform_widths(space)
    latencies = [
        cost(space.config_from_params(uniform_params(space, w, default_bits(chip)))).latency_ms
        for w in widths
    ]
    return space, chip, cost, widths, latencies


@pytest.fixture(scope="module")
def mid_budget_fills(setting):
    """A budget between width index 2 (fits) and 3 (does not); the fills by cost share, and
    by cost share plus cost per weight (each computed once: they cost student builds)."""
    space, chip, cost, _widths, latencies = setting
    budget = Budget(latency_ms=(latencies[2] + latencies[3]) / 2)
    model = build_model("fc_cnn", num_classes=10, in_channels=1).eval()
    weights = prepare.layer_weight_counts(model)
    by_cost = budget_fill_params(space, chip, budget, cost)
    return budget, by_cost, weights, budget_fill_params(space, chip, budget, cost, weights)


def test_fills_are_wider_than_the_widest_uniform_fit_and_meet_the_budget(setting, mid_budget_fills):
    space, _chip, cost, widths, latencies = setting
    assert latencies == sorted(latencies)  # wider costs more: the premise of uniform scaling
    budget, fills, _weights, _both = mid_budget_fills
    limit = budget.latency_ms
    assert 1 <= len(fills) <= 2
    for params in fills:
        config = space.config_from_params(params)
        assert config.width_multiplier > widths[2]
        assert config.prune_ratios  # pruned to fit, unlike any uniform model
        spent = cost(config)
        assert spent.latency_ms <= limit
        # the layer that costs the most at that width is pruned the most
        wide = cost(space.config_from_params(uniform_params(space, config.width_multiplier, 8)))
        shares = {layer.name: layer.latency_ms for layer in wide.layers}
        pruned = {n: r for n, r in config.prune_ratios.items() if n in shares}
        costliest = max(
            (d.layer for d in space.free_dimensions if d.field == "prune_ratio"),
            key=lambda name: shares.get(name, 0.0),
        )
        assert pruned.get(costliest, 0.0) == max(pruned.values())


def test_the_least_pruning_that_fits_is_chosen(setting, mid_budget_fills):
    space, _chip, cost, _widths, _latencies = setting
    budget, (first, *_rest), _weights, _both = mid_budget_fills
    config = space.config_from_params(first)
    # one step less pruning on the most-pruned layer no longer fits (or is no pruning at all)
    name = max(config.prune_ratios, key=config.prune_ratios.__getitem__)
    dim = next(d for d in space.free_dimensions if d.layer == name and d.field == "prune_ratio")
    allowed = sorted(float(c) for c in dim.spec.choices) if dim.spec.choices else None
    if allowed is not None:
        lower = [r for r in allowed if r < config.prune_ratios[name]]
        if lower:
            less = dict(first) | {dim.name: lower[-1]}
            assert cost(space.config_from_params(less)).latency_ms > budget.latency_ms


def test_capacity_aware_fills_cut_the_costliest_layer_per_weight_most(setting, mid_budget_fills):
    space, _chip, cost, widths, _latencies = setting
    budget, by_cost, weights, both = mid_budget_fills
    assert weights and all(v > 0 for v in weights.values())
    limit = budget.latency_ms
    assert [p for p in both if p in by_cost] == by_cost  # the cost-share fills stay
    extra = [p for p in both if p not in by_cost]
    assert extra, "a per-weight share prunes differently from a cost share on fc_cnn"
    prunable = [d.layer for d in space.free_dimensions if d.field == "prune_ratio"]
    for params in extra:
        config = space.config_from_params(params)
        assert config.width_multiplier > widths[2]
        assert cost(config).latency_ms <= limit
        wide = cost(space.config_from_params(uniform_params(space, config.width_multiplier, 8)))
        per_weight = {layer.name: layer.latency_ms / weights[layer.name] for layer in wide.layers
                      if layer.name in weights}  # fmt: skip
        densest = max(prunable, key=lambda name: per_weight.get(name, 0.0))
        pruned = config.prune_ratios
        assert pruned.get(densest, 0.0) == max(pruned.values())


def test_nothing_to_fill_when_every_width_fits_or_none_does(setting):
    space, chip, cost, _widths, latencies = setting
    assert budget_fill_params(space, chip, Budget(latency_ms=latencies[-1] * 2), cost) == []
    assert budget_fill_params(space, chip, Budget(latency_ms=latencies[0] / 2), cost) == []


def test_a_search_trains_the_fills_after_the_uniform_anchors_and_promotes_them(promoted_run):
    run = RunDirectory(promoted_run.run_dir)
    study = optuna.load_study(study_name="autocompress", storage=run.storage_url)
    uniform = [t.number for t in study.trials if t.user_attrs.get(ANCHOR_ATTR)]
    fills = [t.number for t in study.trials if t.user_attrs.get(BUDGET_FILL_ATTR)]
    cheapest = [t.number for t in study.trials if t.user_attrs.get(CHEAPEST_ATTR)]
    assert fills, "the 97 % budget binds: some uniform width breaks it, so a fill exists"
    assert cheapest == [len(uniform)]  # the cheapest corner right after the uniform widths
    assert fills == list(range(len(uniform) + 1, len(uniform) + 1 + len(fills)))
    records = {r.number: r for r in run.read_trials()}
    trained = [number for number in fills if records[number].state == "complete"]
    assert trained
    top = run.read_run_config().promotion.rungs[-1] * records[trained[0]].rungs[0]["epochs"]
    for number in fills:
        record = records[number]
        if record.state == "duplicate":  # the channel alignment rounds it to a trained student
            assert records[record.duplicate_of].state == "complete"
            assert not run.student_pt(number).exists()
            continue
        assert record.feasible and record.state == "complete"
        assert record.config.prune_ratios
        assert record.rungs[-1]["epochs"] == top  # at the top rung, like the uniform anchors


def test_the_cheapest_corner_costs_less_than_every_anchor_and_fill(setting, mid_budget_fills):
    space, chip, cost, widths, latencies = setting
    _budget, _fills, _weights, both = mid_budget_fills
    params = cheapest_params(space)
    config = space.config_from_params(params)
    assert config.width_multiplier == widths[0]
    prune_dims = [d for d in space.free_dimensions if d.field == "prune_ratio"]
    assert prune_dims and all(config.prune_ratios[d.layer] > 0 for d in prune_dims)
    # the space's budget derivation and the anchor are one configuration
    assert prepare.smallest_config(space) == config
    cheapest = cost(config).latency_ms
    assert cheapest < latencies[0]  # below the narrowest uniform model: the front's low end
    for other in both:  # the budget fills
        assert cost(space.config_from_params(other)).latency_ms > cheapest
    for anchor in anchor_configs(space, chip):
        assert cost(anchor).latency_ms > cheapest


def test_no_cheapest_anchor_when_it_is_a_uniform_width():
    _model, space, chip = _resolved("distillation")
    study = optuna.create_study(directions=["maximize", "minimize"])
    # width only (no pruning, int8 everywhere): the corner is the narrowest uniform model
    assert enqueue_cheapest(study, space, chip, numeric=False) is False
    assert study.trials == []
