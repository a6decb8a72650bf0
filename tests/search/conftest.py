"""Fixtures of the search tests: one teacher cache per worker, one finished digits run (and
one promoted run) per test session, shared by the xdist workers."""

from __future__ import annotations

import fcntl
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

# Small, fast settings shared by every search test.
FAST = {"teacher_epochs": 3, "epochs": 1.0, "batch_size": 128}
CHIPS = ["rockchip/rv1126", "rockchip/rk3588"]


@pytest.fixture(scope="session", autouse=True)
def search_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private teacher cache (keeps ~/.cache untouched, and trains the test teacher once)."""
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("autocompress-cache")
    previous = os.environ.get("AUTOCOMPRESS_CACHE")
    os.environ["AUTOCOMPRESS_CACHE"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("AUTOCOMPRESS_CACHE", None)
    else:
        os.environ["AUTOCOMPRESS_CACHE"] = previous


def _built_once(
    factory: pytest.TempPathFactory, worker_id: str, name: str, build: Callable[[Path], Any]
) -> Any:
    """``build(out)`` (``out`` a new folder named ``name``) once per test session: with xdist
    the first worker to ask builds it under a file lock in the workers' common temporary
    folder and pickles the result; the others wait for the lock and load it. The run is read,
    never written, by the tests that share it."""
    if worker_id == "master":  # no xdist
        return build(factory.mktemp("runs") / name)
    root = factory.getbasetemp().parent / f"shared-{name}"
    root.mkdir(exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        done = root / "result.pkl"
        if done.is_file():
            return pickle.loads(done.read_bytes())
        result = build(root / name)
        done.write_bytes(pickle.dumps(result))
        return result


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory: pytest.TempPathFactory, search_cache: Path, worker_id: str):
    """A finished 10-trial search on digits, costed on two chips, with a binding latency budget.

    Promotion is off (``rungs=[1]``): the tests that read this run do not look at rungs, and
    promoting the best third trained more epochs than the 10 trials did (promotion has its own
    run in test_search_quality.py)."""
    from autocompress.search.api import search

    def build(out: Path):
        return search(
            out=out,
            model="small_cnn",
            trials=10,
            chip=CHIPS,
            latency_ms="97%",
            seed=0,
            rungs=[1],
            **FAST,
        )

    return _built_once(tmp_path_factory, worker_id, "digits", build)


@pytest.fixture(scope="session")
def promoted_run(tmp_path_factory: pytest.TempPathFactory, search_cache: Path, worker_id: str):
    """A finished 9-trial search with promotion (rungs 1 and 3), the same teacher as digits_run.

    Read by test_search_quality.py; test_run_safety.py resumes a copy of it."""
    from autocompress.search.api import search

    def build(out: Path):
        return search(
            out=out,
            model="small_cnn",
            trials=9,
            latency_ms="97%",
            rungs=[1, 3],
            seed=0,
            **{**FAST, "epochs": 0.5},
        )

    return _built_once(tmp_path_factory, worker_id, "run", build)


@pytest.fixture(scope="session")
def teacher_checkpoint(digits_run) -> Path:
    """The teacher of the shared run (for --teacher)."""
    return Path(digits_run.run_dir) / "teacher.pt"


@pytest.fixture
def halves_space(tmp_path: Path) -> Path:
    """A space of 8 configurations (widths 0.5 and 1.0, small_cnn's two unprotected groups
    pruned by 0 or half) that builds 7 students: width 1.0 with both groups halved keeps what
    width 0.5 keeps."""
    space = tmp_path / "halves.yaml"
    space.write_text(
        "name: halves\nwidth_multiplier: {choices: [0.5, 1.0]}\n"
        "kd_temperature: {choices: [4.0]}\nkd_alpha: {choices: [0.9]}\n"
        "layers:\n  - match: [first, last]\n    protect: true\n"
        "  - match: '*'\n    prune_ratio: {choices: [0.0, 0.5]}\n"
        "    weight_bits: 8\n    activation_bits: 8\n"
    )
    return space
