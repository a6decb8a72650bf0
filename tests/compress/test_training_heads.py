"""Students of models with training-only heads (GoogLeNet's auxiliary classifiers) train.

The auxiliary heads run only in training mode, so the pruner (which traces the
evaluation forward pass) never saw them: a pruned student's heads read the wrong
channel count and its first fine-tune step failed. Students drop them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from autocompress.compress import student as S
from autocompress.compress.model_output import main_logits
from autocompress.compress.training_heads import training_only_heads
from autocompress.core.models import build_model
from autocompress.core.trial_config import TrialConfig


def test_a_pruned_googlenet_student_drops_its_auxiliary_heads_and_trains(chip):
    torch.manual_seed(0)
    teacher = build_model("googlenet", num_classes=10).eval()
    example = torch.randn(1, 3, 32, 32)
    assert training_only_heads(teacher, example) == ["aux1", "aux2"]
    teacher.train()  # the teacher keeps its heads, and trains through the main one
    output = teacher(torch.randn(2, 3, 32, 32))
    assert main_logits(output) is output.logits and output.aux_logits1 is not None
    teacher.eval()

    layers = S.quantizable_layers(teacher)
    config = TrialConfig(
        width_multiplier=0.5,
        weight_bits=dict.fromkeys(layers, 8),
        activation_bits=dict.fromkeys(layers, 8),
    )
    student = S.build_student(teacher, config, chip, (3, 32, 32))
    assert student.aux1 is None and student.aux2 is None
    assert student.inception4a.branch1.conv.out_channels < 192  # pruned under the heads
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    student.train()
    loss = F.cross_entropy(main_logits(student(x)), y)
    loss.backward()  # a training step: failed with a channel mismatch in aux1 before
    assert torch.isfinite(loss)
    assert student.eval()(x).shape == (4, 10)


def test_models_without_training_only_layers_are_left_alone():
    model = build_model("resnet18", num_classes=10, small_input=True).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert training_only_heads(model, torch.randn(1, 3, 32, 32)) == []
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
