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
from autocompress.core.run_config import RunConfig
from autocompress.core.trial_config import TrialConfig
from autocompress.core.workspace import RunDirectory, TrialRecord


@dataclass(frozen=True)
class RunData:
    """Everything a report or an export reads from a run directory.

    Attributes:
        directory: the run directory.
        config: run.yaml (a validated :class:`~autocompress.core.run_config.RunConfig`).
        records: one TrialRecord per trial number, sorted.
        pareto: pareto.json as written by the search (None before the first trial).
    """

    directory: RunDirectory
    config: RunConfig
    records: Sequence[TrialRecord] = field(default_factory=tuple)
    pareto: Mapping[str, Any] | None = None

    @property
    def path(self) -> Path:
        return self.directory.path

    @property
    def name(self) -> str:
        return self.config.name or self.path.name

    @property
    def main_chip(self) -> str:
        return self.config.chip

    @property
    def chips(self) -> list[str]:
        """Every chip each trial was costed on (main first)."""
        return list(self.config.chips)

    @property
    def objectives(self) -> list[str]:
        return list(self.config.objectives)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.config.input_shape

    @property
    def protect(self) -> tuple[str, ...]:
        return self.config.protect

    @property
    def teacher(self) -> Mapping[str, Any]:
        """run.yaml's teacher entry as a mapping (``source``, ``val_accuracy`` …)."""
        return self.config.teacher.to_dict()

    @property
    def trials_planned(self) -> int | None:
        return self.config.trials

    @property
    def in_progress(self) -> bool:
        """Fewer finished trials than planned (a running or interrupted search)."""
        planned = self.trials_planned
        return planned is not None and len(self.records) < planned

    def budget(self) -> Budget:
        """The run's resolved budget (on the main chip)."""
        return self.config.budget

    def budget_sources(self) -> dict[str, str]:
        return dict(self.config.budget_sources)

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
        return record.config


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
