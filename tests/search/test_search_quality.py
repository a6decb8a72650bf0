"""Search quality: anchors first, no configuration trained twice, --trials counts trained
trials, an almost impossible space ends, promotion rungs, default sampler, progress text."""

from __future__ import annotations

import io

import optuna
import pytest
from click.testing import CliRunner
from rich.console import Console

from autocompress.core.models import build_model
from autocompress.core.trial_config import TrialConfig
from autocompress.core.workspace import RunDirectory
from autocompress.hardware.plugins import get_chip
from autocompress.search.anchors import ANCHOR_ATTR, anchor_configs, config_key, encode_params
from autocompress.search.context import model_layers
from autocompress.search.progress import SearchProgress, format_eta, stage_text
from autocompress.search.resolve import resolve_space
from autocompress.search.samplers import (
    DEFAULT_SAMPLER,
    make_sampler,
    tells_infeasible,
    uses_numeric_encoding,
)
from autocompress.search.space_catalog import load_space
from autocompress.search.study import DUPLICATE_ATTR, suggest_config

FAST = {"teacher_epochs": 3, "epochs": 0.5, "batch_size": 128, "seed": 0}
CHIP = "rockchip/rv1126"


def _resolved(model: str = "small_cnn"):
    teacher = build_model(model, num_classes=10, in_channels=1).eval()
    quantizable, prunable, out_channels = model_layers(teacher, (1, 8, 8))
    return resolve_space(
        load_space("default"),
        get_chip(CHIP),
        quantizable=quantizable,
        prunable=prunable,
        out_channels=out_channels,
    )


# -- unit level -------------------------------------------------------------------------------


def test_default_sampler_is_multivariate_tpe_with_constant_liar():
    assert DEFAULT_SAMPLER == "tpe"
    sampler = make_sampler(DEFAULT_SAMPLER, seed=0, constrained=True)
    assert isinstance(sampler, optuna.samplers.TPESampler)
    assert sampler._multivariate and sampler._constant_liar
    # GP: numeric encoding, and no made-up accuracy for untrained configurations
    assert uses_numeric_encoding("gp") and not tells_infeasible("gp")
    assert not uses_numeric_encoding("tpe") and tells_infeasible("tpe")


def test_anchors_are_uniform_widths_at_default_bits_plus_the_int8_teacher():
    space = _resolved()
    anchors = anchor_configs(space, get_chip(CHIP))
    widths = [0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0]
    assert [a.width_multiplier for a in anchors] == widths  # teacher at int8 == width 1.0 at 8
    for anchor in anchors:
        assert not anchor.prune_ratios and not anchor.sparsity
        assert set(anchor.weight_bits.values()) == {8} == set(anchor.activation_bits.values())
    assert len({config_key(a) for a in anchors}) == len(anchors)


def test_config_key_is_canonical():
    a = TrialConfig(width_multiplier=0.5, weight_bits={"3": 8, "0": 8}, prune_ratios={"3": 0.25})
    b = TrialConfig(
        width_multiplier=0.5000000001,
        weight_bits={"0": 8, "3": 8},
        prune_ratios={"3": 0.25, "7": 0.0},
    )
    assert config_key(a) == config_key(b) == config_key(a.to_dict())
    assert config_key(a) != config_key(TrialConfig(width_multiplier=0.5, weight_bits={"0": 8}))


def test_numeric_encoding_asks_choice_indices():
    space = _resolved()
    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = study.ask()
    config = suggest_config(trial, space, numeric=True)
    for dim in space.free_dimensions:
        if dim.spec.choices is not None:
            assert isinstance(trial.params[dim.name], int)
    assert config.width_multiplier in dim_choices(space, "width_multiplier")
    params = {
        d.name: (d.spec.choices[0] if d.spec.choices else d.spec.low) for d in space.free_dimensions
    }
    encoded = encode_params(space, params, numeric=True)
    assert all(isinstance(encoded[d.name], int) for d in space.free_dimensions if d.spec.choices)


def dim_choices(space, name):
    return next(d.spec.choices for d in space.dimensions if d.name == name)


def test_progress_text_has_no_repeated_word_and_a_smooth_eta():
    assert stage_text(3, "finetune finetune", 0.4) == "trial 3: finetune 40%"
    assert format_eta(None) == "ETA -" and format_eta(75) == "ETA 1:15"
    progress = SearchProgress(enabled=False, planned=10)
    assert progress.eta_s() is None
    progress.finished(done=1, front_size=1, feasible=1, infeasible=0, seconds=2.0)
    assert progress.eta_s() == pytest.approx(18.0)
    # a cheap infeasible proposal barely moves the ETA (no jump)
    progress.finished(
        done=1, front_size=1, feasible=1, infeasible=1, seconds=0.01, trained_now=False
    )
    assert progress.eta_s() == pytest.approx(18.09)
    assert progress.line() == ("trained 1/10 · infeasible 1 · duplicates 0 · front 1 · ETA 0:18")
    buffer = io.StringIO()
    console = Console(file=buffer, width=200, force_terminal=False)
    with SearchProgress(enabled=True, planned=4, console=console) as live:
        live.stage(2, "finetune finetune", 0.5)
        live.finished(done=1, front_size=1, feasible=1, infeasible=3, seconds=1.0)
    text = buffer.getvalue()
    assert "trained" in text and "infeasible 3" in text and "ETA 0:03" in text
    assert "finetune finetune" not in text


def test_help_says_what_trials_counts():
    from autocompress.cli.search import command

    text = " ".join(CliRunner().invoke(command, ["--help"]).output.split())
    assert "Trained candidates for the run" in text
    assert "10 × this many proposals" in text
    assert "tpe (default)" in text and "--rungs" in text


# -- runs -------------------------------------------------------------------------------------


# promoted_run: tests/search/conftest.py (shared with test_run_safety.py)


def test_anchors_are_enqueued_and_trained_first(promoted_run):
    run = RunDirectory(promoted_run.run_dir)
    study = optuna.load_study(study_name="autocompress", storage=run.storage_url)
    anchors = [t for t in study.trials if t.user_attrs.get(ANCHOR_ATTR)]
    assert [t.number for t in anchors] == list(range(len(anchors))) and len(anchors) == 7
    records = {r.number: r for r in run.read_trials()}
    widths = [records[t.number].config.width_multiplier for t in anchors]
    assert widths == sorted(widths) and widths[0] == 0.25
    assert any(records[t.number].state == "complete" for t in anchors)
    assert any(records[t.number].state == "infeasible" for t in anchors)  # 97% binds


def test_trials_counts_trained_candidates(promoted_run):
    counts = promoted_run.counts
    assert counts["complete"] == 9 and promoted_run.planned == 9
    assert counts.get("infeasible", 0) >= 1  # recorded, not counted
    assert promoted_run.stop_reason is None and not promoted_run.interrupted


def test_promotion_records_rungs_and_the_front_is_at_the_top_rung(promoted_run):
    run = RunDirectory(promoted_run.run_dir)
    config = run.read_run_config()
    assert config.promotion.rungs == (1.0, 3.0)
    records = run.read_trials()
    complete = [r for r in records if r.state == "complete"]
    promoted = [r for r in complete if len(r.rungs) == 2]
    feasible = [r for r in complete if r.feasible]
    assert feasible and len(promoted) >= -(-len(feasible) // 3)  # the best third moved up
    for record in complete:
        assert record.rungs[0]["epochs"] == 0.5
        assert record.metrics["accuracy"] == record.rungs[-1]["accuracy"]
    for record in promoted:
        assert [r["epochs"] for r in record.rungs] == [0.5, 1.5]
        assert record.timings_s["promotion"] > 0
    for record in promoted_run.front():
        assert record.rungs[-1]["epochs"] == 1.5
    study = optuna.load_study(study_name="autocompress", storage=run.storage_url)
    anchors = {t.number for t in study.trials if t.user_attrs.get(ANCHOR_ATTR)}
    for record in complete:  # every feasible uniform-scaling anchor has the top rung too
        if record.number in anchors and record.feasible:
            assert record.rungs[-1]["epochs"] == 1.5
    # run again (resume with the same plan): nothing left to promote, nothing changes
    from autocompress.search.api import search

    again = search(out=promoted_run.run_dir, resume=True)
    assert again.promotion["promoted"] == []
    assert [r.to_dict() for r in run.read_trials()] == [r.to_dict() for r in records]


def test_identical_config_is_not_retrained_across_resume(promoted_run, tmp_path):
    import shutil

    from autocompress.search.api import search

    copy = tmp_path / "copy"
    shutil.copytree(promoted_run.run_dir, copy)
    run = RunDirectory(copy)
    study = optuna.load_study(study_name="autocompress", storage=run.storage_url)
    first = next(t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE)
    study.enqueue_trial(first.params)  # the sampler proposes trial 0's configuration again
    before = {r.number: r for r in run.read_trials()}
    result = search(out=copy, resume=True, trials=10)
    after = {r.number: r for r in result.trials}
    duplicate = after[max(before) + 1]
    assert duplicate.state == "duplicate" and duplicate.duplicate_of == first.number
    assert "finetune" not in duplicate.timings_s and not run.student_pt(duplicate.number).exists()
    assert duplicate.metrics == before[first.number].metrics
    study = optuna.load_study(study_name="autocompress", storage=run.storage_url)
    told = next(t for t in study.trials if t.number == duplicate.number)
    assert told.user_attrs[DUPLICATE_ATTR] == first.number and told.values == first.values
    assert result.counts["complete"] == 10  # the duplicate did not count as trained


def test_a_configuration_that_builds_a_trained_student_is_not_trained_again(tmp_path, halves_space):
    """Width 1.0 with every group pruned by half builds the width-0.5 student: recorded as its
    duplicate (costed, not trained, not counted), on the Optuna backend."""
    from autocompress.search.api import search
    from autocompress.search.study import STUDENT_KEY_ATTR

    space = halves_space
    out = tmp_path / "run"
    settings = dict(model="small_cnn", space=str(space), rungs=[1], latency_ms="1000%", **FAST)
    search(out=out, trials=2, **settings)  # the two uniform anchors: widths 0.5 and 1.0
    run = RunDirectory(out)
    study = optuna.load_study(study_name="autocompress", storage=run.storage_url)
    half = next(t for t in study.trials if t.params.get("width_multiplier") == 0.5)
    pruned = {k: (1.0 if k == "width_multiplier" else 0.5 if "prune" in k else v)
              for k, v in half.params.items()}  # fmt: skip
    assert pruned != half.params
    before = {t.number for t in study.trials}  # the cheapest corner waits in the queue too
    study.enqueue_trial(pruned)
    (waiting,) = [t.number for t in study.trials if t.number not in before]
    result = search(out=out, resume=True, trials=4, **settings)  # the corner, then ours
    records = {r.number: r for r in result.trials}
    duplicate = records[waiting]
    assert duplicate.state == "duplicate" and duplicate.duplicate_of == half.number
    assert duplicate.costs == records[half.number].costs
    assert "finetune" not in duplicate.timings_s and not run.student_pt(duplicate.number).exists()
    study = optuna.load_study(study_name="autocompress", storage=run.storage_url)
    told = {t.number: t for t in study.trials}
    assert (
        told[duplicate.number].user_attrs[STUDENT_KEY_ATTR]
        == (told[half.number].user_attrs[STUDENT_KEY_ATTR])
    )
    assert result.counts["complete"] == 4  # the duplicate did not count as trained


def test_a_space_with_too_few_configurations_ends_with_a_clear_message(tmp_path):
    from autocompress.search.api import search

    space = tmp_path / "two.yaml"
    space.write_text(
        "name: two\nwidth_multiplier: {choices: [0.5, 1.0]}\n"
        "layers:\n  - match: '*'\n    weight_bits: 8\n    activation_bits: 8\n"
    )
    result = search(
        out=tmp_path / "run", model="small_cnn", space=str(space), trials=3, rungs=[1], **FAST
    )
    assert result.counts["complete"] == 2  # two configurations exist, each trained once
    assert result.counts["duplicate"] == 30 - 2
    assert result.stop_reason is not None and "10 × --trials" in result.stop_reason
    assert not result.interrupted
