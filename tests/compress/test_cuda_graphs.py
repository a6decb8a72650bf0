"""CUDA graphs of the training step: off where they cannot run, equal to eager where they do."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autocompress.compress.cuda_graphs import (
    CUDA_GRAPHS_ENV,
    InferenceGraph,
    TrainingGraphs,
    capture_training_graphs,
    cuda_graphs_enabled,
)
from autocompress.compress.training import TrainingSchedule, train
from autocompress.core.data import Split

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    )


def _split(n: int = 64) -> Split:
    g = torch.Generator().manual_seed(1)
    return Split(torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 4, (n,), generator=g))


def _ce(model: nn.Module, x: torch.Tensor, y: torch.Tensor, _idx: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(x).float(), y)


def test_env_var_turns_graphs_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CUDA_GRAPHS_ENV, "0")
    assert not cuda_graphs_enabled()
    monkeypatch.setenv(CUDA_GRAPHS_ENV, "1")
    assert cuda_graphs_enabled()
    monkeypatch.delenv(CUDA_GRAPHS_ENV)
    assert cuda_graphs_enabled()


def test_no_capture_off_cuda_and_the_model_is_untouched() -> None:
    model = _net().train()
    graphs = capture_training_graphs(model, torch.randn(4, 3, 8, 8))
    assert not graphs.active and graphs.reason == "not on a CUDA device"
    assert "forward" not in model.__dict__
    teacher = InferenceGraph(model.eval(), torch.randn(4, 3, 8, 8))
    assert not teacher.active
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(teacher(x), model(x))


def test_release_gives_the_module_its_own_forward_back() -> None:
    model = _net()
    model.forward = lambda x: x  # what a capture installs: an instance attribute
    TrainingGraphs(model, True, _patched=True).release()
    assert "forward" not in model.__dict__
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 4)


def test_cpu_training_reports_no_graphs() -> None:
    stats = train(
        _net(), _split(), _ce, TrainingSchedule(epochs=1, batch_size=16), device=torch.device("cpu")
    )
    assert stats["cuda_graphs"] == 0.0


@cuda
def test_graphed_training_matches_eager_on_cuda() -> None:
    device = torch.device("cuda")
    split = _split(256)
    schedule = TrainingSchedule(epochs=2, batch_size=32, lr=0.05)
    eager, graphed = _net(), _net()
    graphed.load_state_dict(copy.deepcopy(eager.state_dict()))
    a = train(eager, split, _ce, schedule, device=device, cuda_graphs=False)
    b = train(graphed, split, _ce, schedule, device=device, cuda_graphs=True)
    assert a["cuda_graphs"] == 0.0 and b["cuda_graphs"] == 1.0
    assert "forward" not in graphed.__dict__  # released after training
    # bf16 autocast in both: the same steps on the same batches, equal up to rounding
    assert b["final_loss"] == pytest.approx(a["final_loss"], rel=0.05, abs=0.02)
    # parameters only: the capture's warm-up passes also update batch-norm statistics
    pairs = zip(eager.named_parameters(), graphed.parameters(), strict=True)
    for (name, p), q in pairs:
        assert torch.allclose(p.float(), q.float(), rtol=0.05, atol=0.02), name


@cuda
def test_teacher_graph_replays_the_same_logits() -> None:
    model = _net().cuda().eval()
    sample = torch.randn(16, 3, 8, 8, device="cuda")
    graph = InferenceGraph(model, sample)
    assert graph.active
    x = torch.randn(16, 3, 8, 8, device="cuda")
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        expected = model(x).float()
    got = graph(x).float()
    assert torch.allclose(got, expected, rtol=0.02, atol=0.02)
    assert graph(torch.randn(3, 3, 8, 8, device="cuda")).shape == (3, 4)  # other shape: eager


class _Syncs(nn.Module):
    """A model whose forward reads a value back to the CPU: it cannot be captured."""

    def __init__(self) -> None:
        super().__init__()
        self.net = _net()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if float(x.abs().max()) > 1e9:  # a CPU synchronisation
            x = x.clamp(-1e9, 1e9)
        return self.net(x)


@cuda
def test_a_model_that_synchronises_trains_eagerly_and_later_captures_still_work() -> None:
    device = torch.device("cuda")
    model = _Syncs().to(device).train()
    graphs = capture_training_graphs(model, torch.randn(16, 3, 8, 8, device=device))
    assert not graphs.active and "synchronises" in graphs.reason
    assert "forward" not in model.__dict__
    with pytest.warns(UserWarning, match="without CUDA graphs"):
        stats = train(
            model, _split(), _ce, TrainingSchedule(epochs=1, batch_size=16), device=device
        )
    assert stats["cuda_graphs"] == 0.0
    again = train(_net(), _split(), _ce, TrainingSchedule(epochs=1, batch_size=16), device=device)
    assert again["cuda_graphs"] == 1.0
    torch.nn.init.kaiming_uniform_(torch.empty(4, 4, device=device))  # the generator still works


@cuda
def test_a_per_channel_quantized_student_is_captured() -> None:
    """Per-channel fake quantization (rk3566, rk3588, Orin Nano) does not synchronise the step."""
    from autocompress.compress.quantize import fake_quantize
    from autocompress.hardware.spec import QuantGranularity, QuantizationScheme

    device = torch.device("cuda")
    model = _net()
    scheme = QuantizationScheme(weight_granularity=QuantGranularity.PER_CHANNEL)
    fake_quantize(model, scheme, {"0": 8, "5": 8}, {"0": 8, "5": 8})
    model = model.to(device).train()
    graphs = capture_training_graphs(model, torch.randn(16, 3, 8, 8, device=device))
    assert graphs.active, graphs.reason
    graphs.release()
