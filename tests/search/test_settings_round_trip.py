"""``search --config previous/run.yaml``: the settings read from a run's run.yaml are the
settings that made the run (``search(settings=...)``), so the same run comes out again."""

from __future__ import annotations

import dataclasses

import pytest

from autocompress.core.errors import ConfigError
from autocompress.core.workspace import RunDirectory
from autocompress.search.api import _settings_from_arguments, search
from autocompress.search.settings import SearchSettings


def test_settings_from_run_yaml_are_the_settings_that_made_the_run(tmp_path, monkeypatch):
    from autocompress.compress import student

    feature_losses = []  # the trials distil features too (feature_weight > 0)
    real_feature_loss = student.feature_loss

    def counted(*args):
        loss = real_feature_loss(*args)
        feature_losses.append(float(loss))
        return loss

    monkeypatch.setattr(student, "feature_loss", counted)
    settings = SearchSettings(
        model="small_cnn",
        small_input=False,
        data_limit=300,
        chips=("rockchip/rv1126", "nvidia/orin-nano"),
        budget={"memory_kb": "90%", "latency_ms": 5.0},
        trials=1,
        epochs=0.2,
        teacher_epochs=1,
        rungs=(1.0,),
        lr=1e-3,  # like epochs and rungs: run.yaml gives back the resolved value
        feature_weight=0.5,
        device="cpu",
        seed=0,
        name="round-trip",
        out=str(tmp_path / "first"),
    ).validate()
    result = search(settings=settings)
    assert result.budget["latency_ms"] == 5.0 and result.budget_sources["memory_kb"].startswith(
        "user (90%"
    )

    recorded = RunDirectory(result.run_dir).read_run_config()
    assert recorded.status == "complete" and recorded.finished_utc  # written when the call ends
    assert recorded.finetune.feature_weight == 0.5
    assert feature_losses and all(loss > 0 for loss in feature_losses)
    with pytest.raises(ConfigError, match=r"--feature-weight 2\.0 differs from the run.s recorded"):
        search(out=result.run_dir, resume=True, feature_weight=2.0)
    again = _settings_from_arguments(result.run_dir / "run.yaml", {})
    assert dataclasses.replace(again, out=settings.out) == settings
    # keyword arguments still override what the file says
    changed = _settings_from_arguments(result.run_dir / "run.yaml", {"trials": 4, "seed": 2})
    assert (changed.trials, changed.seed) == (4, 2)
    assert dataclasses.replace(changed, trials=1, seed=0, out=settings.out) == settings


def test_the_trial_learning_rate_is_per_device_unless_given():
    from autocompress.search.prepare import DEFAULT_TRIAL_LR, finetune_lr

    plain = SearchSettings(model="small_cnn")
    assert plain.lr is None
    assert finetune_lr(plain, "cpu") == DEFAULT_TRIAL_LR["cpu"] == 1e-3
    assert finetune_lr(plain, "cuda") == DEFAULT_TRIAL_LR["cuda"] == 1e-4
    assert finetune_lr(dataclasses.replace(plain, lr=3e-4), "cuda") == 3e-4


def test_the_default_model_has_its_default_size_and_a_named_one_its_own():
    from autocompress.search.settings import DEFAULT_MODEL, DEFAULT_MODEL_ARGS

    default = _settings_from_arguments(None, {})
    assert (default.model, dict(default.model_args)) == (DEFAULT_MODEL, DEFAULT_MODEL_ARGS)
    assert DEFAULT_MODEL_ARGS == {"hidden": 8192}
    sized = _settings_from_arguments(None, {"model_args": {"hidden": 64}})
    assert dict(sized.model_args) == {"hidden": 64}
    named = _settings_from_arguments(None, {"model": "fc_cnn"})
    assert dict(named.model_args) == {}  # fc_cnn's own defaults, as runs made before
