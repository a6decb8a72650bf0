"""autocompress: search for compressed networks that deploy on edge NPUs.

The public Python API (imported lazily, so ``import autocompress`` stays cheap):

- :func:`estimate_cost` — simulated NPU cost of a model on a chip.
- :func:`list_chips`, :func:`get_chip` — the chips installed plugins provide.
- :func:`train_teacher` — train the baseline model.
- :func:`search` — the budget-constrained multi-objective search.
- :func:`load_report` — the Pareto front of a run directory.
- :func:`export` — a chosen trial as ONNX + PyTorch + deploy card.
- :func:`recover` — recovery training of a chosen trial (``autocompress finetune``).
"""

from __future__ import annotations

import importlib
from typing import Any

from autocompress.core.version import __version__

_LAZY: dict[str, str] = {
    "estimate_cost": "autocompress.hardware.estimate",
    "list_chips": "autocompress.hardware.plugins",
    "get_chip": "autocompress.hardware.plugins",
    "train_teacher": "autocompress.compress.teacher",
    "search": "autocompress.search.api",
    "load_report": "autocompress.report.api",
    "export": "autocompress.export.api",
    "recover": "autocompress.recover.api",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'autocompress' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
