"""Feature distillation: the student's kept channels are paired with the teacher's."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn

from autocompress.compress import student as S
from autocompress.compress.feature_kd import (
    FeatureTap,
    feature_loss,
    feature_pairs,
    tap_pair,
    teacher_channels,
)
from autocompress.core.errors import AutocompressWarning
from autocompress.core.models import build_model
from autocompress.core.trial_config import TrialConfig

torch.set_num_threads(1)
INPUT = (3, 32, 32)


def _bits(layers, bits):
    return {n: bits for n in layers}


def _resnet_student(chip, *, width: float, bits: int):
    torch.manual_seed(0)
    teacher = build_model("resnet18", num_classes=10, small_input=True).eval()
    with torch.no_grad():  # distinct BN scales, so that a wrong pairing shows
        for m in teacher.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.running_var.uniform_(0.5, 2.0)
    layers = S.quantizable_layers(teacher)
    config = TrialConfig(
        width_multiplier=width, weight_bits=_bits(layers, bits), activation_bits=_bits(layers, bits)
    )
    return teacher, S.build_student(teacher, config, chip, INPUT)


def test_every_kept_convolution_is_paired_with_the_teachers_channels(chip):
    teacher, student = _resnet_student(chip, width=0.5, bits=8)
    pairs = feature_pairs(teacher, student, torch.randn(2, *INPUT))
    convs = [n for n, m in student.named_modules() if isinstance(m, nn.Conv2d)]
    assert [p.student_module for p in pairs] == convs  # all 20, downsample convs included
    for pair in pairs:
        bn = teacher.get_submodule(pair.teacher_module)
        assert isinstance(bn, nn.BatchNorm2d)
        assert pair.channels is not None and len(pair.channels) == bn.num_features // 2
        kept = torch.tensor(pair.channels)
        # the student's folded BN is the teacher's at exactly the recorded channels
        folded = student.get_submodule(pair.student_module).bn
        assert torch.equal(folded.weight.detach(), bn.weight.detach()[kept])
        assert torch.equal(folded.running_var, bn.running_var[kept])


def test_an_unpruned_float_student_has_the_teachers_features(chip):
    teacher, student = _resnet_student(chip, width=1.0, bits=32)
    pairs = feature_pairs(teacher, student, torch.randn(2, *INPUT))
    assert len(pairs) == 20 and all(p.channels is None for p in pairs)
    teacher_tap, student_tap = tap_pair(teacher, student.eval(), pairs)
    x = torch.randn(4, *INPUT)
    with torch.no_grad():
        t_out, *t_features = teacher_tap(x)
        s_out, *s_features = student_tap(x)
    assert torch.allclose(s_out, t_out, atol=1e-4)
    assert float(feature_loss(s_features, t_features)) < 1e-8
    teacher_tap.close()
    student_tap.close()
    assert not any(m._forward_hooks for m in student.modules())


def test_the_loss_is_one_for_a_zero_feature_and_grows_with_the_error():
    t = [torch.randn(2, 4, 3, 3), 100 * torch.randn(2, 8, 3, 3)]
    assert torch.isclose(feature_loss([torch.zeros_like(f) for f in t], t), torch.tensor(1.0))
    near = [f + 0.1 * f.std() * torch.randn_like(f) for f in t]
    far = [f + f.std() * torch.randn_like(f) for f in t]
    assert feature_loss(near, t) < feature_loss(far, t)


def test_a_tap_selects_the_recorded_channels():
    model = nn.Sequential(nn.Conv2d(3, 6, 1), nn.ReLU())
    tap = FeatureTap(model, ["0"], [[1, 4]])
    x = torch.randn(2, 3, 4, 4)
    out, feature = tap(x)
    assert torch.equal(feature, model[0](x)[:, [1, 4]])
    assert torch.equal(out, model(x))


def test_a_student_loaded_from_its_file_has_no_pairs(tmp_path, chip, digits, digits_teacher):
    teacher = digits_teacher.model
    layers = S.quantizable_layers(teacher)
    config = TrialConfig(
        width_multiplier=0.5, weight_bits=_bits(layers, 8), activation_bits=_bits(layers, 8)
    )
    student = S.build_student(teacher, config, chip, digits.input_shape)
    assert teacher_channels(student)
    path = S.save_student(
        tmp_path / "s.pt",
        student,
        teacher_spec=digits_teacher.spec,
        config=config,
        chip_id=chip.chip_id,
        input_shape=digits.input_shape,
    )
    loaded = S.load_student(path)
    assert teacher_channels(loaded) is None
    assert feature_pairs(teacher, loaded, digits.val.images[:2]) == []


def test_finetune_with_features_leaves_no_hooks_and_trains(chip, digits, digits_teacher):
    teacher = digits_teacher.model
    layers = S.quantizable_layers(teacher)
    config = TrialConfig(
        width_multiplier=0.5, weight_bits=_bits(layers, 4), activation_bits=_bits(layers, 8)
    )
    student = S.build_student(teacher, config, chip, digits.input_shape)
    assert feature_pairs(teacher, student, digits.val.images[:2])
    before = S.evaluate(student, digits.val)["accuracy"]
    stats = S.finetune(student, teacher, digits, config, epochs=2, feature_weight=3.0)
    after = S.evaluate(student, digits.val)["accuracy"]
    assert stats["steps"] > 0 and after > before and after > 0.9
    assert not any(m._forward_hooks for m in student.modules())
    assert not any(m._forward_hooks for m in teacher.modules())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("augment", [False, True])
def test_feature_distillation_replays_cuda_graphs(chip, digits, digits_teacher, augment):
    teacher = copy.deepcopy(digits_teacher.model)
    layers = S.quantizable_layers(teacher)
    config = TrialConfig(
        width_multiplier=0.5, weight_bits=_bits(layers, 4), activation_bits=_bits(layers, 8)
    )
    student = S.build_student(teacher, config, chip, digits.input_shape)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AutocompressWarning)  # "training without CUDA graphs"
        stats = S.finetune(
            student,
            teacher,
            digits,
            config,
            epochs=2,
            device="cuda",
            augment=augment,
            feature_weight=3.0,
        )
    assert stats["cuda_graphs"] == 1.0
    assert S.evaluate(student, digits.val, device="cuda")["accuracy"] > 0.9
    assert not any(m._forward_hooks for m in student.modules())
