"""Exporting trials of real run directories: ONNX agreement, the card, model.pt, errors."""

from __future__ import annotations

import hashlib
import json

import onnx
import pytest
import torch
from onnx import TensorProto, numpy_helper

from autocompress.compress.student import load_student
from autocompress.core.data import load_dataset
from autocompress.core.errors import ConfigError, ExportError, RunDirectoryError
from autocompress.export.api import export
from autocompress.export.verify import compare_with_torch


@pytest.fixture(scope="module")
def mixed_export(mixed_run):
    torch.set_num_threads(1)
    return export(mixed_run, trial=0)


def test_mixed_4_8_bit_pruned_student_agrees_with_pytorch_on_the_test_set(mixed_run, mixed_export):
    result = mixed_export
    assert result.directory == mixed_run / "models" / "trial-0000"
    # the whole digits test split, not a sample
    data = load_dataset("digits", seed=0, val_fraction=0.2)
    student = load_student(mixed_run / "students" / "trial-0000.pt")
    check = compare_with_torch(result.onnx_path, student, data.test.images, data.test.labels)
    assert check.images == len(data.test.labels)
    assert check.top1_agreement >= 0.99
    assert result.check.top1_agreement >= 0.99

    model = onnx.load(str(result.onnx_path))
    inits = {i.name: i for i in model.graph.initializer}
    # mixed bits: 4-bit layers carry int4 codes, 8-bit layers int8 (orin-nano: symmetric)
    assert inits["3.weight_quantized"].data_type == TensorProto.INT4
    assert inits["7.weight_quantized"].data_type == TensorProto.INT4
    assert inits["0.weight_quantized"].data_type == TensorProto.INT8
    assert inits["12.weight_quantized"].data_type == TensorProto.INT8
    # physically pruned: the ONNX tensors have the student's (smaller) channel counts
    for name in ("3", "7"):
        codes = numpy_helper.to_array(inits[f"{name}.weight_quantized"])
        assert codes.shape == tuple(student.get_submodule(name).weight.shape)
    teacher_channels = {
        layer["name"]: layer["teacher_out_channels"] for layer in result.card["layers"]
    }
    kept = {layer["name"]: layer["out_channels"] for layer in result.card["layers"]}
    assert kept["7"] < teacher_channels["7"] and kept["3"] < teacher_channels["3"]
    # activations: Q/DQ pairs with 8-bit containers in front of every layer
    q_nodes = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert {n.name for n in q_nodes} == {"0/input_q", "3/input_q", "7/input_q", "12/input_q"}


def test_card_matches_the_run_records(mixed_run, mixed_export):
    card = json.loads(mixed_export.card_json.read_text())
    record = json.loads((mixed_run / "trials.jsonl").read_text().splitlines()[0])
    assert card["trial"] == record["number"] == 0
    assert card["chip_id"] == "nvidia/orin-nano"
    assert card["accuracy"]["validation"] == record["metrics"]["accuracy"]
    assert card["accuracy"]["test"] == record["metrics"]["test_accuracy"]
    assert card["predicted_cost"] == record["costs"]["nvidia/orin-nano"]
    assert card["costs_all_chips"] == record["costs"]
    assert card["config"] == record["config"]
    # recomputing the cost of the exported student gives the recorded numbers
    recomputed = card["predicted_cost_recomputed"]
    for metric, value in record["costs"]["nvidia/orin-nano"].items():  # every recorded metric
        assert recomputed[metric] == pytest.approx(value, rel=1e-6), metric
    layers = {layer["name"]: layer for layer in card["layers"]}
    for name, bits in record["config"]["weight_bits"].items():
        assert layers[name]["weight_bits"] == bits
        assert layers[name]["activation_bits"] == record["config"]["activation_bits"][name]
    assert sum(layer["predicted"]["latency_ms"] for layer in card["layers"]) == pytest.approx(
        card["predicted_cost_recomputed"]["latency_ms"], rel=1e-6
    )
    for name, digest in card["files"].items():
        assert hashlib.sha256((mixed_export.directory / name).read_bytes()).hexdigest() == digest
    assert card["versions"]["plugins"] and card["versions"]["autocompress"]
    assert card["seeds"]["run"] == 0
    assert card["normalization"]["mean"] and card["input_shape"] == [1, 8, 8]
    # the NVIDIA plugin's export step wrote its files, listed in the card
    assert card["chip_files"]
    for name in card["chip_files"]:
        assert (mixed_export.directory / name).is_file()
    markdown = mixed_export.card_md.read_text()
    assert "nvidia/orin-nano" in markdown and "| 3 | conv |" in markdown
    # the agreement bound was derived from the student's own noise, and the card says how
    check = card["onnx_check"]
    assert check["tolerance"]["method"] == "simulated"
    assert 0 < check["min_agreement"] <= check["top1_agreement"]
    assert check["tolerance"]["simulated_images"] == min(512, check["images"])
    assert check["layers"]["compared"] == 4 and check["layers"]["worst"]["error"] <= 1.0 + 1e-4
    assert "injected before each quantizer agrees" in markdown
    assert "4 layer inputs within one quantization step" in markdown


def test_model_pt_is_weights_only_and_rebuilds_the_student(mixed_export):
    payload = torch.load(mixed_export.pt_path, weights_only=True)
    assert "state_dict" in payload
    rebuilt = load_student(mixed_export.pt_path)
    original = load_student(mixed_export.directory.parents[1] / "students" / "trial-0000.pt")
    images = torch.randn(16, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(rebuilt(images), original(images))


def test_pick_rule_exports_the_chosen_trial(search_run, tmp_path):
    records = [json.loads(line) for line in (search_run / "trials.jsonl").read_text().splitlines()]
    trained = [r for r in records if r["state"] == "complete" and r["feasible"]]
    best = max(trained, key=lambda r: (r["metrics"]["accuracy"], -r["number"]))
    result = export(search_run, pick="max accuracy where latency_ms <= 1", out=tmp_path / "deploy")
    assert result.trial == best["number"]
    assert result.directory == tmp_path / "deploy" and result.onnx_path.is_file()
    assert (
        json.loads(result.card_json.read_text())["picked_by"]
        == "max accuracy where latency_ms <= 1"
    )
    # the Rockchip plugin writes its RKNN-Toolkit files
    assert any(p.name.startswith("rknn") for p in result.chip_files)
    fastest = min(trained, key=lambda r: (r["costs"]["rockchip/rv1126"]["latency_ms"], r["number"]))
    assert (
        export(search_run, pick="min latency_ms", out=tmp_path / "fast").trial == fastest["number"]
    )
    with pytest.raises(ConfigError, match=r"no trial of .* satisfies"):
        export(search_run, pick="min latency_ms where accuracy >= 1.01", out=tmp_path / "none")
    assert not (tmp_path / "none").exists()


def test_bad_requests_give_clear_errors(mixed_run, search_run, tmp_path):
    with pytest.raises(RunDirectoryError, match="trial 99 is not in"):
        export(mixed_run, trial=99)
    with pytest.raises(ConfigError, match="never trained"):
        export(mixed_run, trial=1)
    with pytest.raises(ConfigError, match="trial 2 failed"):
        export(mixed_run, trial=2)
    with pytest.raises(ConfigError, match="column 14"):
        export(search_run, pick="max accuracy when latency_ms <= 3")
    with pytest.raises(ConfigError, match="exactly one"):
        export(search_run)
    with pytest.raises(RunDirectoryError, match="does not exist"):
        export(tmp_path / "nowhere", trial=0)


def test_disagreement_beyond_the_threshold_fails_loudly_and_leaves_nothing(mixed_run, tmp_path):
    out = tmp_path / "strict"
    with pytest.raises(ExportError, match="disagrees with the PyTorch student"):
        export(mixed_run, trial=0, out=out, min_agreement=1.01)
    assert not out.exists()
    assert not list(tmp_path.glob(".strict*"))
