"""Read a run directory, finished or still running, into plain data.

A run in progress may have a ``run.yaml`` without a teacher yet, no
``trials.jsonl`` yet, or a torn last line (skipped by ``RunDirectory``). Nothing
here needs the search to be alive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autocompress.core.budget import Budget
from autocompress.core.errors import RunDirectoryError
from autocompress.core.trial_config import TrialConfig
from autocompress.core.workspace import RunDirectory, TrialRecord


@dataclass(frozen=True)
class RunData:
    """Everything a report or an export reads from a run directory.

    Attributes:
        directory: the run directory.
        config: run.yaml as a dict.
        records: one TrialRecord per trial number, sorted.
        pareto: pareto.json as written by the search (None before the first trial).
    """

    directory: RunDirectory
    config: Mapping[str, Any]
    records: Sequence[TrialRecord] = field(default_factory=tuple)
    pareto: Mapping[str, Any] | None = None

    @property
    def path(self) -> Path:
        return self.directory.path

    @property
    def name(self) -> str:
        return str(self.config.get("name") or self.path.name)

    @property
    def main_chip(self) -> str:
        chip = self.config.get("chip")
        if not chip:
            raise RunDirectoryError(f"{self.directory.run_yaml}: field 'chip' is missing")
        return str(chip)

    @property
    def chips(self) -> list[str]:
        """Every chip each trial was costed on (main first)."""
        chips = [str(c) for c in self.config.get("chips") or []]
        return chips or [self.main_chip]

    @property
    def objectives(self) -> list[str]:
        return [str(o) for o in self.config.get("objectives") or ["accuracy", "latency_ms"]]

    @property
    def input_shape(self) -> tuple[int, ...]:
        shape = self.config.get("input_shape")
        if not shape:
            raise RunDirectoryError(f"{self.directory.run_yaml}: field 'input_shape' is missing")
        return tuple(int(x) for x in shape)

    @property
    def protect(self) -> tuple[str, ...]:
        space = self.config.get("space") or {}
        return tuple(str(p) for p in (space.get("protect") or ()))

    @property
    def teacher(self) -> Mapping[str, Any]:
        return self.config.get("teacher") or {}

    @property
    def trials_planned(self) -> int | None:
        trials = self.config.get("trials")
        return int(trials) if trials is not None else None

    @property
    def in_progress(self) -> bool:
        """Fewer finished trials than planned (a running or interrupted search)."""
        planned = self.trials_planned
        return planned is not None and len(self.records) < planned

    def budget(self) -> Budget:
        """The run's resolved budget (on the main chip)."""
        data = {k: v for k, v in (self.config.get("budget") or {}).items() if v is not None}
        known = set(Budget.__dataclass_fields__)
        return Budget(**{k: float(v) for k, v in data.items() if k in known})

    def budget_sources(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (self.config.get("budget_sources") or {}).items()}

    def record(self, number: int) -> TrialRecord:
        """The record of trial ``number``; RunDirectoryError listing the known numbers if absent."""
        for record in self.records:
            if record.number == number:
                return record
        known = [r.number for r in self.records]
        shown = ", ".join(str(n) for n in known[:20]) + (" …" if len(known) > 20 else "")
        raise RunDirectoryError(
            f"trial {number} is not in {self.directory.trials_jsonl}"
            + (f" (trials: {shown})" if known else " (no trial has finished yet)"),
            hint=f"Run `autocompress report {self.path}` to see the trials.",
        )

    @staticmethod
    def trial_config(record: TrialRecord) -> TrialConfig:
        return TrialConfig.from_dict(record.config)


def load_run(path: str | Path) -> RunData:
    """Load run.yaml, trials.jsonl and pareto.json; RunDirectoryError if it is not a run."""
    directory = RunDirectory(path).require()
    config = directory.read_run_config()
    try:
        pareto = directory.read_pareto()
    except ValueError:  # torn or foreign file: the report recomputes the front anyway
        pareto = None
    return RunData(
        directory=directory, config=config, records=tuple(directory.read_trials()), pareto=pareto
    )
