"""Suite-wide setup: every test run gets its own autocompress cache (teachers, decoded images),
so no result leaks in from a user's ~/.cache or from an earlier run."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

_created: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    if "AUTOCOMPRESS_CACHE" not in os.environ:
        path = tempfile.mkdtemp(prefix="autocompress-test-cache-")
        os.environ["AUTOCOMPRESS_CACHE"] = path
        _created.append(path)


def pytest_unconfigure(config: pytest.Config) -> None:
    for path in _created:
        shutil.rmtree(path, ignore_errors=True)
