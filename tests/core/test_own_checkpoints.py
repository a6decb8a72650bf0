"""The checkpoints people have: plain and wrapped state dicts, model files, pickled models."""

from __future__ import annotations

import os
import shutil

import pytest
import torch
from torch import nn

from autocompress.core.errors import CheckpointError, ConfigError
from autocompress.core.model_files import register_model_sources
from autocompress.core.models import (
    ModelSpec,
    load_checkpoint,
    load_weights,
    peek_checkpoint,
    save_checkpoint,
)

torch.set_num_threads(1)

NET = """
from torch import nn

def net(num_classes=10, width=4):
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(width, num_classes),
    )

def takes_channels(num_classes=10, in_channels=3):
    return nn.Sequential(nn.Conv2d(in_channels, 4, 3), nn.Flatten(), nn.LazyLinear(num_classes))
"""


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "net.py"
    path.write_text(NET)
    return path


def _same(a: nn.Module, b: nn.Module, shape=(2, 3, 8, 8)) -> bool:
    x = torch.randn(*shape)
    return torch.equal(a.eval()(x), b.eval()(x))


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"state_dict": sd, "epoch": 3},  # Lightning
        lambda sd: {"model": sd, "args": None},  # timm-like
        lambda sd: {"model_state_dict": sd, "optimizer_state_dict": {}},
        lambda sd: {f"module.{k}": v for k, v in sd.items()},  # DataParallel
        lambda sd: {"state_dict": {f"model.{k}": v for k, v in sd.items()}},  # Lightning prefix
    ],
    ids=["plain", "lightning", "timm", "script", "module-prefix", "lightning-prefix"],
)
def test_state_dicts_people_save_load(tmp_path, model_file, wrap):
    spec = ModelSpec.for_model(f"{model_file}:net", num_classes=5, model_args={"width": 6})
    torch.manual_seed(0)
    model = spec.build()
    torch.save(wrap(model.state_dict()), tmp_path / "mine.pt")
    loaded, loaded_spec, info = load_weights(tmp_path / "mine.pt", spec)
    assert loaded_spec == spec and info["format"] == "state_dict"
    assert _same(model, loaded)
    assert peek_checkpoint(tmp_path / "mine.pt") is None  # weights only: no architecture


def test_a_pickled_model_is_refused_with_the_two_lines(tmp_path):
    torch.save(nn.Linear(2, 2), tmp_path / "whole.pt")
    with pytest.raises(CheckpointError) as info:
        load_weights(tmp_path / "whole.pt", ModelSpec("small_cnn"))
    text = str(info.value)
    assert "torch.nn.modules.linear.Linear" in text and "\x1b[" not in text
    assert "torch.save(model.state_dict()" in text
    assert "weights_only=False" not in text  # never advise unpickling a file of unknown origin


def test_shape_mismatch_names_the_layer_and_shapes(tmp_path, model_file):
    spec = ModelSpec.for_model(f"{model_file}:net", num_classes=5)
    torch.save(spec.build().state_dict(), tmp_path / "mine.pt")
    other = ModelSpec.for_model(f"{model_file}:net", num_classes=7)
    with pytest.raises(
        CheckpointError, match=r"4\.weight: checkpoint \(5, 4\) vs model \(7, 4\)"
    ) as info:
        load_weights(tmp_path / "mine.pt", other)
    assert "class count" in str(info.value)


def test_a_function_without_in_channels_is_checked_against_the_data(model_file):
    with pytest.raises(ConfigError, match=r"first layer '0'.*takes 3 input channels.*have 1"):
        ModelSpec.for_model(f"{model_file}:net", in_channels=1).build()
    model = ModelSpec.for_model(f"{model_file}:takes_channels", in_channels=1).build()
    assert model[0].in_channels == 1
    with pytest.raises(ConfigError, match="no parameter 'depth'"):
        ModelSpec.for_model(f"{model_file}:net", model_args={"depth": 3}).build()


def test_model_file_is_one_model_by_relative_and_absolute_path(tmp_path, model_file):
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        relative = ModelSpec.for_model("net.py:net", num_classes=3)
    finally:
        os.chdir(cwd)
    absolute = ModelSpec.for_model(f"{model_file}:net", num_classes=3)
    assert relative == absolute and relative.same_architecture(absolute)


def test_a_moved_model_file_is_found_by_content(tmp_path, model_file):
    spec = ModelSpec.for_model(f"{model_file}:net", num_classes=3)
    run = tmp_path / "run"
    (run / "model_source").mkdir(parents=True)
    shutil.copyfile(model_file, run / "model_source" / "net.py")
    save_checkpoint(run / "teacher.pt", spec.build(), spec)
    model_file.unlink()
    model, loaded_spec, _ = load_checkpoint(run / "teacher.pt")  # finds run/model_source/net.py
    assert loaded_spec == spec and isinstance(model, nn.Module)
    register_model_sources(run / "model_source")


def test_a_changed_model_file_is_reported(tmp_path, model_file):
    spec = ModelSpec.for_model(f"{model_file}:net", num_classes=3)
    model_file.write_text(NET + "\n# edited\n")
    fresh = ModelSpec.for_model(f"{model_file}:net", num_classes=3)
    assert not fresh.same_architecture(spec)
    # an unknown hash with no copy anywhere
    lost = ModelSpec(spec.name, 3, source_sha256="0" * 64)
    with pytest.raises(ConfigError, match="has changed since"):
        lost.build()


def test_mnasnet_checkpoint_keeps_module_versions(tmp_path):
    spec = ModelSpec("mnasnet0_5", num_classes=4)
    model = spec.build()
    save_checkpoint(tmp_path / "t.pt", model, spec)
    load_checkpoint(tmp_path / "t.pt")  # used to fail: "version should be set to 1 or 2"
    torch.save({"model": dict(model.state_dict())}, tmp_path / "plain.pt")  # metadata lost
    load_weights(tmp_path / "plain.pt", spec)
