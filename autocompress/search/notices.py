"""How a search tells its caller what it is doing: the :class:`SearchNotices` protocol.

The search layer never imports the CLI. ``search(..., notices=...)`` takes any
object with a ``notice(text)`` method (rich markup allowed); the CLI passes its
console-backed one (``autocompress.cli.console.StderrNotices``), the Python API
prints to stderr with rich when ``show_progress`` is set and is silent otherwise.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class SearchNotices(Protocol):
    """Receives one-line notices of a search (run created, teacher baseline, layers kept …)."""

    def notice(self, text: str) -> None:
        """Show ``text`` (rich console markup such as ``[bold]run[/]``)."""


class SilentNotices:
    """Shows nothing (the default of the Python API without ``show_progress``)."""

    def notice(self, text: str) -> None:
        return None


class RichNotices:
    """Prints each notice on stderr with rich (the Python API with ``show_progress``)."""

    def __init__(self) -> None:
        from rich.console import Console

        self._console = Console(stderr=True, highlight=False)

    def notice(self, text: str) -> None:
        self._console.print(text)


def notices_for(notices: SearchNotices | None, show_progress: bool) -> SearchNotices:
    """``notices`` when given, else rich on stderr with ``show_progress``, else silence."""
    if notices is not None:
        return notices
    return RichNotices() if show_progress else SilentNotices()


__all__ = ["RichNotices", "SearchNotices", "SilentNotices", "notices_for"]
