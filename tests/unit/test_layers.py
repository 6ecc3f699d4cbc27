"""The package's layering, checked: imports point downward only, and wire/ does no I/O.

control -> serve -> routing / upstream / discovery -> wire. ``service`` (the SDK
for gateway services) sits beside serve. A module may import its own layer and
any layer below it; the top-level ``config`` is shared data read by every layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "pointsman"

RANK = {"wire": 0, "routing": 1, "upstream": 1, "discovery": 1, "serve": 2, "service": 2,
        "control": 3}
SHARED = {"config", "routers", "__init__", "errors"}
IO_MODULES = {"asyncio", "socket", "selectors", "ssl", "time", "subprocess", "threading"}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _modules(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", sorted(RANK))
def test_imports_point_downward(layer: str) -> None:
    for path in _modules(layer):
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] != "pointsman" or len(parts) < 2 or parts[1] in SHARED:
                continue
            target = parts[1]
            assert target in RANK or target in {"cli", "__main__"}, f"{path}: {name}"
            assert RANK.get(target, 9) <= RANK[layer], (
                f"{path.relative_to(PACKAGE)} imports {name}: {layer} may not depend on {target}")


def test_wire_does_no_io() -> None:
    for path in _modules("wire"):
        for name in _imports(path):
            assert name.split(".")[0] not in IO_MODULES, f"{path.name} imports {name}"
