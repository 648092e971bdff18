"""Running the ``canaryd`` command in tests: in-process through ``analyzer.cli.main`` with the
output captured, or the installed console script."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from analyzer.cli import main

__all__ = ["CANARYD", "run"]

CANARYD = Path(sys.executable).parent / "canaryd"
"""The console script installed next to the test's Python."""


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``canaryd ARGV`` in-process: (exit code, stdout, stderr)."""
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err
