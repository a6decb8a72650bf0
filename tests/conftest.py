"""Suite-wide setup: every test run gets its own autocompress cache (teachers, decoded images),
so no result leaks in from a user's ~/.cache or from an earlier run, and costs with the
datasheet knobs (no calibration) unless a test selects one. Temporary folders live on tmpfs
(/dev/shm) where the machine has one."""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# The CLI's rich consoles take their width once, when autocompress.cli.console is first
# imported (at collection, before any test's COLUMNS). A wide, fixed width keeps table columns
# and long temporary paths on one line however the tests are scheduled (also under xdist).
os.environ.setdefault("COLUMNS", "250")

_created: list[str] = []

_MEMORY_TEMPROOT = Path("/dev/shm")
_MEMORY_TEMPROOT_MIN_FREE_BYTES = 2 * 1024**3


def _memory_temproot() -> Path | None:
    """A RAM-backed folder (tmpfs) for the tests' files, or None where there is none to use.

    Every search writes its Optuna study to SQLite, which commits ~20 times per trial, each
    with an fsync; on a shared disk those were ~15 % of a search test's time. The files and
    what is asserted about them are the same on tmpfs."""
    try:
        if not (_MEMORY_TEMPROOT.is_dir() and os.access(_MEMORY_TEMPROOT, os.W_OK | os.X_OK)):
            return None
        free = shutil.disk_usage(_MEMORY_TEMPROOT).free
    except OSError:
        return None
    return _MEMORY_TEMPROOT if free >= _MEMORY_TEMPROOT_MIN_FREE_BYTES else None


def pytest_configure(config: pytest.Config) -> None:
    # One xdist worker per core: each worker's torch (and every CLI process it starts) gets
    # its share of the cores, not all of them. Two workers training at once with two OpenMP
    # threads each oversubscribe a 2-core machine, and OpenMP's spin-waits burn the rest.
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    # tmp_path and friends on tmpfs where there is one (pytest's documented temp-root variable;
    # --basetemp or a PYTEST_DEBUG_TEMPROOT of the user's own still win).
    memory = _memory_temproot()
    if memory is not None and config.option.basetemp is None:
        os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", str(memory))
    if "AUTOCOMPRESS_CACHE" not in os.environ:
        path = tempfile.mkdtemp(
            prefix="autocompress-test-cache-", dir=os.environ.get("PYTEST_DEBUG_TEMPROOT")
        )
        os.environ["AUTOCOMPRESS_CACHE"] = path
        _created.append(path)
    # The cost model as the plugins' datasheets give it: the shipped calibrations are data
    # that get refitted, so tests of other parts must not depend on them (the calibration
    # tests turn them on explicitly). No user calibration folder leaks in either.
    os.environ.setdefault("AUTOCOMPRESS_CALIBRATION", "none")
    os.environ.setdefault(
        "AUTOCOMPRESS_CONFIG", os.path.join(os.environ["AUTOCOMPRESS_CACHE"], "config")
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    for path in _created:
        shutil.rmtree(path, ignore_errors=True)


# Real run directories for the report and export tests (built once per session).
_spec = importlib.util.spec_from_file_location(
    "_real_run_loader", Path(__file__).parent / "report" / "real_run.py"
)
_loader = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_loader)
real_run = _loader.load()


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "autocompress-runs"


@pytest.fixture(scope="session")
def search_run(runs_root: Path) -> Path:
    """A finished tiny real search (rockchip/rv1126 main, nvidia/orin-nano also costed)."""
    return real_run.search_run(runs_root)


@pytest.fixture(scope="session")
def mixed_run(runs_root: Path) -> Path:
    """A run on nvidia/orin-nano with a pruned mixed 4/8-bit trained student (trial 0)."""
    return real_run.mixed_run(runs_root)


@pytest.fixture(scope="session")
def progress_run(runs_root: Path) -> Path:
    """A run as read mid-search: 3 of 6 trials and a torn last line."""
    return real_run.progress_run(runs_root)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The Ray tests first, then the slow (training) ones. Under ``--dist loadfile`` one
    worker runs a whole file (the Ray file is about 170 s of work on 2 cores); a long file
    that starts when the other worker is nearly done alone sets the suite's wall time.
    xdist hands out files in this order only with ``--no-loadscope-reorder`` (addopts): by
    default it sorts them by their number of tests, which put the Ray file 38th (CI: 338 s)."""

    def weight(item: pytest.Item) -> int:
        if item.get_closest_marker("ray") is not None:
            return 0
        return 1 if item.get_closest_marker("slow") is not None else 2

    items.sort(key=weight)  # stable: the order within a weight is kept
