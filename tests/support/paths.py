"""Where the repository's shipped files are, for tests that read them."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository's top level."""
CONFIG_DIR = ROOT / "config"
"""The shipped judge configs (``config/*.yaml``) and their JSON Schema."""
RECORDINGS = ROOT / "fixtures" / "recordings"
"""The recorded metric data the backtests and replay tests read."""
