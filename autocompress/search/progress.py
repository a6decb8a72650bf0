"""Progress of a search with rich: trials done/planned, stage of the running trial,
front size, elapsed time and ETA. Silent when switched off (tests, the Python API)."""

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
    TimeRemainingColumn,
)


class SearchProgress:
    """A live progress line; every method is a no-op when ``enabled`` is False."""

    def __init__(
        self, *, enabled: bool, planned: int, done: int = 0, console: Console | None = None
    ) -> None:
        self.enabled = enabled
        self.planned = planned
        self.done = done
        self.front_size = 0
        self.feasible = 0
        self.started = time.monotonic()
        self._progress: Progress | None = None
        self._task: Any = None
        if enabled:
            self._progress = Progress(
                TextColumn("[bold]trials"),
                MofNCompleteColumn(),
                BarColumn(bar_width=24),
                TextColumn(
                    "front [cyan]{task.fields[front]}[/] · feasible {task.fields[feasible]}"
                ),
                TextColumn("· {task.fields[stage]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
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
                feasible=0,
                stage="starting",
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def stage(self, trial_number: int, text: str, fraction: float = 0.0) -> None:
        """What the running trial is doing."""
        if self._progress is None:
            return
        suffix = f" {fraction:.0%}" if 0.0 < fraction < 1.0 else ""
        self._progress.update(self._task, stage=f"trial {trial_number}: {text}{suffix}")

    def finished(self, *, done: int, front_size: int, feasible: int, last: str = "") -> None:
        """A trial finished (``done`` counts every worker's finished trials)."""
        self.done, self.front_size, self.feasible = done, front_size, feasible
        if self._progress is None:
            return
        self._progress.update(
            self._task,
            completed=min(done, self.planned),
            front=front_size,
            feasible=feasible,
            stage=last,
        )

    def message(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text)
