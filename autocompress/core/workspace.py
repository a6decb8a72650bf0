"""The run directory: everything a later report, export or resume needs.

::

    runs/<name>/
      run.yaml        resolved configuration + versions (written once, at start)
      study.db        Optuna storage (SQLite)
      teacher.pt      the baseline model (weights_only checkpoint)
      trials.jsonl    one TrialRecord per finished trial (append-only)
      pareto.json     the current front (rewritten atomically as trials finish)
      students/trial-0017.pt  trained student weights of completed trials
      report.html     written by ``autocompress report --html``
      models/trial-0017/{model.onnx, model.pt, card.json, card.md}

Writers append or replace atomically, so a reader (report on a running
search) never sees a half-written file; a torn last line of ``trials.jsonl``
(a killed writer) is skipped.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from autocompress.core.errors import RunDirectoryError

RUN_FORMAT_VERSION = 1

TRIAL_STATES = ("complete", "infeasible", "failed")


@dataclass(frozen=True)
class TrialRecord:
    """One finished trial as stored in ``trials.jsonl``.

    Attributes:
        number: Optuna trial number (unique in the run).
        state: ``complete`` (trained and scored), ``infeasible`` (a cost budget
            was broken before training; no training spent), ``duplicate`` (the
            configuration of an earlier trial; its result reused) or ``failed``.
        config: ``TrialConfig.to_dict()``.
        metrics: ``accuracy`` (validation top-1, fraction), optionally
            ``test_accuracy``, ``teacher_agreement`` …; empty when not trained.
        costs: chip id -> cost totals (``Cost.metrics()``) for every chip asked for.
        violations: budget name -> Optuna constraint value on the run's main chip
            (``<= 0`` met); see ``Budget.violations``.
        feasible: every budget met on the main chip.
        timings_s: stage -> seconds (``compress``, ``cost``, ``finetune``, ``evaluate``, ``total``).
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
    config: Mapping[str, Any]
    metrics: Mapping[str, float] = field(default_factory=dict)
    costs: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    violations: Mapping[str, float] = field(default_factory=dict)
    feasible: bool = False
    timings_s: Mapping[str, float] = field(default_factory=dict)
    error: str | None = None
    backend: str = "optuna"
    rungs: Sequence[Mapping[str, float]] = field(default_factory=list)
    duplicate_of: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialRecord:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so readers see the old or the new file, never half."""
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
    def write_run_config(self, config: Mapping[str, Any]) -> None:
        data = {"format_version": RUN_FORMAT_VERSION, **config}
        write_atomic(self.run_yaml, yaml.safe_dump(data, sort_keys=False))

    def read_run_config(self) -> dict[str, Any]:
        self.require()
        try:
            data = yaml.safe_load(self.run_yaml.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise RunDirectoryError(f"{self.run_yaml}: not valid YAML ({exc})") from None
        if not isinstance(data, dict):
            raise RunDirectoryError(f"{self.run_yaml}: expected a mapping at the top level")
        version = data.get("format_version")
        if version != RUN_FORMAT_VERSION:
            raise RunDirectoryError(
                f"{self.run_yaml}: run format {version!r} is not supported "
                f"(this autocompress reads format {RUN_FORMAT_VERSION})"
            )
        return data

    # -- trials.jsonl ------------------------------------------------------------
    def append_trial(self, record: TrialRecord) -> None:
        """Append one record and flush it to disk (one line, one write)."""
        self.path.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record.to_dict(), sort_keys=True) + "\n"
        with open(self.trials_jsonl, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def iter_trials(self) -> Iterator[TrialRecord]:
        """Records in file order; a torn or unreadable line is skipped.

        When a trial number appears twice (a retried trial), the later record wins
        in :meth:`read_trials`.
        """
        if not self.trials_jsonl.is_file():
            return
        with open(self.trials_jsonl, encoding="utf-8") as handle:
            for line in handle:
                line = line.strip()
                if not line:
                    continue
                try:
                    yield TrialRecord.from_dict(json.loads(line))
                except (json.JSONDecodeError, TypeError):
                    continue

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
        if not self.pareto_json.is_file():
            return None
        return json.loads(self.pareto_json.read_text(encoding="utf-8"))
