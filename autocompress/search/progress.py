"""Progress of a search with rich: trained trials done/planned, infeasible and duplicate
proposals, stage of the running trial, front size, elapsed time and ETA. Silent when
switched off (tests, the Python API).

The ETA is ``remaining trained trials × seconds per trained trial`` where the seconds
per trained trial is everything this session spent (infeasible proposals included)
divided by the trained trials it finished: it moves smoothly, instead of jumping with
each cheap infeasible proposal. Before the first trained trial it reads ``ETA -``.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)


def format_eta(seconds: float | None) -> str:
    """``ETA m:ss`` (``h:mm:ss`` past an hour), ``ETA -`` when unknown."""
    if seconds is None:
        return "ETA -"
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"ETA {hours}:{minutes:02d}:{secs:02d}" if hours else f"ETA {minutes}:{secs:02d}"


def stage_text(trial_number: int | str, text: str, fraction: float = 0.0) -> str:
    """``trial N: stage 40%`` (no word twice in a row)."""
    words: list[str] = []
    for word in text.split():
        if not words or words[-1] != word:
            words.append(word)
    suffix = f" {fraction:.0%}" if 0.0 < fraction < 1.0 else ""
    return f"trial {trial_number}: {' '.join(words)}{suffix}"


class SearchProgress:
    """A live progress line; every method is a no-op when ``enabled`` is False.

    ``planned`` and ``done`` count trained trials (what ``--trials`` buys).
    """

    def __init__(
        self,
        *,
        enabled: bool,
        planned: int,
        done: int = 0,
        console: Console | None = None,
        workers: int = 1,
        label: str = "trained",
    ) -> None:
        self.enabled = enabled
        self.planned = planned
        self.done = done
        self.workers = max(1, workers)
        self.front_size = 0
        self.feasible = 0
        self.infeasible = 0
        self.duplicates = 0
        self.started = time.monotonic()
        self._spent_s = 0.0  # seconds of every proposal finished in this session
        self._trained_here = 0
        self._progress: Progress | None = None
        self._task: Any = None
        if enabled:
            self._progress = Progress(
                TextColumn(f"[bold]{label}"),
                MofNCompleteColumn(),
                BarColumn(bar_width=20),
                TextColumn(
                    "infeasible {task.fields[infeasible]} · front [cyan]{task.fields[front]}[/]"
                ),
                TextColumn("· {task.fields[stage]}"),
                TimeElapsedColumn(),
                TextColumn("{task.fields[eta]}"),
                console=console or Console(stderr=True),
                transient=False,
            )

    def __enter__(self) -> SearchProgress:
        if self._progress is not None:
            self._progress.start()
            self._task = self._progress.add_task(
                "search",
                total=self.planned,
                completed=self.done,
                front=0,
                infeasible=0,
                stage="starting",
                eta=format_eta(None),
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def eta_s(self) -> float | None:
        """Seconds left for the remaining trained trials (None before the first one)."""
        if self._trained_here == 0:
            return None
        spent = self._spent_s if self._spent_s > 0 else time.monotonic() - self.started
        per_trained = spent / self._trained_here
        remaining = max(0, self.planned - self.done)
        return remaining * per_trained / self.workers

    def stage(self, trial_number: int | str, text: str, fraction: float = 0.0) -> None:
        """What the running trial is doing."""
        if self._progress is None:
            return
        self._progress.update(self._task, stage=stage_text(trial_number, text, fraction))

    def finished(
        self,
        *,
        done: int,
        front_size: int,
        feasible: int,
        last: str = "",
        infeasible: int | None = None,
        duplicates: int | None = None,
        seconds: float = 0.0,
        trained_now: bool = True,
    ) -> None:
        """A proposal finished; ``done`` counts every worker's trained trials.

        ``seconds`` is what it took, ``trained_now`` whether it was trained.
        """
        self.done, self.front_size, self.feasible = done, front_size, feasible
        if infeasible is not None:
            self.infeasible = infeasible
        if duplicates is not None:
            self.duplicates = duplicates
        self._spent_s += max(0.0, seconds)
        if trained_now:
            self._trained_here += 1
        if self._progress is None:
            return
        self._progress.update(
            self._task,
            completed=min(done, self.planned),
            front=front_size,
            infeasible=self.infeasible,
            stage=last,
            eta=format_eta(self.eta_s()),
        )

    def line(self) -> str:
        """The counts as plain text (for logs and tests)."""
        return (
            f"trained {self.done}/{self.planned} · infeasible {self.infeasible}"
            f" · duplicates {self.duplicates} · front {self.front_size} · "
            f"{format_eta(self.eta_s())}"
        )

    def message(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text)
