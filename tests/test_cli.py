"""The ``cxrexplain`` command: --version and --help work, exit codes follow the contract."""

from __future__ import annotations

import subprocess
import sys

import pytest

import cxrexplain as cx
from cxrexplain.cli import main


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"cxrexplain {cx.__version__}"


def test_help_without_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert "usage: cxrexplain" in capsys.readouterr().out


def test_unknown_option_is_usage_error() -> None:
    with pytest.raises(SystemExit) as info:
        main(["--no-such-option"])
    assert info.value.code == 2


def test_console_entry_point_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cxrexplain", "--help"], capture_output=True, text=True,
        timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "usage: cxrexplain" in result.stdout
