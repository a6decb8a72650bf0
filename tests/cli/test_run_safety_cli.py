"""The CLI never deletes what it did not write, reads damaged run files without a traceback,
and never imports a run's model file unless it is trusted (issue 8)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from autocompress.cli import main

EVIL = """
from pathlib import Path
Path(__file__).with_name("IMPORTED").write_text("the model file ran")

from autocompress.core.models import small_cnn


def build(num_classes=10):
    return small_cnn(num_classes=num_classes, in_channels=1)
"""


def _main(capsys, *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    captured = capsys.readouterr()
    return info.value.code, " ".join((captured.err + captured.out).split())


def _tree(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def _trained_trial(run: Path) -> int:
    records = [json.loads(line) for line in (run / "trials.jsonl").read_text().splitlines()]
    return next(r["number"] for r in records if r["state"] == "complete" and r["feasible"])


@pytest.fixture
def run_copy(search_run, tmp_path) -> Path:
    out = tmp_path / "work" / "run"
    shutil.copytree(search_run, out, ignore=shutil.ignore_patterns("models", "report.html"))
    return out


def test_export_refuses_folders_it_did_not_write_and_deletes_nothing(
    run_copy, tmp_path, capsys, monkeypatch
):
    trial = str(_trained_trial(run_copy))
    work = run_copy.parent
    (work / "notes.txt").write_text("my own file")
    before = _tree(work)
    monkeypatch.chdir(work)
    for out in (str(run_copy), "run", ".", os.getcwd(), str(run_copy / "students")):
        code, err = _main(capsys, "export", str(run_copy), "--trial", trial, "--out", out)
        assert code == 2, (out, err)
        assert "nothing was written" in err and "--out" in err, err
        assert "Traceback" not in err
        assert _tree(work) == before, out

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "teacher.pt").write_text("a user's file")
    code, err = _main(capsys, "export", str(run_copy), "--trial", trial, "--out", str(mine))
    assert code == 2 and "teacher.pt" in err
    assert (mine / "teacher.pt").read_text() == "a user's file"


def test_export_into_a_previous_export_replaces_only_its_files(run_copy, tmp_path, capsys):
    trial = str(_trained_trial(run_copy))
    out = tmp_path / "deploy"
    assert _main(capsys, "export", str(run_copy), "--trial", trial, "--out", str(out))[0] == 0
    first = _tree(out)
    assert {"model.onnx", "model.pt", "card.json", "card.md"} <= set(first)
    assert _main(capsys, "export", str(run_copy), "--trial", trial, "--out", str(out))[0] == 0
    assert set(_tree(out)) == set(first)
    assert not [p for p in out.iterdir() if p.name.startswith(".autocompress-staging")]


def test_export_in_an_empty_current_folder_writes_there(run_copy, tmp_path, capsys, monkeypatch):
    here = tmp_path / "empty"
    here.mkdir()
    monkeypatch.chdir(here)
    trial = str(_trained_trial(run_copy))
    code, err = _main(capsys, "export", str(run_copy), "--trial", trial, "--out", ".")
    assert code == 0, err
    assert (here / "model.onnx").is_file() and (here / "card.json").is_file()


def test_damaged_trials_jsonl_is_read_with_one_warning(run_copy, capsys):
    trial = str(_trained_trial(run_copy))
    lines = (run_copy / "trials.jsonl").read_bytes().splitlines(keepends=True)
    bad = [b"42\n", json.dumps({"number": "abc", "state": "complete"}).encode() + b"\n"]
    (run_copy / "trials.jsonl").write_bytes(
        lines[0]
        + bad[0]
        + bad[1]
        + os.urandom(200).replace(b"\n", b"")
        + b"\n"
        + b"".join(lines[1:])
    )
    code, err = _main(capsys, "report", str(run_copy))
    assert code == 0, err
    assert err.count("warning:") == 1
    squashed = err.replace(" ", "")  # rich may wrap a long path anywhere
    assert "trials.jsonl:skipped3unreadablelines(lines2-4" in squashed
    code, err = _main(capsys, "export", str(run_copy), "--trial", trial, "--json")
    assert code == 0, err
    assert "Traceback" not in err


def _name_the_model_file(run: Path, model_file: Path) -> str:
    """Make the run's checkpoints name ``model_file`` (as a copied run from someone could)."""
    name = f"{model_file}:build"
    for path in [run / "teacher.pt", *sorted((run / "students").glob("*.pt"))]:
        payload = torch.load(path, weights_only=True)
        key = "spec" if "spec" in payload else "teacher_spec"
        payload[key] = {**payload[key], "name": name}
        torch.save(payload, path)
    config = yaml.safe_load((run / "run.yaml").read_text())
    config["model"]["name"] = name
    (run / "run.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return name


def test_report_export_and_resume_never_import_an_untrusted_model_file(run_copy, tmp_path, capsys):
    model_file = tmp_path / "evil.py"
    model_file.write_text(EVIL)
    marker = tmp_path / "IMPORTED"
    _name_the_model_file(run_copy, model_file)
    trial = str(_trained_trial(run_copy))

    code, err = _main(capsys, "report", str(run_copy))
    assert code == 0, err
    code, err = _main(capsys, "report", str(run_copy), "--chip", "rockchip/rk3588")
    assert code == 2 and "report never runs model code" in err, err
    code, err = _main(
        capsys, "export", str(run_copy), "--trial", trial, "--out", str(tmp_path / "x")
    )
    assert code == 2 and str(model_file) in err and "--trust-model-code" in err, err
    code, err = _main(capsys, "search", "--resume", "--out", str(run_copy), "--no-progress")
    assert code == 2 and str(model_file) in err and "--trust-model-code" in err, err
    assert not marker.exists()
    assert not (tmp_path / "x").exists()

    out = tmp_path / "trusted"
    code, err = _main(
        capsys, "export", str(run_copy), "--trial", trial, "--out", str(out), "--trust-model-code"
    )
    assert code == 0, err
    assert marker.exists() and (out / "model.onnx").is_file()


def test_the_model_file_a_run_recorded_is_trusted_until_it_changes(run_copy, tmp_path, capsys):
    from autocompress.core.model_code import model_file_identity

    model_file = tmp_path / "mine.py"
    model_file.write_text(EVIL)
    name = _name_the_model_file(run_copy, model_file)
    config = yaml.safe_load((run_copy / "run.yaml").read_text())
    config["model_code"] = model_file_identity(name)  # what search records at creation
    (run_copy / "run.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    trial = str(_trained_trial(run_copy))

    code, err = _main(
        capsys, "export", str(run_copy), "--trial", trial, "--out", str(tmp_path / "a")
    )
    assert code == 0, err
    model_file.write_text(EVIL + "\n# changed\n")
    code, err = _main(
        capsys, "export", str(run_copy), "--trial", trial, "--out", str(tmp_path / "b")
    )
    assert code == 2 and "not the file the run recorded" in err, err


def test_a_full_disk_during_export_is_a_clear_error_and_leaves_nothing(
    run_copy, tmp_path, capsys, monkeypatch
):
    import errno

    def full(*_args):
        raise OSError(errno.ENOSPC, "No space left on device")

    trial = str(_trained_trial(run_copy))
    out = tmp_path / "deploy"
    before = _tree(run_copy)
    monkeypatch.setattr(os, "fsync", full)
    code, err = _main(capsys, "export", str(run_copy), "--trial", trial, "--out", str(out))
    assert code == 2, err
    assert "could not write" in err and "No space left on device (ENOSPC)" in err, err
    assert "Traceback" not in err
    assert not out.exists()
    assert _tree(run_copy) == before
