"""Bring your own model, end to end: examples/own_model on an image folder the test makes.

`torch.save(model.state_dict())` + an image folder -> search -> report -> export, with the
documented commands and no conversion code; then the run works from another directory
with the model file gone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from autocompress.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "own_model"
CLASSES = ("diag", "stripes_h", "stripes_v")


def _images(root: Path) -> None:
    """Three learnable texture classes, mixed sizes (20x20 and 24x30 PNGs)."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("val", 12), ("test", 12)):
        for c, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                h, w = (20, 20) if i % 3 else (24, 30)
                y, x = np.mgrid[0:h, 0:w]
                base = [np.sin((x + y) / 3.0), np.sin(y / 2.0), np.sin(x / 2.0)][c]
                rgb = np.stack([base] * 3, -1) + 0.3 * rng.standard_normal((h, w, 3))
                pixels = np.clip((rgb + 1) * 127, 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")


@pytest.fixture
def run_cli(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")

    def run(args: list[str]) -> tuple[int, str]:
        with pytest.raises(SystemExit) as info:
            main(args)
        captured = capsys.readouterr()
        return int(info.value.code or 0), " ".join((captured.out + captured.err).split())

    return run


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    shutil.copyfile(EXAMPLE / "mynet.py", work / "mynet.py")
    _images(work / "images")
    monkeypatch.chdir(work)
    return work


def _train(work: Path, epochs: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [
            sys.executable,
            str(EXAMPLE / "train.py"),
            "images",
            "--epochs",
            str(epochs),
            "--width",
            "8",
            "--size",
            "16",
            "--out",
            "mine.pt",
        ],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
    )


SEARCH = [
    "search",
    "--model",
    "mynet.py:mynet",
    "--model-arg",
    "width=8",
    "--dataset",
    "imagefolder:images",
    "--input-size",
    "16",
    "--device",
    "cpu",
    "--no-progress",
]


@pytest.mark.slow
def test_state_dict_and_image_folder_to_a_checked_onnx_model(workdir, tmp_path, run_cli):
    _train(workdir, epochs=6)
    code, out = run_cli(
        [*SEARCH, "--teacher", "mine.pt", "--trials", "2", "--epochs", "1", "--out", "runs/mine"]
    )
    assert code == 0, out
    assert "teacher (given)" in out
    run = workdir / "runs" / "mine"
    assert (run / "model_source" / "mynet.py").is_file()
    # from another directory, with the original model file gone
    (workdir / "mynet.py").unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.chdir(elsewhere)
    code, out = run_cli(["report", str(run)])  # records only: no model code runs
    assert code == 0, out
    # re-scoring on a chip the run did not cost would need the model: report never imports it
    code, out = run_cli(["report", str(run), "--chip", "nvidia/orin-nano"])
    assert code == 2 and "never runs model code" in " ".join(out.split()), out
    # the original file is gone: only the run's own copy is left, which the user must trust
    code, out = run_cli(["export", str(run), "--pick", "max accuracy"])
    assert code == 2 and "--trust-model-code" in out, out
    code, out = run_cli(["export", str(run), "--pick", "max accuracy", "--trust-model-code"])
    assert code == 0, out
    assert "top-1 agreement" in out
    exported = next((run / "models").glob("trial-*"))
    assert (exported / "model_source" / "mynet.py").is_file()
    from autocompress.compress.student import load_student

    student = load_student(exported / "model.pt")
    assert student(torch.zeros(1, 3, 16, 16)).shape == (1, 3)


def test_untrained_weights_are_refused_at_chance_with_hints(workdir, run_cli):
    torch.manual_seed(0)
    sys.path.insert(0, str(workdir))
    try:
        from mynet import mynet
    finally:
        sys.path.remove(str(workdir))
    torch.save(mynet(num_classes=3, width=8).state_dict(), workdir / "random.pt")
    code, out = run_cli([*SEARCH, "--teacher", "random.pt", "--trials", "1", "--out", "runs/r"])
    assert code == 2 and "Traceback" not in out, out
    assert "at chance" in out and "class order" in out and "--input-size" in out
    assert not (workdir / "runs" / "r").exists()  # nothing left behind


def test_teacher_problems_are_reported_before_the_images_are_decoded(workdir, run_cli):
    torch.save(torch.nn.Linear(2, 2), workdir / "whole.pt")
    cache = Path(os.environ["AUTOCOMPRESS_CACHE"]) / "datasets"
    before = set(cache.glob("*")) if cache.is_dir() else set()
    code, out = run_cli([*SEARCH, "--teacher", "whole.pt", "--out", "runs/w"])
    assert code == 2 and "pickled Python object" in out and "\x1b[" not in out, out
    assert "torch.save(model.state_dict()" in out
    torch.save({"fc.weight": torch.zeros(3, 16)}, workdir / "wrong.pt")
    code, out = run_cli([*SEARCH, "--teacher", "wrong.pt", "--out", "runs/w"])
    assert code == 2 and "does not match the architecture" in out, out
    code, out = run_cli(["search", "--teacher", "wrong.pt", "--dataset", "imagefolder:images"])
    assert code == 2 and "holds weights only" in out and "--model" in out, out
    after = set(cache.glob("*")) if cache.is_dir() else set()
    assert after == before  # no decode happened


def test_an_input_too_small_for_the_model_is_a_clean_message(tmp_path, run_cli):
    code, out = run_cli(["search", "--model", "vit_b_16", "--out", str(tmp_path / "r")])
    assert code == 2 and "Traceback" not in out, out
    assert "fails on inputs of shape (1, 1, 8, 8)" in out and "--input-size" in out
    assert not (tmp_path / "r").exists()
