"""Learned step sizes (LSQ), the recovery recipe, divergence retry, resumable training."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from torch import nn

from autocompress.compress import student as S
from autocompress.compress.distill import teacher_logits
from autocompress.compress.quantize import (
    LayerQuantization,
    QuantConv2d,
    calibrate_activations,
    enable_learned_steps,
    quantized_layers,
)
from autocompress.compress.recipe import (
    CHANCE_CHECK_MIN_STEPS,
    RECOVERY_RECIPE,
    Recipe,
    at_chance,
    collapsed,
    default_recovery_epochs,
    distill_with_retry,
)
from autocompress.compress.training import TrainingDiverged
from autocompress.core.trial_config import TrialConfig

torch.set_num_threads(1)


def _w4a8(teacher, width=0.5):
    layers = S.quantizable_layers(teacher)
    return TrialConfig(
        width_multiplier=width,
        weight_bits={n: 4 for n in layers},
        activation_bits={n: 8 for n in layers},
    )


@pytest.mark.parametrize("symmetric", [True, False])
def test_lsq_steps_receive_gradients_and_stay_positive(symmetric):
    torch.manual_seed(0)
    layer = QuantConv2d.from_float(
        nn.Conv2d(8, 6, 3, padding=1),
        LayerQuantization(weight_bits=4, activation_bits=8, weight_symmetric=symmetric),
    )
    x = torch.randn(16, 8, 6, 6)
    calibrate_activations(layer, x)
    assert enable_learned_steps(layer) == {"": ["weight", "activation"]}
    assert layer.weight_log_step is not None and layer.act_log_step is not None
    before = layer(x).detach()
    layer(x).pow(2).mean().backward()
    assert layer.weight_log_step.grad is not None and layer.weight_log_step.grad.abs().sum() > 0
    assert layer.act_log_step.grad is not None and layer.act_log_step.grad.abs().sum() > 0
    # the learned grid starts as the min/max grid it replaces
    assert layer.quant_params()["weight_scale"].shape == (6,)
    # a step pushed hard towards zero and below stays positive (and the output finite)
    optimizer = torch.optim.SGD([layer.weight_log_step, layer.act_log_step], lr=1e3)
    for _ in range(3):
        optimizer.zero_grad()
        layer(x).pow(2).mean().backward()  # shrinking the steps lowers this loss
        optimizer.step()
    scale = layer.quant_params()["weight_scale"]
    assert (scale > 0).all() and layer.quant_params()["activation_scale"] > 0
    assert torch.isfinite(layer(x)).all() and before.shape == layer(x).shape


def test_lsq_student_trains_saves_and_loads(tmp_path, chip, digits, digits_teacher):
    teacher = digits_teacher.model
    config = _w4a8(teacher)
    student = S.build_student(teacher, config, chip, digits.input_shape)
    S.finetune(student, teacher, digits, config, epochs=1, learned_steps=True, augment=True)
    steps = [
        m.weight_log_step for _, m in quantized_layers(student) if m.weight_log_step is not None
    ]
    assert len(steps) == 4 and all(torch.isfinite(s).all() for s in steps)
    path = S.save_student(
        tmp_path / "lsq.pt",
        student,
        teacher_spec=digits_teacher.spec,
        config=config,
        chip_id=chip.chip_id,
        input_shape=digits.input_shape,
    )
    loaded = S.load_student(path)
    x = digits.val.images[:64]
    assert torch.equal(student.eval()(x), loaded(x))
    params = loaded.get_submodule("3").quant_params()
    # the exported codes reproduce the learned grid
    assert torch.allclose(
        (params["weight_int"].float() - params["weight_zero_point"].float().reshape(-1, 1, 1, 1))
        * params["weight_scale"].reshape(-1, 1, 1, 1),
        params["weight"],
        atol=1e-6,
    )


def test_diverging_lr_is_retried_at_a_tenth_then_reported(chip, digits, digits_teacher):
    teacher = digits_teacher.model
    config = _w4a8(teacher)
    student = S.build_student(teacher, config, chip, digits.input_shape)
    with pytest.raises(TrainingDiverged) as info:
        distill_with_retry(
            student, teacher, digits, config, epochs=1, lr=1e9, device="cpu", optimizer="sgd"
        )
    message = str(info.value)
    assert "retried at lr 1e+08" in message
    assert "not finite" in message or "at chance" in message

    # SGD at 0.1 diverges on this folded 4-bit student, a tenth of it trains: one retry
    student = S.build_student(teacher, config, chip, digits.input_shape)
    result = distill_with_retry(
        student, teacher, digits, config, epochs=1, lr=0.1, device="cpu", optimizer="sgd",
        weight_decay=0.0,
    )  # fmt: skip
    assert result.retried and result.lr == pytest.approx(0.01)
    assert "not finite" in result.first_failure
    assert not at_chance(S.evaluate(result.student, digits.val)["accuracy"], 10)


@pytest.mark.parametrize("epochs", [1, 2])
def test_the_end_check_scores_validation_once_and_returns_it(
    monkeypatch, chip, digits, digits_teacher, epochs
):
    import autocompress.compress.recipe as recipe

    teacher = digits_teacher.model
    config = _w4a8(teacher)
    calls = []
    real = recipe.evaluate
    monkeypatch.setattr(recipe, "evaluate", lambda *a, **k: calls.append(1) or real(*a, **k))
    val_logits = teacher_logits(teacher, digits.val.images, "cpu")
    steps_per_epoch = len(digits.train) // 32
    assert steps_per_epoch < CHANCE_CHECK_MIN_STEPS <= 2 * steps_per_epoch
    student = S.build_student(teacher, config, chip, digits.input_shape)
    result = distill_with_retry(
        student, teacher, digits, config, epochs=epochs, lr=1e-3, device="cpu", batch_size=32,
        val_logits=val_logits,
    )  # fmt: skip
    # the calibrated start is scored once; one epoch is too short for the first-epoch check,
    # so the end check alone scores the end; two epochs: the check after epoch 2 is at the
    # last step and doubles as the end check
    assert len(calls) == 2
    fresh = real(result.student, digits.val, teacher_logits=val_logits)
    assert result.val is not None
    assert result.val["accuracy"] == pytest.approx(fresh["accuracy"])
    assert result.val["teacher_agreement"] == pytest.approx(fresh["teacher_agreement"])


def test_a_fine_tune_that_ends_far_below_its_calibrated_start_has_collapsed():
    # 87 % -> 36 % on ten classes (what AdamW 1e-3 did to a ResNet-18 student on a GPU)
    assert collapsed(0.87, 0.36, 10)
    assert collapsed(0.87, 0.60, 10)  # more than a third of the 77-point margin lost
    assert not collapsed(0.87, 0.86, 10)  # a small dip is noise, not a collapse
    assert not collapsed(0.30, 0.80, 10)  # a pruned student that training lifts
    assert not collapsed(0.14, 0.11, 10)  # near chance: the 5-point floor
    assert collapsed(0.99, 0.70, 2)


def test_training_resumes_from_an_epoch_checkpoint_exactly(chip, digits, digits_teacher):
    teacher = digits_teacher.model
    config = _w4a8(teacher)
    kwargs = dict(epochs=2, batch_size=128, learned_steps=True, seed=3)
    full = S.build_student(teacher, config, chip, digits.input_shape)
    S.finetune(full, teacher, digits, config, **kwargs)

    saved = {}

    def keep_first(end):
        if end.epoch == 1:
            saved["state"] = copy.deepcopy(end.state)  # live optimizer tensors
            saved["weights"] = {k: v.clone() for k, v in part.state_dict().items()}

    part = S.build_student(teacher, config, chip, digits.input_shape)
    S.finetune(part, teacher, digits, config, on_epoch=keep_first, **kwargs)
    resumed = S.build_student(teacher, config, chip, digits.input_shape)
    S.make_room_for_learned_steps(resumed, saved["weights"])
    resumed.load_state_dict(saved["weights"])
    S.finetune(resumed, teacher, digits, config, resume=saved["state"], calibrated=True, **kwargs)
    x = digits.val.images[:64]
    assert torch.allclose(full.eval()(x), resumed.eval()(x), atol=1e-5)


def test_recovery_lr_is_lower_for_students_with_learned_4_bit_steps():
    int8 = TrialConfig(weight_bits={"a": 8, "b": 8})
    w4a8 = TrialConfig(weight_bits={"a": 8, "b": 4})
    recipe = RECOVERY_RECIPE
    assert recipe.peak_lr(int8) == recipe.lr == 1e-3
    assert recipe.peak_lr(TrialConfig()) == recipe.lr  # float weights
    assert recipe.peak_lr(w4a8) == recipe.low_bit_lr == 5e-4
    # no learned steps, or no low-bit LR: one LR for every student
    assert Recipe(learned_steps=False).peak_lr(w4a8) == recipe.lr
    assert Recipe(low_bit_lr=None).peak_lr(w4a8) == recipe.lr
    # recorded in recovered.json: the round trip keeps it
    assert Recipe.from_dict(recipe.to_dict()) == recipe


def test_a_short_run_distills_features_harder_with_smaller_batches_a_long_one_is_unchanged():
    from autocompress.compress.recipe import (
        RECOVERY_RECIPE,
        SHORT_RUN_EPOCHS,
        SHORT_RUN_FEATURE_WEIGHT,
        SHORT_RUN_MAX_BATCH_SIZE,
    )

    assert RECOVERY_RECIPE.for_epochs(30) == RECOVERY_RECIPE
    assert RECOVERY_RECIPE.for_epochs(SHORT_RUN_EPOCHS + 0.5) == RECOVERY_RECIPE
    assert (RECOVERY_RECIPE.feature_weight, RECOVERY_RECIPE.max_batch_size) == (1.0, None)
    short = RECOVERY_RECIPE.for_epochs(5)
    assert short == RECOVERY_RECIPE.for_epochs(SHORT_RUN_EPOCHS)
    assert (short.feature_weight, short.max_batch_size) == (
        SHORT_RUN_FEATURE_WEIGHT, SHORT_RUN_MAX_BATCH_SIZE
    )  # fmt: skip
    assert (short.lr, short.low_bit_lr, short.learned_steps) == (
        RECOVERY_RECIPE.lr, RECOVERY_RECIPE.low_bit_lr, RECOVERY_RECIPE.learned_steps
    )  # fmt: skip
    tighter = dataclasses.replace(RECOVERY_RECIPE, max_batch_size=64).for_epochs(5)
    assert tighter.max_batch_size == 64  # a recipe's own cap stays when it is smaller


def test_default_recovery_epochs_depend_on_dataset_and_device():
    assert default_recovery_epochs("digits", "cpu") < default_recovery_epochs("digits", "cuda")
    assert default_recovery_epochs("cifar10", "cuda") == 30
    assert default_recovery_epochs("other", "cpu") == 10


def test_fast_path_on_a_gpu_is_batch_512_with_cuda_graphs_cpu_unchanged():
    from autocompress.compress.fastpath import choose_fast_path

    gpu = lambda _device: True  # noqa: E731 — "the device is CUDA", without a GPU
    long = choose_fast_path("cuda", epochs=30, train_images=40000, is_cuda=gpu)
    assert (long.device_type, long.batch_size, long.compile, long.cuda_graphs) == (
        "cuda", 512, False, True
    )  # fmt: skip
    short = choose_fast_path("cuda", epochs=1, train_images=40000, is_cuda=gpu)
    assert short.batch_size == 512 and not short.compile and short.cuda_graphs
    cpu = choose_fast_path("cpu", epochs=30, train_images=40000)
    assert (cpu.device_type, cpu.batch_size, cpu.compile, cpu.cuda_graphs) == (
        "cpu", 128, False, False
    )  # fmt: skip
    asked = choose_fast_path("cuda", epochs=1, train_images=100, batch_size=64, compile=True,
                             is_cuda=gpu)  # fmt: skip
    assert not asked.cuda_graphs  # a compiled student brings its own graphs
    assert asked.batch_size == 64 and asked.compile
