"""The student API end to end on real models: build, fine-tune, evaluate, save, load."""

from __future__ import annotations

import copy

import pytest
import torch

from autocompress.compress import student as S
from autocompress.compress.quantize import quantized_layers
from autocompress.core.errors import CheckpointError, ConfigError
from autocompress.core.models import ModelSpec, build_model
from autocompress.core.trial_config import TrialConfig
from autocompress.hardware.extract import extract_layers

torch.set_num_threads(1)


def _bits(layers, bits):
    return {name: bits for name in layers}


def test_prunable_and_quantizable_layers_of_resnet18():
    teacher = build_model("resnet18", num_classes=10, small_input=True)
    prunable = S.prunable_layers(teacher, (3, 32, 32))
    assert prunable[0] == "conv1" and "fc" not in prunable
    assert "layer1.0.conv2" not in prunable  # coupled to conv1 through the residual add
    assert "layer2.0.conv2" in prunable  # a new residual stream starts at layer2
    quantizable = S.quantizable_layers(teacher)
    assert quantizable[0] == "conv1" and quantizable[-1] == "fc"
    assert "layer2.0.downsample.0" in quantizable


def test_descriptors_match_the_built_student(chip):
    teacher = build_model("mobilenet_v2", num_classes=10, small_input=True).eval()
    layers = S.quantizable_layers(teacher)
    config = TrialConfig(
        width_multiplier=0.75,
        prune_ratios={"features.2.conv.0.0": 0.5},
        weight_bits={n: 4 for n in layers[:10]},
        activation_bits=_bits(layers, 8),
        sparsity={n: "2:4" for n in layers},
    )
    before = copy.deepcopy(teacher.state_dict())
    student = S.build_student(teacher, config, chip, (3, 32, 32), protect=["features.0.0"])
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert student(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    modules = dict(quantized_layers(student))
    descriptors = {d.name: d for d in extract_layers(student, (3, 32, 32))}
    assert set(modules) <= set(descriptors)
    for name, module in modules.items():
        d = descriptors[name]
        out = module.out_channels if hasattr(module, "out_channels") else module.out_features
        assert (d.out_channels, d.weight_bits, d.activation_bits) == (
            out,
            module.weight_bits,
            module.activation_bits,
        )
        assert d.sparsity_pattern == module.sparsity_pattern
    assert modules["features.0.0"].out_channels == 32  # protected
    assert modules["features.2.conv.0.0"].out_channels == 32  # 96 · 0.75 · 0.5 = 36 -> 32
    assert modules["features.1.conv.0.0"].sparsity_pattern is None  # depthwise stays dense
    assert modules["features.1.conv.1"].sparsity_pattern == "2:4"
    assert descriptors["features.1.conv.1"].sparsity_pattern == "2:4"


def test_build_student_is_deterministic(chip, digits_teacher):
    teacher = digits_teacher.model
    layers = S.quantizable_layers(teacher)
    config = TrialConfig(width_multiplier=0.5, weight_bits=_bits(layers, 4))
    a = S.build_student(teacher, config, chip, (1, 8, 8)).state_dict()
    b = S.build_student(teacher, config, chip, (1, 8, 8)).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_unknown_layer_or_bad_bits_is_a_config_error(chip, digits_teacher):
    with pytest.raises(ConfigError, match="not a conv/linear layer"):
        S.build_student(digits_teacher.model, TrialConfig(weight_bits={"9": 8}), chip, (1, 8, 8))
    with pytest.raises(ConfigError, match="between 2 and 16"):
        S.build_student(digits_teacher.model, TrialConfig(weight_bits={"0": 1}), chip, (1, 8, 8))


def test_8bit_student_stays_within_a_point_of_its_teacher_on_digits(chip, digits, digits_teacher):
    teacher = digits_teacher.model
    layers = S.quantizable_layers(teacher)
    config = TrialConfig(weight_bits=_bits(layers, 8), activation_bits=_bits(layers, 8))
    student = S.build_student(teacher, config, chip, digits.input_shape)
    logits = S.teacher_logits(teacher, digits.train.images, "cpu")
    stats = S.finetune(
        student, teacher, digits, config, teacher_logits=logits
    )  # defaults: 3 epochs
    assert stats["steps"] > 0 and stats["seconds"] > 0
    test_logits = S.teacher_logits(teacher, digits.test.images, "cpu")
    result = S.evaluate(student, digits.test, teacher_logits=test_logits)
    assert result["accuracy"] >= digits_teacher.test_accuracy - 0.01
    assert result["teacher_agreement"] >= 0.97
    assert result["kl_to_teacher"] < 0.05


def test_pruned_4bit_student_recovers_with_distillation(chip, digits, digits_teacher):
    teacher = digits_teacher.model
    layers = S.quantizable_layers(teacher)
    config = TrialConfig(
        width_multiplier=0.5, weight_bits=_bits(layers, 4), activation_bits=_bits(layers, 8)
    )
    student = S.build_student(teacher, config, chip, digits.input_shape)
    before = S.evaluate(student, digits.val)["accuracy"]
    S.finetune(student, teacher, digits, config, epochs=3)
    after = S.evaluate(student, digits.val)["accuracy"]
    assert after > before and after > 0.9


def test_student_round_trips_through_save_and_load(tmp_path, log_chip, digits, digits_teacher):
    teacher = digits_teacher.model
    layers = S.quantizable_layers(teacher)
    config = TrialConfig(
        width_multiplier=0.5,
        prune_ratios={"3": 0.25},
        weight_bits=_bits(layers, 6),
        activation_bits=_bits(layers, 8),
    )
    student = S.build_student(teacher, config, log_chip, digits.input_shape)
    S.finetune(student, teacher, digits, config, steps=3)
    path = S.save_student(
        tmp_path / "model.pt",
        student,
        teacher_spec=digits_teacher.spec,
        config=config,
        chip_id=log_chip.chip_id,
        input_shape=digits.input_shape,
    )
    loaded = S.load_student(path)
    x = digits.val.images[:32]
    assert torch.equal(student.eval()(x), loaded(x))
    assert loaded.get_submodule("0").quant_params()["weight_scheme"] == "logarithmic"
    assert S.read_student_file(path)["chip_id"] == "test/log"

    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="cannot be read"):
        S.load_student(path)


def test_load_student_rejects_a_mismatched_state_dict(tmp_path, chip, digits, digits_teacher):
    config = TrialConfig(width_multiplier=0.5)
    student = S.build_student(digits_teacher.model, config, chip, digits.input_shape)
    path = S.save_student(
        tmp_path / "s.pt",
        student,
        teacher_spec=digits_teacher.spec,
        config=config,
        chip_id=chip.chip_id,
        input_shape=digits.input_shape,
    )
    payload = torch.load(path, weights_only=True)
    payload["teacher_spec"] = ModelSpec("small_cnn", num_classes=5, in_channels=1).to_dict()
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="does not match the architecture"):
        S.load_student(path)
