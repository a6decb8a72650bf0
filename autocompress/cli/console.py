"""The rich consoles the CLI prints to (results on stdout, messages on stderr)."""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.markup import escape

stdout = Console(highlight=False, soft_wrap=False)
# soft_wrap: an error's file path is never broken across lines (the terminal wraps it).
stderr = Console(stderr=True, highlight=False, soft_wrap=True)
_python_showwarning = warnings.showwarning


def print_error(message: str) -> None:
    """``error: <message>`` in red on stderr; later lines (hints) plain."""
    first, _, rest = message.partition("\n")
    stderr.print(f"[bold red]error:[/] {escape(first)}")
    if rest:
        stderr.print(escape(rest))


_warned: set[str] = set()


def reset_warnings() -> None:
    """Forget which warnings were printed (each command invocation starts afresh)."""
    _warned.clear()


def print_warning(message: str) -> None:
    """``warning: <message>`` in yellow on stderr, each distinct message once per command."""
    if message in _warned:
        return
    _warned.add(message)
    stderr.print(f"[yellow]warning:[/] {escape(message)}")


def show_python_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """A :func:`warnings.showwarning` that prints autocompress's own warnings (any
    :class:`~autocompress.core.errors.AutocompressWarning`, e.g. a plugin problem or
    skipped run-file lines) like :func:`print_warning`, without Python's source path;
    any other warning is shown the usual way."""
    from autocompress.core.errors import AutocompressWarning

    if isinstance(category, type) and issubclass(category, AutocompressWarning):
        print_warning(str(message))
        return
    _python_showwarning(message, category, filename, lineno, file, line)


def print_json(data: Any) -> None:
    """Plain JSON on stdout (no colour codes), for scripts."""
    print(json.dumps(data, indent=2, sort_keys=False, default=str))


@contextlib.contextmanager
def fraction_progress(description: str) -> Iterator[Callable[[str, float], None]]:
    """A transient rich bar with elapsed time and ETA on stderr; yields
    ``update(stage, fraction_done)`` (the callback ``recover``/``export`` take)."""
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=1.0)
        yield lambda _stage, done: bar.update(task, completed=done)


class StderrNotices:
    """The search's notices (``autocompress.search.notices.SearchNotices``) on the CLI's stderr."""

    def notice(self, text: str) -> None:
        stderr.print(text)
