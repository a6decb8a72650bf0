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
