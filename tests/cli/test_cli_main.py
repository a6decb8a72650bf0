import subprocess
import sys

from autocompress import __version__


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autocompress", *args], capture_output=True, text=True, timeout=120
    )


def test_help_lists_every_command_and_version_prints():
    result = _run("--help")
    assert result.returncode == 0
    for name in ("chips", "cost", "train", "spaces", "search", "report", "export"):
        assert name in result.stdout
    assert __version__ in _run("--version").stdout


def test_unknown_command_and_flag_fail_without_traceback():
    for args in (["frobnicate"], ["--no-such-flag"]):
        result = _run(*args)
        assert result.returncode == 2
        assert "Traceback" not in result.stderr


def test_every_help_example_keeps_its_line_breaks():
    """A backslash at the end of an example line in a docstring must be written ``\\\\``:
    a single one joins the two lines, and --help shows one line with a gap in it."""
    import re

    from click.testing import CliRunner

    from autocompress.cli import cli

    runner = CliRunner()
    for name in cli.list_commands(None):
        text = runner.invoke(cli, [name, "--help"], terminal_width=200).output
        examples = (
            text.split("Examples:", 1)[1].split("Options:", 1)[0] if "Examples:" in text else ""
        )
        joined = [line for line in examples.splitlines() if re.search(r"\S {4,}--", line)]
        assert not joined, f"{name} --help: {joined}"
