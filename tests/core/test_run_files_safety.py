"""Run files: one tolerant trials.jsonl reader, records on fresh lines, clear write errors,
a run lock, and a writer that never deletes what it did not create."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import warnings

import pytest
import torch

from autocompress.core.errors import OutputDirError, RunFileWarning, RunInUseError, WriteError
from autocompress.core.models import ModelSpec, load_checkpoint, save_checkpoint, small_cnn
from autocompress.core.owned_dir import OwnedDirectory
from autocompress.core.run_lock import RunLock
from autocompress.core.workspace import RunDirectory, TrialRecord, write_atomic


def _record(number: int) -> TrialRecord:
    return TrialRecord(
        number=number,
        state="complete",
        config={"type": "TrialConfig", "version": 1, "width_multiplier": 0.5},
        metrics={"accuracy": 0.9},
        costs={"acme/npu1": {"latency_ms": 1.0}},
        feasible=True,
    )


def test_a_record_after_a_torn_line_starts_on_a_fresh_line(tmp_path):
    run = RunDirectory(tmp_path)
    run.append_trial(_record(0))
    with open(run.trials_jsonl, "a") as handle:
        handle.write('{"number": 1, "state": "compl')  # writer killed mid-line
    run.append_trial(_record(2))
    with pytest.warns(RunFileWarning, match=r"line 2\b"):
        numbers = [r.number for r in run.read_trials()]
    assert numbers == [0, 2]


def test_unreadable_lines_are_skipped_with_one_warning_naming_file_lines_and_count(tmp_path):
    run = RunDirectory(tmp_path)
    run.append_trial(_record(0))
    good = json.dumps(_record(5).to_dict())
    with open(run.trials_jsonl, "ab") as handle:
        handle.write(b"42\n")  # JSON, but not a record
        handle.write(json.dumps({**_record(1).to_dict(), "number": "abc"}).encode() + b"\n")
        handle.write(json.dumps({**_record(3).to_dict(), "metrics": {"accuracy": "x"}}).encode())
        handle.write(b"\n" + os.urandom(64).replace(b"\n", b"") + b"\n")
        handle.write(b"[1, 2]\n" + good.encode() + b"\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = run.read_trials()
        second = run.read_trials()  # the same bad lines are reported once
    assert [r.number for r in first] == [0, 5] == [r.number for r in second]
    messages = [str(w.message) for w in caught if issubclass(w.category, RunFileWarning)]
    assert len(messages) == 1
    assert str(run.trials_jsonl) in messages[0]
    assert "skipped 5 unreadable lines" in messages[0]
    assert "lines 2-6" in messages[0]


def test_a_file_of_random_bytes_reads_as_no_records(tmp_path):
    run = RunDirectory(tmp_path)
    run.trials_jsonl.write_bytes(os.urandom(4096))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RunFileWarning)
        assert run.read_trials() == []
    run.pareto_json.write_bytes(os.urandom(100))
    assert run.read_pareto() is None


def _full_disk(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_gives_a_clear_error_and_leaves_no_temp_file(tmp_path, monkeypatch):
    run = RunDirectory(tmp_path)
    run.append_trial(_record(0))
    monkeypatch.setattr(os, "fsync", _full_disk)
    with pytest.raises(WriteError, match=r"trial 1's record .*trials\.jsonl.*ENOSPC"):
        run.append_trial(_record(1))
    with pytest.raises(WriteError, match=r"pareto\.json.*No space left"):
        run.write_pareto({"fronts": {}})
    with pytest.raises(WriteError, match=r"the checkpoint .*teacher\.pt") as info:
        save_checkpoint(tmp_path / "teacher.pt", small_cnn(10, 1), ModelSpec("small_cnn", 10, 1))
    assert "disk is full" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trials.jsonl"]


def test_read_only_target_gives_a_clear_error(tmp_path, monkeypatch):
    import tempfile

    def read_only(*_args, **_kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(WriteError, match=r"run\.yaml.*EROFS") as info:
        write_atomic(tmp_path / "run.yaml", "x: 1\n")
    assert "read-only" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_write_is_atomic_and_loads(tmp_path):
    path = save_checkpoint(tmp_path / "t.pt", small_cnn(10, 1), ModelSpec("small_cnn", 10, 1))
    load_checkpoint(path)
    assert [p.name for p in tmp_path.iterdir()] == ["t.pt"]


def test_corrupt_checkpoint_message_has_no_unpickling_advice(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "autocompress-model", "obj": object.__new__(ModelSpec)}, path)
    with pytest.raises(Exception) as info:
        load_checkpoint(path)
    assert "weights_only=False" not in str(info.value)
    assert "cannot be read" in str(info.value)


_HOLD = """
import sys, time
from autocompress.core.run_lock import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(60)
"""


def test_run_lock_refuses_a_second_holder_and_reclaims_a_dead_ones(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        before = (tmp_path / ".lock").read_bytes()
        with pytest.raises(RunInUseError, match=rf"in use by process {holder.pid}"):
            RunLock(tmp_path).acquire()
        with pytest.raises(RunInUseError):
            RunLock(tmp_path).check_free()
        assert (tmp_path / ".lock").read_bytes() == before  # touched nothing
    finally:
        holder.kill()
        holder.wait()
    lock = RunLock(tmp_path).acquire()  # the holder died: its lock is stale
    assert lock.reclaimed_from == holder.pid
    assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    lock.release()


def test_owned_directory_refuses_foreign_files_and_replaces_only_its_own(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.yaml").write_text("x: 1\n")
    for target, why in (
        (run_dir, "run directory"),
        (tmp_path, "contains the run directory"),
    ):
        with pytest.raises(OutputDirError, match=why):
            OwnedDirectory(target, kind="export", protected=[run_dir]).check()

    out = tmp_path / "out"
    owned = OwnedDirectory(out, kind="export")
    staging = owned.stage()
    (staging / "a.txt").write_text("1")
    (staging / "b.txt").write_text("1")
    owned.commit()
    assert sorted(p.name for p in out.iterdir()) == [".autocompress-export.json", "a.txt", "b.txt"]

    owned = OwnedDirectory(out, kind="export")  # a previous export: replaced file by file
    (owned.stage() / "a.txt").write_text("2")
    owned.commit()
    assert sorted(p.name for p in out.iterdir()) == [".autocompress-export.json", "a.txt"]
    assert (out / "a.txt").read_text() == "2"

    (out / "mine.txt").write_text("user data")  # not ours: the folder is refused
    with pytest.raises(OutputDirError, match=r"mine\.txt"):
        OwnedDirectory(out, kind="export").stage()
    assert (out / "mine.txt").read_text() == "user data"

    fresh = tmp_path / "new" / "deep"
    owned = OwnedDirectory(fresh, kind="export")
    owned.stage()
    owned.abort()  # a failed export removes only the folders it created
    assert not (tmp_path / "new").exists()


def test_a_file_of_a_previous_export_edited_since_is_not_replaced(tmp_path):
    out = tmp_path / "out"
    owned = OwnedDirectory(out, kind="export")
    (owned.stage() / "card.md").write_text("written by autocompress")
    owned.commit()
    (out / "card.md").write_text("my notes on this model")  # the user's now
    with pytest.raises(OutputDirError, match=r"card\.md"):
        OwnedDirectory(out, kind="export").stage()
    assert (out / "card.md").read_text() == "my notes on this model"

    manifest = out / ".autocompress-export.json"  # a manifest naming files outside the folder
    (tmp_path / "outside.txt").write_text("keep")
    (out / "card.md").unlink()
    manifest.write_text(json.dumps({"kind": "export", "files": {"../outside.txt": "x"}}))
    owned = OwnedDirectory(out, kind="export")
    (owned.stage() / "model.onnx").write_text("new")
    owned.commit()
    assert (tmp_path / "outside.txt").read_text() == "keep"
