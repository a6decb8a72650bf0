"""``run.yaml`` as a type: :class:`RunConfig`, the one record every reader of a run shares.

A run's configuration is written once, when the search creates the run (every
default filled in, budgets resolved to absolute numbers, the space inline), and
read by the search context, the Ray driver, resume, report, export and
recovery. This module is the only place that knows run.yaml's keys: everyone
else reads typed fields (``config.dataset.val_fraction``), and the few later
changes (the teacher entry once the teacher is trained, what a resume applies,
the status when the search ends) are typed methods that return a new record,
which :meth:`RunDirectory.write_run_config` writes.

:meth:`RunConfig.from_yaml` validates the file and names the file, the line and
the field of what is wrong; :meth:`RunConfig.to_yaml` writes the same keys in
the same order as before the type existed (``format_version: 1``), so runs
written by earlier versions stay readable and new runs stay readable by them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from autocompress.core.budget import Budget
from autocompress.core.errors import AutocompressError, RunDirectoryError
from autocompress.core.models import ModelSpec
from autocompress.core.validation_split import DEFAULT_VAL_FRACTION
from autocompress.core.yaml_lines import LineDict, parse_yaml_with_lines, plain

#: The run.yaml format this code writes and reads.
RUN_FORMAT_VERSION = 1

_MISSING: Any = object()


class _Fields:
    """Typed reads of one YAML mapping; errors name file, line and dotted field."""

    def __init__(self, data: Mapping[str, Any], source: str, prefix: str = "") -> None:
        self.data = data
        self.source = source
        self.prefix = prefix

    def where(self, key: str) -> str:
        line = self.data.line_of(key) if isinstance(self.data, LineDict) else 0
        place = f"{self.source}:{line}" if line else self.source
        return f"{place}: field {self.prefix + key!r}"

    def fail(self, key: str, message: str) -> RunDirectoryError:
        return RunDirectoryError(
            f"{self.where(key)}: {message}",
            hint="run.yaml is written by `autocompress search`; restore the file or start "
            "a new run.",
        )

    def get(
        self,
        key: str,
        cast: Callable[[Any], Any],
        what: str,
        default: Any = _MISSING,
    ) -> Any:
        """``cast(value)``; ``default`` when absent or null (required when no default)."""
        value = self.data.get(key)
        if value is None:
            if default is _MISSING:
                raise self.fail(key, "is missing")
            return default
        try:
            return cast(value)
        except (TypeError, ValueError, KeyError, AutocompressError) as exc:
            detail = getattr(exc, "message", None) or str(exc)
            raise self.fail(
                key, f"expected {what}, got {value!r}" + (f" ({detail})" * bool(detail))
            ) from None

    def sub(self, key: str, *, required: bool = True) -> _Fields:
        """The nested mapping ``key`` (an empty one when absent and not required)."""
        value = self.data.get(key)
        if value is None:
            if required:
                raise self.fail(key, "is missing")
            value = {}
        if not isinstance(value, Mapping):
            raise self.fail(key, f"expected a mapping, got {type(value).__name__}")
        return _Fields(value, self.source, f"{self.prefix}{key}.")


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("")
    return int(value)


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError("")
    return float(value)


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("")
    return value


def _list_of(cast: Callable[[Any], Any]) -> Callable[[Any], tuple[Any, ...]]:
    def read(value: Any) -> tuple[Any, ...]:
        if not isinstance(value, (list, tuple)):
            raise ValueError("")
        return tuple(cast(v) for v in value)

    return read


def _mapping(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError("")
    return plain(dict(value))


def _any(value: Any) -> Any:
    return plain(value)


# -- sub-records ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetSpec:
    """Which data a run searched on, and how it was split and normalised.

    :meth:`load` is the one way to rebuild a run's data: the search context, the Ray
    workers, export, finetune and a resumed teacher all get the very splits (and the
    normalisation statistics) the search used.
    """

    name: str
    seed: int = 0
    val_fraction: float = DEFAULT_VAL_FRACTION
    root: str | None = None
    limit: int | None = None
    input_size: tuple[int, int] | None = None
    mean: tuple[float, ...] | None = None  # asked for; None: the training split's statistics
    std: tuple[float, ...] | None = None
    num_classes: int | None = None
    class_names: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seed": self.seed,
            "val_fraction": self.val_fraction,
            "root": self.root,
            "limit": self.limit,
            "input_size": list(self.input_size) if self.input_size else None,
            "mean": list(self.mean) if self.mean else None,
            "std": list(self.std) if self.std else None,
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
        }

    @classmethod
    def _read(cls, f: _Fields) -> DatasetSpec:
        size = f.get("input_size", _list_of(_int), "[height, width]", None)
        if size is not None and len(size) != 2:
            raise f.fail("input_size", f"expected [height, width], got {list(size)}")
        return cls(
            name=f.get("name", _str, "a dataset name"),
            seed=f.get("seed", _int, "an integer", 0),
            val_fraction=f.get("val_fraction", _float, "a fraction", DEFAULT_VAL_FRACTION),
            root=f.get("root", _str, "a folder", None),
            limit=f.get("limit", _int, "an integer", None),
            input_size=size,
            mean=f.get("mean", _list_of(_float), "a list of numbers", None),
            std=f.get("std", _list_of(_float), "a list of numbers", None),
            num_classes=f.get("num_classes", _int, "an integer", None),
            class_names=f.get("class_names", _list_of(str), "a list of names", ()),
        )

    def cache_key(self) -> dict[str, Any]:
        """What identifies a trained teacher's data in the teacher cache."""
        return {
            "name": self.name,
            "seed": self.seed,
            "val_fraction": self.val_fraction,
            "limit": self.limit,
        }

    def load(self, *, device: Any = "cpu") -> Any:
        """The run's :class:`~autocompress.core.data.DatasetSplits`, as the search saw them."""
        from autocompress.core.data import load_dataset

        return load_dataset(
            self.name,
            seed=self.seed,
            val_fraction=self.val_fraction,
            root=self.root,
            limit=self.limit,
            device=device,
            input_size=self.input_size,
            mean=self.mean,
            std=self.std,
        )


@dataclass(frozen=True)
class Normalization:
    """The per-channel mean and std the run's images were normalised with."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "std": list(self.std)}


@dataclass(frozen=True)
class SpaceRecord:
    """The search space: its name/path, the protected layers and its resolution."""

    name: str
    path: str | None = None
    protect: tuple[str, ...] = ()
    definition: Mapping[str, Any] = field(default_factory=dict)
    resolved: Mapping[str, Any] = field(default_factory=dict)
    full_width: Mapping[str, str] = field(default_factory=dict)  # layer -> why it is not pruned

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "path": self.path,
            "protect": list(self.protect),
            "definition": plain(dict(self.definition)),
            "resolved": plain(dict(self.resolved)),
        }
        if self.full_width:
            out["full_width"] = dict(self.full_width)
        return out


@dataclass(frozen=True)
class SamplerRecord:
    name: str
    seed: int = 0


@dataclass(frozen=True)
class PromotionRecord:
    """Promotion rungs (factors of the fine-tune epochs) and the fraction kept per rung."""

    rungs: tuple[float, ...] = (1.0,)
    keep_fraction: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rungs": [float(r) for r in self.rungs]}
        if self.keep_fraction is not None:
            out["keep_fraction"] = self.keep_fraction
        return out


@dataclass(frozen=True)
class FinetuneSettings:
    """How every trial is fine-tuned (epochs at the first rung)."""

    epochs: float
    batch_size: int | None = None
    lr: float = 1e-3
    device: str = "auto"
    #: Weight of the feature distillation of every trial (0: logits only; then not written,
    #: so run.yaml files of runs without it read and write back unchanged).
    feature_weight: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if not self.feature_weight:
            del out["feature_weight"]
        return out


@dataclass(frozen=True)
class TeacherEntry:
    """Where the run's teacher came from (``source`` ``pending`` until it exists)."""

    path: str = "teacher.pt"
    source: str = "pending"
    epochs: int | None = None
    val_accuracy: float | None = None
    test_accuracy: float | None = None
    train_seconds: float | None = None
    given_path: str | None = None

    @property
    def pending(self) -> bool:
        return self.source == "pending"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "source": self.source, "epochs": self.epochs}
        if not self.pending or self.val_accuracy is not None:
            out["val_accuracy"] = self.val_accuracy
            out["test_accuracy"] = self.test_accuracy
            out["train_seconds"] = self.train_seconds
        if self.given_path is not None:
            out["given_path"] = self.given_path
        return out

    @classmethod
    def _read(cls, f: _Fields) -> TeacherEntry:
        return cls(
            path=f.get("path", _str, "a path", "teacher.pt"),
            source=f.get("source", _str, "a source", "pending"),
            epochs=f.get("epochs", _int, "an integer", None),
            val_accuracy=f.get("val_accuracy", _float, "a fraction", None),
            test_accuracy=f.get("test_accuracy", _float, "a fraction", None),
            train_seconds=f.get("train_seconds", _float, "seconds", None),
            given_path=f.get("given_path", _str, "a path", None),
        )


@dataclass(frozen=True)
class Resources:
    """Ray resources per trial."""

    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0


# -- the record --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunConfig:
    """The resolved configuration of one run (``run.yaml``).

    Attributes:
        name / created_utc: the run's name and creation time (UTC, ISO 8601).
        model: the teacher architecture; ``model_code``: the model file the run trusts
            (path + sha256, for ``file.py:function`` models), ``model_source`` its copy.
        input_shape: (C, H, W) of one image.
        dataset / normalization: the data spec and the statistics actually applied.
        chips: every chip costed, the main chip first (``chip``).
        budget / budget_sources: absolute budgets on the main chip and where each came from.
        objectives / space / sampler / trials / anchors / promotion / timeout_s: the search.
        finetune / teacher: training of the trials and of the teacher.
        backend / workers / address / resources: how trials ran.
        seed / versions / calibration: reproducibility records.
        status / finished_utc: set when a search call ends (absent on older runs).
        extra: top-level keys this version does not know (kept when written back).
    """

    name: str
    model: ModelSpec
    input_shape: tuple[int, ...]
    dataset: DatasetSpec
    chips: tuple[str, ...]
    budget: Budget
    objectives: tuple[str, ...]
    space: SpaceRecord
    sampler: SamplerRecord
    finetune: FinetuneSettings
    trials: int
    created_utc: str | None = None
    model_code: Any = None
    model_source: str | None = None
    normalization: Normalization | None = None
    budget_sources: Mapping[str, str] = field(default_factory=dict)
    trials_count: str = "trained"
    anchors: bool = True
    promotion: PromotionRecord = field(default_factory=PromotionRecord)
    timeout_s: float | None = None
    teacher: TeacherEntry = field(default_factory=TeacherEntry)
    backend: str = "optuna"
    workers: int = 1
    address: str | None = None
    resources: Resources = field(default_factory=Resources)
    seed: int = 0
    versions: Mapping[str, Any] = field(default_factory=dict)
    calibration: Mapping[str, Any] | None = None
    status: str | None = None
    finished_utc: str | None = None
    format_version: int = RUN_FORMAT_VERSION
    extra: Mapping[str, Any] = field(default_factory=dict)

    # -- derived ---------------------------------------------------------------------
    @property
    def chip(self) -> str:
        """The main chip (budgets and the sampler's constraints are on it)."""
        return self.chips[0]

    @property
    def protect(self) -> tuple[str, ...]:
        return self.space.protect

    def model_identities(self) -> tuple[tuple[str, str], ...]:
        """The model file identities (path, sha256) the run recorded at creation."""
        entries = self.model_code if isinstance(self.model_code, list) else [self.model_code]
        return tuple(
            (str(e["path"]), str(e.get("sha256", "")))
            for e in entries
            if isinstance(e, Mapping) and isinstance(e.get("path"), str)
        )

    # -- the later changes (each a new record; RunDirectory.write_run_config writes it) ---
    def with_teacher(self, teacher: TeacherEntry) -> RunConfig:
        """The record once the teacher is trained (or given)."""
        return dataclasses.replace(self, teacher=teacher)

    def with_full_width(self, full_width: Mapping[str, str]) -> RunConfig:
        """The record with the layers kept at full width (layer -> reason)."""
        return dataclasses.replace(
            self, space=dataclasses.replace(self.space, full_width=dict(full_width))
        )

    def with_model_source(self, relative_path: str) -> RunConfig:
        return dataclasses.replace(self, model_source=relative_path)

    def with_resume(
        self,
        *,
        trials: int,
        backend: str,
        workers: int,
        timeout_s: float | None,
        device: str | None = None,
    ) -> RunConfig:
        """What a resume applies: how the run goes on (never what it searches); the run is
        running again, so the status of the call before is cleared."""
        finetune = self.finetune
        if device is not None:
            finetune = dataclasses.replace(finetune, device=device)  # workers read it here
        return dataclasses.replace(
            self,
            trials=trials,
            backend=backend,
            workers=workers,
            timeout_s=timeout_s,
            finetune=finetune,
            status=None,
            finished_utc=None,
        )

    def with_status(self, status: str, finished_utc: str | None) -> RunConfig:
        """The record when a search call ends (``complete``, ``interrupted`` …)."""
        return dataclasses.replace(self, status=status, finished_utc=finished_utc)

    # -- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """run.yaml's content (the keys and order of format 1)."""
        out: dict[str, Any] = {
            "format_version": self.format_version,
            "name": self.name,
            "created_utc": self.created_utc,
            "model": self.model.to_dict(),
            "model_code": plain(self.model_code),
            "input_shape": list(self.input_shape),
            "dataset": self.dataset.to_dict(),
            "normalization": self.normalization.to_dict() if self.normalization else None,
            "chip": self.chip,
            "chips": list(self.chips),
            "budget": {f.name: getattr(self.budget, f.name) for f in dataclasses.fields(Budget)},
            "budget_sources": dict(self.budget_sources),
            "objectives": list(self.objectives),
            "space": self.space.to_dict(),
            "sampler": {"name": self.sampler.name, "seed": self.sampler.seed},
            "trials": self.trials,
            "trials_count": self.trials_count,
            "anchors": self.anchors,
            "promotion": self.promotion.to_dict(),
            "timeout_s": self.timeout_s,
            "finetune": self.finetune.to_dict(),
            "teacher": self.teacher.to_dict(),
            "backend": self.backend,
            "workers": self.workers,
            "address": self.address,
            "resources": dataclasses.asdict(self.resources),
            "seed": self.seed,
            "versions": plain(dict(self.versions)),
            "calibration": plain(dict(self.calibration)) if self.calibration is not None else None,
        }
        if self.model_source is not None:
            out["model_source"] = self.model_source
        if self.status is not None:
            out["status"] = self.status
            out["finished_utc"] = self.finished_utc
        out.update({k: plain(v) for k, v in self.extra.items() if k not in out})
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str, *, source: str | Path = "run.yaml") -> RunConfig:
        """Parse and validate run.yaml text; RunDirectoryError names file, line and field."""
        from autocompress.core.errors import ConfigError

        try:
            data = parse_yaml_with_lines(text, source=str(source))
        except ConfigError as exc:
            raise RunDirectoryError(exc.message) from None
        return cls.from_dict(data, source=source)

    @classmethod
    def from_dict(cls, data: Any, *, source: str | Path = "run.yaml") -> RunConfig:
        """Validate a run.yaml mapping (``source`` names it in errors)."""
        source = str(source)
        if not isinstance(data, Mapping):
            raise RunDirectoryError(f"{source}: expected a mapping at the top level")
        f = _Fields(data, source)
        version = data.get("format_version")
        if version != RUN_FORMAT_VERSION:
            raise RunDirectoryError(
                f"{source}: run format {version!r} is not supported "
                f"(this autocompress reads format {RUN_FORMAT_VERSION})"
            )
        model = f.get(
            "model", lambda v: ModelSpec.from_dict(plain(dict(v))), "a model spec {name: …}"
        )
        dataset = DatasetSpec._read(f.sub("dataset"))
        chips = f.get("chips", _list_of(_str), "a list of chip ids", None)
        main = f.get("chip", _str, "a chip id", None)
        if not chips and main is None:
            raise f.fail("chip", "is missing")
        chips = tuple(chips or (main,))
        if main is not None and main != chips[0]:
            chips = (main, *[c for c in chips if c != main])
        budget_f = f.sub("budget")
        known = {b.name for b in dataclasses.fields(Budget)}
        budget_values = {}
        for key in budget_f.data:
            if key not in known:
                continue  # a budget this version does not know: recorded, not applied
            budget_values[key] = budget_f.get(key, _float, "a number", None)
        try:
            budget = Budget(**{k: v for k, v in budget_values.items() if v is not None})
        except AutocompressError as exc:
            raise f.fail("budget", exc.message) from None
        objectives = f.get("objectives", _list_of(_str), "a list of metric names")
        if len(objectives) < 2:
            raise f.fail("objectives", f"expected two or more metrics, got {list(objectives)}")
        space_f = f.sub("space")
        space = SpaceRecord(
            name=space_f.get("name", _str, "a space name"),
            path=space_f.get("path", _str, "a path", None),
            protect=space_f.get("protect", _list_of(str), "a list of layer names", ()),
            definition=space_f.get("definition", _mapping, "a mapping", {}),
            resolved=space_f.get("resolved", _mapping, "a mapping", {}),
            full_width=space_f.get("full_width", _mapping, "a mapping", {}),
        )
        sampler_f = f.sub("sampler")
        sampler = SamplerRecord(
            name=sampler_f.get("name", _str, "a sampler name"),
            seed=sampler_f.get("seed", _int, "an integer", 0),
        )
        finetune_f = f.sub("finetune")
        finetune = FinetuneSettings(
            epochs=finetune_f.get("epochs", _float, "a number of epochs"),
            batch_size=finetune_f.get("batch_size", _int, "an integer", None),
            lr=finetune_f.get("lr", _float, "a learning rate", 1e-3),
            device=finetune_f.get("device", _str, "auto, cpu or cuda[:N]", "auto"),
            feature_weight=finetune_f.get("feature_weight", _float, "a weight", 0.0),
        )
        promotion_f = f.sub("promotion", required=False)
        promotion = PromotionRecord(
            rungs=promotion_f.get("rungs", _list_of(_float), "a list of factors", (1.0,)),
            keep_fraction=promotion_f.get("keep_fraction", _float, "a fraction", None),
        )
        normalization = None
        if data.get("normalization") is not None:
            norm_f = f.sub("normalization")
            normalization = Normalization(
                mean=norm_f.get("mean", _list_of(_float), "a list of numbers"),
                std=norm_f.get("std", _list_of(_float), "a list of numbers"),
            )
        resources_f = f.sub("resources", required=False)
        resources = Resources(
            cpus_per_trial=resources_f.get("cpus_per_trial", _float, "a number", 1.0),
            gpus_per_trial=resources_f.get("gpus_per_trial", _float, "a number", 0.0),
        )
        sources = f.get("budget_sources", _mapping, "a mapping", {})
        calibration = f.get("calibration", _mapping, "a mapping", None)
        known_keys = set(RunConfig.__dataclass_fields__) | {"chip"}
        return cls(
            format_version=RUN_FORMAT_VERSION,
            name=f.get("name", str, "a name", Path(source).parent.name or "run"),
            created_utc=f.get("created_utc", str, "a time", None),
            model=model,
            model_code=f.get("model_code", _any, "a file identity", None),
            model_source=f.get("model_source", _str, "a path", None),
            input_shape=f.get("input_shape", _list_of(_int), "a list [C, H, W]"),
            dataset=dataset,
            normalization=normalization,
            chips=chips,
            budget=budget,
            budget_sources={str(k): str(v) for k, v in sources.items()},
            objectives=objectives,
            space=space,
            sampler=sampler,
            trials=f.get("trials", _int, "an integer"),
            trials_count=f.get("trials_count", _str, "a word", "trained"),
            anchors=f.get("anchors", _bool, "true or false", True),
            promotion=promotion,
            timeout_s=f.get("timeout_s", _float, "seconds", None),
            finetune=finetune,
            teacher=TeacherEntry._read(f.sub("teacher", required=False)),
            backend=f.get("backend", _str, "optuna or ray", "optuna"),
            workers=f.get("workers", _int, "an integer", 1),
            address=f.get("address", _str, "an address", None),
            resources=resources,
            seed=f.get("seed", _int, "an integer", 0),
            versions=f.get("versions", _mapping, "a mapping", {}),
            calibration=calibration,
            status=f.get("status", _str, "a word", None),
            finished_utc=f.get("finished_utc", str, "a time", None),
            extra={k: plain(v) for k, v in data.items() if k not in known_keys},
        )

    @classmethod
    def read(cls, path: str | Path) -> RunConfig:
        """Read and validate a run.yaml file."""
        path = Path(path)
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise RunDirectoryError(f"{path}: not a text file (not UTF-8)") from None
        except OSError as exc:
            raise RunDirectoryError(f"{path} cannot be read: {exc}") from None
        return cls.from_yaml(text, source=path)


__all__ = [
    "RUN_FORMAT_VERSION",
    "DatasetSpec",
    "FinetuneSettings",
    "Normalization",
    "PromotionRecord",
    "Resources",
    "RunConfig",
    "SamplerRecord",
    "SpaceRecord",
    "TeacherEntry",
]
