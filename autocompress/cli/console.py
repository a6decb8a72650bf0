"""The rich consoles the CLI prints to (results on stdout, messages on stderr)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape

stdout = Console(highlight=False, soft_wrap=False)
stderr = Console(stderr=True, highlight=False)


def print_error(message: str) -> None:
    """``error: <message>`` in red on stderr; later lines (hints) plain."""
    first, _, rest = message.partition("\n")
    stderr.print(f"[bold red]error:[/] {escape(first)}")
    if rest:
        stderr.print(escape(rest))


def print_warning(message: str) -> None:
    stderr.print(f"[yellow]warning:[/] {escape(message)}")


def print_json(data: Any) -> None:
    """Plain JSON on stdout (no colour codes), for scripts."""
    print(json.dumps(data, indent=2, sort_keys=False, default=str))
