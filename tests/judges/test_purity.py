"""judges/ stays pure: numpy, scipy and a short list of standard modules, no global randomness.

DESIGN.md §2 and STYLE.md ("A pure core"): judges do no I/O, logging, clock or global random
state, so the daemon, backtests and tests share one deterministic behaviour.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import judges

ALLOWED_ROOTS = frozenset({"numpy", "scipy", "judges"})
ALLOWED_STDLIB = frozenset(
    {"typing", "dataclasses", "enum", "math", "collections.abc", "decimal", "__future__"}
)
PACKAGE = Path(judges.__file__).parent
SOURCES = sorted(PACKAGE.rglob("*.py"))


def _allowed(module: str) -> bool:
    return module.split(".", maxsplit=1)[0] in ALLOWED_ROOTS or module in ALLOWED_STDLIB


def _numpy_aliases(tree: ast.Module) -> set[str]:
    """Names under which the module imports numpy itself (``import numpy as np``)."""
    return {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name == "numpy"
    }


def violations(source: str) -> list[str]:
    """Disallowed imports, and any use of numpy's random module, in one module's source."""
    tree = ast.parse(source)
    found: list[str] = []
    numpy_names = _numpy_aliases(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if not _allowed(a.name)]
            found += [f"import {a.name}" for a in node.names if a.name.startswith("numpy.random")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            module = node.module or ""
            names = {a.name for a in node.names}
            if not _allowed(module) or module.startswith("numpy.random"):
                found.append(f"from {module} import ...")
            elif module == "numpy" and "random" in names:
                found.append("from numpy import random")
        elif (
            isinstance(node, ast.Attribute)
            and node.attr == "random"
            and isinstance(node.value, ast.Name)
            and node.value.id in numpy_names
        ):
            found.append(f"{node.value.id}.random (line {node.lineno})")
    return found


class TestPurity:
    """The judges package imports only what a pure numeric core needs."""

    def test_package_has_modules(self) -> None:
        """The walk finds the judge modules (so an empty walk cannot pass vacuously)."""
        names = {p.relative_to(PACKAGE).as_posix() for p in SOURCES}
        expected = {"mannwhitney/ranksum.py", "sequential/count.py", "classifier.py", "scorer.py"}
        assert expected <= names

    @pytest.mark.parametrize(
        "path", SOURCES, ids=[p.relative_to(PACKAGE).as_posix() for p in SOURCES]
    )
    def test_module_is_pure(self, path: Path) -> None:
        """No I/O, logging, clock, OS or global-random imports, no numpy.random use."""
        assert violations(path.read_text(encoding="utf-8")) == []

    @pytest.mark.parametrize(
        "source",
        [
            "import os",
            "import logging",
            "from time import monotonic",
            "import random",
            "import sys",
            "from collections import Counter",
            "import numpy as np\nnp.random.seed(1)",
            "import numpy as np\nx = np.random.normal(size=3)",
            "import numpy\nnumpy.random.shuffle(a)",
            "from numpy import random",
            "from numpy.random import default_rng",
            "import numpy.random",
        ],
    )
    def test_checker_catches(self, source: str) -> None:
        """The checker itself flags each kind of impurity."""
        assert violations(source)

    @pytest.mark.parametrize(
        "source",
        [
            "from __future__ import annotations",
            "import numpy as np\nimport numpy.typing as npt",
            "from scipy import special, stats",
            "from collections.abc import Sequence",
            "from decimal import ROUND_HALF_UP, Decimal",
            "from judges.labels import Label",
            "from .labels import Label",
        ],
    )
    def test_checker_accepts(self, source: str) -> None:
        """The allowed imports pass the checker."""
        assert violations(source) == []
