"""Physical pruning of real torchvision models with Torch-Pruning."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from autocompress.compress.slim import aligned_channels, channel_groups, slim
from autocompress.core.errors import ConfigError
from autocompress.core.models import build_model, count_parameters
from autocompress.hardware.extract import extract_layers

torch.set_num_threads(1)
INPUT = (3, 32, 32)
INPUT_EXAMPLE = torch.zeros(1, *INPUT)


def _macs(model: nn.Module) -> int:
    return sum(d.macs for d in extract_layers(model, INPUT))


def test_aligned_channels_rounds_to_alignment_and_never_below_one_group():
    assert aligned_channels(64, 0.5, 16) == 32
    assert aligned_channels(64, 0.3, 16) == 16  # 19.2 -> 16
    assert aligned_channels(64, 0.05, 16) == 16  # never below one group
    assert aligned_channels(10, 0.5, 16) == 10  # never above the original
    assert aligned_channels(24, 0.5, 1) == 12
    assert aligned_channels(3, 0.01, 1) == 1


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_pruned_model_runs_with_aligned_channels_fewer_params_and_macs(name):
    model = build_model(name, num_classes=10, small_input=True).eval()
    example = torch.randn(1, *INPUT)
    params_before, macs_before = count_parameters(model), _macs(model)
    groups = channel_groups(model, example)
    target = next(g for g in groups if g.prunable and g.channels >= 64 and len(g.members) == 1)
    kept = slim(
        model,
        example,
        width_multiplier=0.5,
        prune_ratios={target.name: 0.5},
        channel_alignment=16,
    )
    assert model(torch.randn(2, *INPUT)).shape == (2, 10)
    for group in groups:
        if not group.prunable:
            continue
        ratio = 0.5 if group.name == target.name else 0.0
        expected = aligned_channels(group.channels, 0.5 * (1 - ratio), 16)
        assert kept[group.name] == expected
        for member in group.members:  # every coupled layer shrank the same way
            module = model.get_submodule(member)
            out = module.out_channels if isinstance(module, nn.Conv2d) else module.out_features
            assert out == expected, member
            assert out % 16 == 0 or out == group.channels
    assert count_parameters(model) < 0.4 * params_before
    assert _macs(model) < 0.4 * macs_before


def test_depthwise_layers_follow_their_producer():
    model = build_model("mobilenet_v2", num_classes=10, small_input=True).eval()
    slim(model, torch.randn(1, *INPUT), width_multiplier=0.5, prune_ratios={}, channel_alignment=8)
    depthwise = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == 17  # MobileNetV2's depthwise convolutions
    for module in depthwise:
        assert module.groups == module.in_channels == module.out_channels


def test_protected_group_and_output_layer_keep_their_channels():
    model = build_model("resnet18", num_classes=10, small_input=True).eval()
    slim(
        model,
        torch.randn(1, *INPUT),
        width_multiplier=0.5,
        prune_ratios={},
        channel_alignment=8,
        protect=["conv1"],
    )
    assert model.conv1.out_channels == 64  # the stem group (conv1 + layer1 residual) is protected
    assert model.layer1[0].conv2.out_channels == 64
    assert model.layer2[0].conv1.out_channels == 64  # its own group is pruned
    assert model.fc.out_features == 10


def test_the_channels_with_the_largest_group_magnitude_are_kept():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 4, 3, padding=1, bias=False),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    ).eval()
    scale = torch.tensor([0.1, 3.0, 0.2, 2.0, 0.3, 4.0, 0.4, 1.0])  # channels 1, 3, 5, 7 matter
    with torch.no_grad():
        model[0].weight.mul_(
            scale.view(8, 1, 1, 1) / model[0].weight.flatten(1).norm(dim=1).view(8, 1, 1, 1)
        )
        model[3].weight.mul_(scale.view(1, 8, 1, 1))
    before = model[0].weight.detach().clone()
    slim(
        model,
        torch.randn(1, 1, 8, 8),
        width_multiplier=0.5,
        prune_ratios={},
        channel_alignment=1,
        protect=["3"],
    )
    assert torch.equal(model[0].weight, before[[1, 3, 5, 7]])


def test_unknown_layer_in_prune_ratios_is_a_config_error():
    model = build_model("small_cnn", num_classes=10, in_channels=1)
    with pytest.raises(ConfigError, match="not a conv/linear layer"):
        slim(
            model,
            torch.randn(1, 1, 8, 8),
            width_multiplier=1.0,
            prune_ratios={"nope": 0.5},
            channel_alignment=1,
        )


def test_full_width_is_never_realigned():
    # efficientnet_b0 has 40-channel layers; rv1126 aligns to 16: 40 used to become 32
    assert aligned_channels(40, 1.0, 16) == 40
    model = build_model("efficientnet_b0", num_classes=10).eval()
    before = {d.name: d.out_channels for d in extract_layers(model, INPUT)}
    kept = slim(
        model, torch.randn(1, *INPUT), width_multiplier=1.0, prune_ratios={}, channel_alignment=16
    )
    assert {d.name: d.out_channels for d in extract_layers(model, INPUT)} == before
    groups = [g for g in channel_groups(model, INPUT_EXAMPLE) if g.prunable]
    assert groups and all(kept[g.name] == g.channels for g in groups)


@pytest.mark.parametrize("name", ["regnet_x_400mf", "resnext50_32x4d"])
def test_grouped_convolutions_are_pruned_per_group(name):
    model = build_model(name, num_classes=10).eval()
    example = torch.randn(1, *INPUT)
    groups = channel_groups(model, example)
    grouped = [g for g in groups if g.conv_groups > 1 and g.prunable]
    assert grouped, "the model's grouped convolutions were not seen"
    kept = slim(model, example, width_multiplier=0.5, prune_ratios={}, channel_alignment=16)
    assert model(torch.randn(2, *INPUT)).shape == (2, 10)
    for group in grouped:
        assert kept[group.name] % group.conv_groups == 0
        assert kept[group.name] < group.channels


def test_untraceable_models_stay_at_full_width_and_say_why():
    model = build_model("shufflenet_v2_x0_5", num_classes=10).eval()
    groups = channel_groups(model, torch.randn(1, *INPUT))
    assert groups and not any(g.prunable for g in groups)
    assert all("Torch-Pruning cannot trace" in g.reason for g in groups)
    kept = slim(
        model, torch.randn(1, *INPUT), width_multiplier=0.5, prune_ratios={}, channel_alignment=16
    )
    assert kept == {} and model(torch.randn(2, *INPUT)).shape == (2, 10)


def test_search_records_which_layers_stay_at_full_width_and_why():
    from autocompress.search.prepare import by_reason, full_width_layers

    model = build_model("shufflenet_v2_x0_5", num_classes=10).eval()
    full_width = full_width_layers(model, INPUT)  # its channel shuffle is beyond the tracer
    assert "conv1.0" in full_width and "stage2.0.branch1.0" in full_width
    (reason,) = by_reason(full_width)
    assert "cannot trace" in reason
    # GoogLeNet's auxiliary classifiers (training only) leave the student: not listed
    assert full_width_layers(build_model("googlenet", num_classes=10).eval(), INPUT) == {}


def _assert_hidden_widths_pruned(reference, model, kept, hidden, x):
    """Each ``hidden`` Linear (first of an MLP, its reader three modules on) kept half its
    outputs, the teacher's own rows; the pruned model computes what the teacher computes
    with the dropped hidden channels zeroed where the second Linear reads them; every other
    layer is untouched."""
    import copy

    masked = copy.deepcopy(reference)
    for block in hidden:
        before, after = reference.get_submodule(block), model.get_submodule(block)
        prefix, _, index = block.rpartition(".")
        second = f"{prefix}.{int(index) + 2 if prefix.endswith('mlp_layer') else 3}"
        assert kept[block] == after.out_features == before.out_features // 2
        assert model.get_submodule(second).in_features == kept[block]
        first = {float(v): i for i, v in enumerate(before.weight.detach()[:, 0])}  # unique
        rows = [first[float(w[0])] for w in after.weight.detach()]
        assert torch.equal(before.weight[rows], after.weight)
        dropped = sorted(set(range(before.out_features)) - set(rows))
        with torch.no_grad():
            masked.get_submodule(second).weight[:, dropped] = 0.0
    others = [
        (n, m.weight.shape)
        for n, m in reference.named_modules()
        if isinstance(m, nn.Linear | nn.Conv2d) and n not in hidden and "mlp" not in n
    ]
    assert others and all(model.get_submodule(n).weight.shape == shape for n, shape in others)
    with torch.no_grad():
        assert torch.allclose(model(x), masked(x), atol=1e-5)
        assert not torch.allclose(model(x), reference(x), atol=1e-3)


@pytest.mark.parametrize("name", ["swin_t", pytest.param("swin_v2_t", marks=pytest.mark.slow)])
def test_swin_mlp_hidden_widths_are_pruned_and_the_forward_pass_stays_correct(name):
    import copy

    torch.manual_seed(0)
    model = build_model(name, num_classes=4).eval()
    x = torch.randn(2, *INPUT)
    groups = channel_groups(model, x[:1])
    prunable = [g for g in groups if g.prunable]
    hidden = [n for n, m in model.named_modules() if n.endswith(".mlp.0")]
    assert [g.name for g in prunable] == hidden and len(hidden) == 12
    assert all(g.members == (g.name,) for g in prunable)
    kept_at_full = [g for g in groups if not g.prunable and g.name != "head"]
    assert kept_at_full and all("window attention" in g.reason for g in kept_at_full)
    reference = copy.deepcopy(model)
    kept = slim(model, x[:1], width_multiplier=0.5, prune_ratios={}, channel_alignment=8)
    _assert_hidden_widths_pruned(reference, model, kept, hidden, x)


def test_maxvit_mlp_hidden_widths_are_pruned_and_the_forward_pass_stays_correct():
    import copy

    from torchvision.models.maxvit import MaxVit

    torch.manual_seed(0)
    model = MaxVit(
        input_size=(32, 32),
        stem_channels=8,
        partition_size=2,
        block_channels=[16, 32],
        block_layers=[1, 1],
        head_dim=8,
        stochastic_depth_prob=0.0,
        num_classes=4,
    ).eval()
    x = torch.randn(2, *INPUT)
    groups = channel_groups(model, x[:1])
    hidden = [n for n, _ in model.named_modules() if n.endswith("mlp_layer.1")]
    assert [g.name for g in groups if g.prunable] == hidden and len(hidden) == 4  # window, grid
    reference = copy.deepcopy(model)
    kept = slim(model, x[:1], width_multiplier=0.5, prune_ratios={}, channel_alignment=4)
    _assert_hidden_widths_pruned(reference, model, kept, hidden, x)
