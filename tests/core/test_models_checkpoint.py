"""Teacher checkpoints: save, load with weights_only=True, clear errors."""

from __future__ import annotations

import pytest
import torch

from autocompress.core.errors import CheckpointError
from autocompress.core.models import ModelSpec, load_checkpoint, save_checkpoint

torch.set_num_threads(1)


def test_checkpoint_round_trips(tmp_path):
    spec = ModelSpec("resnet18", num_classes=10, small_input=True)
    torch.manual_seed(0)
    model = spec.build().eval()
    path = save_checkpoint(tmp_path / "t.pt", model, spec, {"test_accuracy": 0.5, "mean": [0.1]})
    loaded, loaded_spec, extra = load_checkpoint(path)
    assert loaded_spec == spec and extra == {"test_accuracy": 0.5, "mean": [0.1]}
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), loaded(x))
    assert not list(tmp_path.glob(".*tmp*"))  # atomic write leaves nothing behind


def test_corrupt_missing_and_foreign_files_are_checkpoint_errors(tmp_path):
    spec = ModelSpec("small_cnn", num_classes=10, in_channels=1)
    path = save_checkpoint(tmp_path / "t.pt", spec.build(), spec)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not an autocompress model checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_wrong_architecture_names_what_mismatches(tmp_path):
    spec = ModelSpec("small_cnn", num_classes=10, in_channels=1)
    path = save_checkpoint(tmp_path / "t.pt", spec.build(), spec)
    payload = torch.load(path, weights_only=True)
    payload["spec"]["num_classes"] = 5
    del payload["state_dict"]["0.weight"]
    torch.save(payload, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "missing keys [0.weight]" in message
    assert "12.weight: checkpoint (10, 128) vs model (5, 128)" in message
    assert str(path) in message


def test_one_reader_for_checkpoints_and_student_files(tmp_path):
    """Teacher checkpoints and student files go through core.models.read_tagged_file."""
    from autocompress.compress.student import STUDENT_FORMAT, load_student

    spec = ModelSpec("small_cnn", num_classes=10, in_channels=1)
    checkpoint = save_checkpoint(tmp_path / "t.pt", spec.build(), spec)
    with pytest.raises(CheckpointError, match="is not an autocompress student file"):
        load_student(checkpoint)
    with pytest.raises(CheckpointError, match=r"student file .* does not exist"):
        load_student(tmp_path / "missing.pt")
    torch.save({"format": STUDENT_FORMAT, "version": 99}, tmp_path / "s.pt")
    with pytest.raises(CheckpointError, match=r"student file .* has version 99"):
        load_student(tmp_path / "s.pt")
    torch.save({"format": "autocompress-model", "version": 99}, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=r"checkpoint .* has version 99"):
        load_checkpoint(tmp_path / "c.pt")
    torch.save(
        {"format": "autocompress-model", "version": 1, "spec": {"name": "nope"}, "state_dict": {}},
        checkpoint,
    )
    with pytest.raises(
        CheckpointError, match=r"checkpoint .* names model 'nope' that cannot be built"
    ):
        load_checkpoint(checkpoint)
