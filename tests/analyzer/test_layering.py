"""The rooms of analyzer/ import only the rooms below them in the flow (DESIGN.md §2).

A room is a package under analyzer/ or one of the frame's modules. Each has a rank; a module
may import its own room and any room of a lower rank, never one above (``tick/`` never imports
``api/``, a source never imports an offline tool). The check reads every import statement,
including those under ``if TYPE_CHECKING:`` and inside functions: a lazy import is still a
dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import analyzer

PACKAGE = Path(analyzer.__file__).parent
RANKS = {
    # the frame's own modules that everything may use
    "errors": 0,
    "metricdata": 0,
    "model": 1,
    "clock": 0,
    "settings": 1,
    "logs": 0,
    "telemetry": 0,
    # the rooms, in the order of the flow (a lower room never reaches up)
    "store": 2,
    "net": 2,  # the outbound URL policy and the session that enforces it
    "configs": 3,
    "sources": 4,
    "webhooks": 4,
    "tick": 5,
    "offline": 6,
    "api": 6,
    "daemon": 7,
    "demo": 8,
    "cli": 9,
}
"""Equal ranks may not import each other either (they are siblings, not layers)."""


def room_of(module: str) -> str:
    """``analyzer.tick.scheduler`` → ``tick``; ``analyzer.model`` → ``model``."""
    return module.split(".")[1]


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    return ".".join(relative.parts).removesuffix(".__init__")


def imported(path: Path) -> set[str]:
    """Every ``analyzer.*`` module a source file imports."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        out |= {n for n in names if n.startswith("analyzer.")}
    return out


def violations() -> list[str]:
    """``importer → imported`` for every import that reaches a room not below the importer."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        if name == "analyzer":
            continue
        own = room_of(name)
        for target in sorted(imported(path)):
            other = room_of(target)
            if other != own and RANKS[other] >= RANKS[own]:
                found.append(f"{name} → {target}")
    return found


class TestLayering:
    """analyzer/'s import graph follows the flow."""

    def test_every_room_has_a_rank(self) -> None:
        """Each package and module at the top of analyzer/ is ranked (a new room must be)."""
        rooms = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
        rooms |= {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
        assert rooms == set(RANKS)

    def test_no_room_reaches_up(self) -> None:
        """No module imports a room of its own rank or above (other than its own room)."""
        assert violations() == []

    @pytest.mark.parametrize(
        ("source", "expected"),
        [
            ("from analyzer.api.app import build_app\n", {"analyzer.api.app"}),
            ("import analyzer.tick.fleet as fleet\n", {"analyzer.tick.fleet"}),
            ("def f():\n    from analyzer.offline import recording\n", {"analyzer.offline"}),
            ("from . import sibling\nimport numpy\n", set()),
        ],
    )
    def test_imports_are_read_wherever_they_are(
        self, tmp_path: Path, source: str, expected: set[str]
    ) -> None:
        """The reader finds top-level, aliased and function-level imports; relative and
        third-party ones are not rooms."""
        path = tmp_path / "m.py"
        path.write_text(source)
        assert imported(path) == expected


def reexports(path: Path) -> list[str]:
    """Names a module's ``__all__`` lists that it imports rather than defines (a re-export)."""
    tree = ast.parse(path.read_text("utf-8"))
    imported: set[str] = set()
    listed: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom | ast.Import):
            imported |= {alias.asname or alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            assert isinstance(node.value, ast.List | ast.Tuple)
            listed = [e.value for e in node.value.elts if isinstance(e, ast.Constant)]
    return [name for name in listed if name in imported]


class TestOneImportPath:
    """Every public name has one import path: no module re-exports another's names."""

    def test_no_reexports(self) -> None:
        """No ``__all__`` under analyzer/ or judges/ lists an imported name."""
        roots = (PACKAGE, PACKAGE.parent / "judges")
        found = {
            str(path.relative_to(PACKAGE.parent)): names
            for root in roots
            for path in sorted(root.rglob("*.py"))
            if (names := reexports(path))
        }
        assert found == {}

    def test_a_reexport_is_seen(self, tmp_path: Path) -> None:
        """The check finds a name imported and listed, and lets a defined one pass."""
        path = tmp_path / "m.py"
        path.write_text('from a import B\n__all__ = ["B", "c"]\ndef c(): ...\n')
        assert reexports(path) == ["B"]
