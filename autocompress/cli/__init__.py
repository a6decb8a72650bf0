"""The ``autocompress`` command line: thin click commands over the Python API.

Each sub-command lives in its own module (``autocompress/cli/<name>.py``) that
defines a click command named ``command``; they are imported only when used,
so ``autocompress --help`` stays fast and a broken optional dependency breaks
only the command that needs it.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings

import click

from autocompress import __version__
from autocompress.cli.console import print_error, reset_warnings, show_python_warning
from autocompress.core.errors import AutocompressError, AutocompressWarning, CalibrationFileError

# command name -> (module, one-line help shown by `autocompress --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "chips": ("autocompress.cli.chips", "List the chips installed plugins provide."),
    "cost": ("autocompress.cli.cost", "Simulated NPU cost of a model on a chip."),
    "calibrate": (
        "autocompress.cli.calibrate",
        "Fit the cost model to measured latencies (writes a calibration file).",
    ),
    "train": ("autocompress.cli.train", "Train the baseline (teacher) model."),
    "spaces": ("autocompress.cli.spaces", "List and check search spaces."),
    "search": ("autocompress.cli.search", "Search for compressed models under budgets."),
    "report": ("autocompress.cli.report", "Show the Pareto front of a run (table, HTML, CSV)."),
    "finetune": (
        "autocompress.cli.finetune",
        "Recovery training of a chosen trial (longer KD, learned step sizes).",
    ),
    "export": (
        "autocompress.cli.export",
        "Export a chosen trial: ONNX, PyTorch and a deploy card.",
    ),
}


class LazyGroup(click.Group):
    """A click group that imports a sub-command's module only when it runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, short_help = COMMANDS[cmd_name]
        if ctx.resilient_parsing or "--help" in sys.argv[1:2]:
            # `autocompress --help` only needs the one-line help.
            return click.Command(cmd_name, short_help=short_help, help=short_help)
        module = importlib.import_module(module_name)
        return module.command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="autocompress")
def cli() -> None:
    """Find compressed networks that deploy on edge NPUs.

    \b
    Typical use:
      autocompress chips                      # which chips are installed
      autocompress cost --model mobilenet_v2 --chip rockchip/rv1126
      autocompress search                     # the embedded default search
      autocompress report runs/<name>         # the Pareto front
      autocompress finetune runs/<name> --pick "max accuracy"   # recovery training
      autocompress export runs/<name> --trial 17
    """
    reset_warnings()


def with_cli_hint(exc: AutocompressError) -> str:
    """The error's text plus the CLI flags that help, for errors the lower layers raise
    without naming flags (they know the Python API, not the command line)."""
    text = str(exc)
    if isinstance(exc, CalibrationFileError):
        text += (
            "\nOn the command line: `autocompress calibrate MEASUREMENTS.csv --out FILE` writes "
            "a calibration file; --calibration none (or --no-calibration) skips them all."
        )
    return text


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI; user errors print a message and exit non-zero, no traceback.

    Set ``AUTOCOMPRESS_DEBUG=1`` to see the traceback of a user error.
    """
    debug = os.environ.get("AUTOCOMPRESS_DEBUG") == "1"
    warnings.showwarning = show_python_warning
    warnings.simplefilter("always", AutocompressWarning)  # print_warning dedupes per command
    try:
        cli.main(args=argv, prog_name="autocompress", standalone_mode=False)
    except click.exceptions.Abort:
        print_error("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        print_error("interrupted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except AutocompressError as exc:
        if debug:
            raise
        print_error(with_cli_hint(exc))
        sys.exit(exc.exit_code)
    sys.exit(0)
