"""The run directory: everything a later report, export or resume needs.

::

    runs/<name>/
      .lock           held by the running search (see core/run_lock.py)
      run.yaml        resolved configuration + versions (written once, at start)
      study.db        Optuna storage (SQLite)
      teacher.pt      the baseline model (weights_only checkpoint)
      trials.jsonl    one TrialRecord per finished trial (append-only)
      pareto.json     the current front (rewritten atomically as trials finish)
      students/trial-0017.pt  trained student weights of completed trials
      report.html     written by ``autocompress report --html``
      models/trial-0017/{model.onnx, model.pt, card.json, card.md}
      models/trial-0017/{recovered.pt, recovered.json}   written by ``autocompress finetune``
                       (recovery-state.pt while it runs: the resumable epoch checkpoint)

Writers append or replace atomically, so a reader (report on a running
search) never sees a half-written file. Every record starts on a fresh line (a
torn last line left by a killed writer never swallows the next record), and
:meth:`RunDirectory.scan_trials` is the one reader of ``trials.jsonl``: it skips
any line that is not a valid record (torn, not JSON, JSON of another shape,
wrong types, random bytes) and :meth:`RunDirectory.read_trials` reports the
skipped lines once, as a :class:`~autocompress.core.errors.RunFileWarning`
naming the file, the line numbers and the count.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from autocompress.core.cost_totals import CostTotals
from autocompress.core.errors import AutocompressError, RunDirectoryError, RunFileWarning
from autocompress.core.file_writes import writing
from autocompress.core.run_config import RUN_FORMAT_VERSION as RUN_FORMAT_VERSION
from autocompress.core.run_config import RunConfig
from autocompress.core.trial_config import TrialConfig

TRIAL_STATES = ("complete", "infeasible", "failed", "duplicate")


@dataclass(frozen=True)
class TrialRecord:
    """One finished trial as stored in ``trials.jsonl``.

    Attributes:
        number: Optuna trial number (unique in the run).
        state: ``complete`` (trained and scored), ``infeasible`` (a cost budget
            was broken before training; no training spent), ``duplicate`` (the
            configuration of an earlier trial; its result reused) or ``failed``.
        config: the trial's :class:`TrialConfig` (a mapping given is read as one).
        metrics: ``accuracy`` (validation top-1, fraction), optionally
            ``test_accuracy``, ``teacher_agreement`` …; empty when not trained.
        costs: chip id -> :class:`CostTotals` for every chip asked for (mappings given
            are read as totals).
        violations: budget name -> Optuna constraint value on the run's main chip
            (``<= 0`` met); see ``Budget.violations``.
        feasible: every budget met on the main chip.
        timings_s: stage -> seconds (``compress``, ``cost``, ``finetune``, ``evaluate``, ``total``),
            plus ``finetune_s_per_epoch`` and ``finetune_images_per_s`` (fine-tune throughput).
        error: message for a failed trial.
        backend: ``optuna`` or ``ray``.
        rungs: one entry per fine-tune the configuration got, shortest first
            (``epochs``, ``accuracy``, ``test_accuracy``, ``seconds``); ``metrics``
            are the last (longest) rung's. Promotion appends rungs.
        duplicate_of: for state ``duplicate`` (the sampler proposed a configuration
            this run had already trained or costed), the trial whose result was reused.
    """

    number: int
    state: str
    config: TrialConfig
    metrics: Mapping[str, float] = field(default_factory=dict)
    costs: Mapping[str, CostTotals] = field(default_factory=dict)
    violations: Mapping[str, float] = field(default_factory=dict)
    feasible: bool = False
    timings_s: Mapping[str, float] = field(default_factory=dict)
    error: str | None = None
    backend: str = "optuna"
    rungs: Sequence[Mapping[str, float]] = field(default_factory=list)
    duplicate_of: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.config, TrialConfig):
            object.__setattr__(self, "config", TrialConfig.from_dict(self.config))
        if any(not isinstance(v, CostTotals) for v in self.costs.values()):
            typed = {str(k): CostTotals.from_mapping(v) for k, v in self.costs.items()}
            object.__setattr__(self, "costs", typed)

    def to_dict(self) -> dict[str, Any]:
        """The ``trials.jsonl`` form (JSON types only): what the run-directory writer stores."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["config"] = self.config.to_dict()
        data["costs"] = {chip: totals.to_dict() for chip, totals in self.costs.items()}
        return json.loads(json.dumps(data))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialRecord:
        """A record from its dict; ``ValueError`` naming the field when a value has the wrong
        type (unknown keys are ignored, so newer files stay readable)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        names = set(cls.__dataclass_fields__)
        values = {k: v for k, v in data.items() if k in names}
        for key in ("number", "state", "config"):
            if key not in values:
                raise ValueError(f"field {key!r} is missing")
        number = values["number"]
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            raise ValueError(f"field 'number' must be a non-negative integer, got {number!r}")
        if values["state"] not in TRIAL_STATES:
            raise ValueError(
                f"field 'state' must be one of {TRIAL_STATES}, got {values['state']!r}"
            )
        if not isinstance(values["config"], Mapping):
            raise ValueError("field 'config' must be an object")
        try:
            values["config"] = TrialConfig.from_dict(values["config"])
        except (ValueError, TypeError, KeyError, AutocompressError) as exc:
            raise ValueError(f"field 'config' is not a trial configuration ({exc})") from None
        for key in ("metrics", "violations", "timings_s"):
            if key in values:
                _check_numbers(key, values[key])
        costs = values.get("costs", {})
        if not isinstance(costs, Mapping):
            raise ValueError("field 'costs' must be an object")
        for chip, metrics in costs.items():
            _check_numbers(f"costs.{chip}", metrics)
        if not isinstance(values.get("feasible", False), bool):
            raise ValueError(f"field 'feasible' must be true or false, got {values['feasible']!r}")
        if not isinstance(values.get("error"), (str, type(None))):
            raise ValueError("field 'error' must be a string or null")
        if not isinstance(values.get("backend", "optuna"), str):
            raise ValueError("field 'backend' must be a string")
        duplicate_of = values.get("duplicate_of")
        if duplicate_of is not None and (
            isinstance(duplicate_of, bool) or not isinstance(duplicate_of, int)
        ):
            raise ValueError(f"field 'duplicate_of' must be a trial number, got {duplicate_of!r}")
        rungs = values.get("rungs", [])
        if not isinstance(rungs, list):
            raise ValueError("field 'rungs' must be a list")
        for index, rung in enumerate(rungs):
            _check_numbers(f"rungs[{index}]", rung)
        return cls(**values)


def _check_numbers(key: str, value: Any) -> None:
    if not isinstance(value, Mapping):
        raise ValueError(f"field {key!r} must be an object of numbers")
    for name, number in value.items():
        if isinstance(number, bool) or not isinstance(number, (int, float)) or math.isnan(number):
            raise ValueError(f"field {key}.{name} must be a number, got {number!r}")


@dataclass(frozen=True)
class SkippedLine:
    """A line of a run file that could not be read as a record."""

    line: int
    reason: str


@dataclass(frozen=True)
class TrialScan:
    """What :meth:`RunDirectory.scan_trials` found: records in file order and skipped lines."""

    records: list[TrialRecord]
    skipped: list[SkippedLine]


def _line_ranges(numbers: list[int]) -> str:
    parts: list[str] = []
    start = previous = numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == previous + 1:
            previous = n
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if n is not None:
            start = previous = n
    return ", ".join(parts[:12]) + (" …" if len(parts) > 12 else "")


_warned: set[tuple[str, tuple[int, ...]]] = set()


def warn_skipped(path: Path, skipped: list[SkippedLine]) -> None:
    """One :class:`RunFileWarning` per file and set of skipped lines (per process)."""
    if not skipped:
        return
    key = (str(path.resolve()), tuple(s.line for s in skipped))
    if key in _warned:
        return
    _warned.add(key)
    count = len(skipped)
    warnings.warn(
        RunFileWarning(
            f"{path}: skipped {count} unreadable line{'s' if count != 1 else ''} "
            f"(line{'s' if count != 1 else ''} {_line_ranges([s.line for s in skipped])}; "
            f"first: {skipped[0].reason}); the other records were read"
        ),
        stacklevel=3,
    )


def write_atomic(path: Path, text: str, *, what: str | None = None) -> None:
    """Replace ``path`` with ``text`` so readers see the old or the new file, never half.

    A failed write (full disk, no permission) removes the temp file and raises a
    :class:`~autocompress.core.errors.WriteError` naming ``what`` (default: the file name).
    """
    with writing(what or path.name, path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class RunDirectory:
    """Paths and safe reads/writes of one run directory."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    # -- paths ---------------------------------------------------------------
    @property
    def run_yaml(self) -> Path:
        return self.path / "run.yaml"

    @property
    def study_db(self) -> Path:
        return self.path / "study.db"

    @property
    def storage_url(self) -> str:
        """SQLAlchemy URL of the Optuna storage."""
        return f"sqlite:///{self.study_db.resolve()}"

    @property
    def teacher_pt(self) -> Path:
        return self.path / "teacher.pt"

    @property
    def trials_jsonl(self) -> Path:
        return self.path / "trials.jsonl"

    @property
    def pareto_json(self) -> Path:
        return self.path / "pareto.json"

    @property
    def report_html(self) -> Path:
        return self.path / "report.html"

    @property
    def models_dir(self) -> Path:
        return self.path / "models"

    def model_dir(self, trial_number: int) -> Path:
        return self.models_dir / f"trial-{trial_number:04d}"

    def recovered_pt(self, trial_number: int) -> Path:
        """Recovery-trained student weights (``autocompress finetune``), student format."""
        return self.model_dir(trial_number) / "recovered.pt"

    def recovered_json(self, trial_number: int) -> Path:
        """Accuracy, epochs, seconds and recipe of the recovery training."""
        return self.model_dir(trial_number) / "recovered.json"

    def recovery_state_pt(self, trial_number: int) -> Path:
        """The resumable epoch checkpoint of a recovery training in progress."""
        return self.model_dir(trial_number) / "recovery-state.pt"

    def read_recovered(self, trial_number: int) -> dict[str, Any] | None:
        """``recovered.json`` of a trial, or None when absent or unreadable."""
        path = self.recovered_json(trial_number)
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    @property
    def students_dir(self) -> Path:
        return self.path / "students"

    def student_pt(self, trial_number: int) -> Path:
        """Trained student weights of a completed trial (written by the search)."""
        return self.students_dir / f"trial-{trial_number:04d}.pt"

    # -- checks ----------------------------------------------------------------
    def require(self) -> RunDirectory:
        """Raise a clear error unless this looks like a run directory."""
        if not self.path.is_dir():
            raise RunDirectoryError(
                f"run directory {str(self.path)!r} does not exist",
                hint="Pass the folder a search wrote, e.g. runs/<name> "
                "(see `autocompress search --out`).",
            )
        if not self.run_yaml.is_file():
            raise RunDirectoryError(
                f"{str(self.path)!r} is not a run directory: run.yaml is missing",
                hint="A run directory is created by `autocompress search`.",
            )
        return self

    # -- run.yaml --------------------------------------------------------------
    def write_run_config(self, config: RunConfig) -> None:
        """Write run.yaml (atomically): at creation, and for each typed change of it."""
        write_atomic(self.run_yaml, config.to_yaml())

    def read_run_config(self) -> RunConfig:
        """run.yaml as a validated :class:`RunConfig` (errors name file, line and field)."""
        self.require()
        return RunConfig.read(self.run_yaml)

    # -- trials.jsonl ------------------------------------------------------------
    def append_trial(self, record: TrialRecord) -> None:
        """Append one record on a line of its own and flush it to disk (one write).

        When the file does not end with a newline (a writer was killed mid-line),
        the record starts on a fresh line so the torn line never swallows it.
        """
        line = json.dumps(record.to_dict(), sort_keys=True) + "\n"
        with writing(f"trial {record.number}'s record", self.trials_jsonl):
            self.path.mkdir(parents=True, exist_ok=True)
            with open(self.trials_jsonl, "ab+") as handle:
                handle.seek(0, os.SEEK_END)
                if handle.tell() > 0:
                    handle.seek(-1, os.SEEK_END)
                    if handle.read(1) != b"\n":
                        line = "\n" + line
                handle.write(line.encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())

    def scan_trials(self) -> TrialScan:
        """Every readable record in file order, and the lines that were skipped (with why)."""
        records: list[TrialRecord] = []
        skipped: list[SkippedLine] = []
        try:
            with open(self.trials_jsonl, "rb") as handle:
                lines = list(handle)
        except FileNotFoundError:
            return TrialScan(records, skipped)
        except OSError as exc:
            raise RunDirectoryError(f"{self.trials_jsonl} cannot be read: {exc}") from None
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                records.append(TrialRecord.from_dict(json.loads(raw.decode("utf-8"))))
            except UnicodeDecodeError:
                skipped.append(SkippedLine(number, "not UTF-8 text"))
            except json.JSONDecodeError:
                skipped.append(SkippedLine(number, "not a complete JSON line"))
            except (ValueError, TypeError, RecursionError) as exc:
                skipped.append(SkippedLine(number, f"not a trial record ({exc})"))
        return TrialScan(records, skipped)

    def iter_trials(self) -> Iterator[TrialRecord]:
        """Records in file order; unreadable lines are skipped (and reported once).

        When a trial number appears twice (a retried trial), the later record wins
        in :meth:`read_trials`.
        """
        scan = self.scan_trials()
        warn_skipped(self.trials_jsonl, scan.skipped)
        yield from scan.records

    def read_trials(self) -> list[TrialRecord]:
        """One record per trial number (the latest), sorted by number."""
        latest: dict[int, TrialRecord] = {}
        for record in self.iter_trials():
            latest[record.number] = record
        return [latest[n] for n in sorted(latest)]

    # -- pareto.json ---------------------------------------------------------------
    def write_pareto(self, data: Mapping[str, Any]) -> None:
        write_atomic(self.pareto_json, json.dumps(data, indent=2, sort_keys=True))

    def read_pareto(self) -> dict[str, Any] | None:
        """pareto.json, or None when missing or unreadable (it is recomputed from the records)."""
        try:
            data = json.loads(self.pareto_json.read_bytes().decode("utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None
