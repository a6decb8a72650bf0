"""The teacher of a run: given (``--teacher PATH``), cached, or trained once.

Trained teachers are cached under ``$AUTOCOMPRESS_CACHE/teachers/`` (default
``~/.cache/autocompress/teachers/``) keyed on model + dataset + seed + epochs,
so a second default run starts at once. The run directory always gets its own
copy in ``teacher.pt``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from autocompress.core.errors import CheckpointError
from autocompress.core.models import ModelSpec


@dataclass(frozen=True)
class TeacherInfo:
    """Where the run's teacher came from and how good it is."""

    path: Path
    source: str  # "given", "cache" or "trained"
    val_accuracy: float | None
    test_accuracy: float | None
    train_seconds: float = 0.0


def teacher_cache_dir() -> Path:
    """``$AUTOCOMPRESS_CACHE/teachers`` or ``~/.cache/autocompress/teachers``."""
    root = os.environ.get("AUTOCOMPRESS_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "autocompress"
    return base / "teachers"


def teacher_cache_key(spec: ModelSpec, dataset: dict[str, Any], *, epochs: int, seed: int) -> str:
    """A stable key for a trained teacher."""
    from autocompress import __version__

    text = json.dumps(
        {
            "model": spec.to_dict(),
            "dataset": dataset,
            "epochs": epochs,
            "seed": seed,
            "v": __version__,
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _copy_into_run(source: Path, destination: Path) -> None:
    """Copy a teacher into the run (temp file + rename; a failed write says where)."""
    from autocompress.core.file_writes import writing

    tmp = destination.with_name(f".{destination.name}.tmp{os.getpid()}")
    try:
        with writing("the teacher checkpoint", destination):
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, tmp)
            os.replace(tmp, destination)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _accuracies(teacher: nn.Module, data: Any, device: str) -> tuple[float, float]:
    from autocompress.compress.student import evaluate

    val = evaluate(teacher, data.val, device=device)["accuracy"]
    test = evaluate(teacher, data.test, device=device)["accuracy"]
    return float(val), float(test)


def obtain_teacher(
    *,
    spec: ModelSpec,
    data: Any,
    dataset_key: dict[str, Any],
    destination: Path,
    given: str | None,
    epochs: int,
    seed: int,
    device: str,
    lr: float | None = None,
    batch_size: int | None = None,
) -> TeacherInfo:
    """Put the run's teacher at ``destination`` and say where it came from.

    Raises:
        CheckpointError: a given teacher is unreadable or is not the run's model.
    """
    import time

    from autocompress.core.models import load_checkpoint

    if given is not None:
        model, given_spec, _extra = load_checkpoint(given)
        if given_spec.num_classes != spec.num_classes or given_spec.in_channels != spec.in_channels:
            raise CheckpointError(
                f"teacher {given!r} has {given_spec.num_classes} classes / "
                f"{given_spec.in_channels} "
                f"input channels, the dataset needs {spec.num_classes} / {spec.in_channels}"
            )
        if given_spec.name != spec.name:
            raise CheckpointError(
                f"teacher {given!r} is a {given_spec.name!r} model, "
                f"the search was asked for {spec.name!r}",
                hint=f"Pass --model {given_spec.name} (or leave --model out with --teacher).",
            )
        if Path(given).resolve() != destination.resolve():
            _copy_into_run(Path(given), destination)
        val, test = _accuracies(model, data, device)
        return TeacherInfo(destination, "given", val, test)

    cached = (
        teacher_cache_dir() / f"{teacher_cache_key(spec, dataset_key, epochs=epochs, seed=seed)}.pt"
    )
    if cached.is_file():
        try:
            model, _spec, _extra = load_checkpoint(cached)
        except CheckpointError:
            cached.unlink(missing_ok=True)  # a torn cache entry: train again
        else:
            _copy_into_run(cached, destination)
            val, test = _accuracies(model, data, device)
            return TeacherInfo(destination, "cache", val, test)

    from autocompress.compress.teacher import train_teacher

    start = time.perf_counter()
    kwargs: dict[str, Any] = {"epochs": epochs, "seed": seed, "device": device, "out": destination}
    if lr is not None:
        kwargs["lr"] = lr
    if batch_size is not None:
        kwargs["batch_size"] = batch_size
    result = train_teacher(spec, data, **kwargs)
    seconds = time.perf_counter() - start
    tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(destination, tmp)
        os.replace(tmp, cached)
    except OSError:  # a read-only or full cache only costs the next run a retrain
        tmp.unlink(missing_ok=True)
    return TeacherInfo(
        destination,
        "trained",
        float(result.val_accuracy),
        float(result.test_accuracy),
        train_seconds=seconds,
    )
