"""``--calibration FILE|none`` and ``--no-calibration``, shared by cost, search and report."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


def calibration_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--calibration`` and ``--no-calibration``; they are applied before the command runs."""

    def apply(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value in (None, False):
            return value
        from autocompress.hardware.calibration_store import use_calibration

        use_calibration("none" if value is True else value)
        return value

    function = click.option(
        "--no-calibration",
        is_flag=True,
        expose_value=False,
        callback=apply,
        help="Use the plugins' datasheet knobs only (same as --calibration none).",
    )(function)
    return click.option(
        "--calibration",
        metavar="FILE|none",
        expose_value=False,
        callback=apply,
        help="Calibration file to apply on top of the shipped and user ones "
        "(~/.config/autocompress/calibrations/*.yaml); 'none' turns calibration off.",
    )(function)
