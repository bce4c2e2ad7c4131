"""The engine is a pure function: nothing under rebalance/engine may import Django, DRF or pydantic."""

from __future__ import annotations

import ast
from pathlib import Path

import rebalance.engine

ENGINE_DIR = Path(rebalance.engine.__file__).parent
FORBIDDEN = ("django", "rest_framework", "pydantic")


def _imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_engine_modules_import_no_web_framework() -> None:
    files = sorted(ENGINE_DIR.rglob("*.py"))
    assert len(files) >= 10
    offenders = [
        f"{path.name}: {module}"
        for path in files
        for module in _imported_modules(path)
        if module.split(".")[0] in FORBIDDEN
    ]
    assert offenders == []


def test_importing_the_engine_does_not_load_the_solver_stack() -> None:
    # Run in a fresh interpreter: the solver (numpy/scipy) is imported lazily by SOLVER runs only.
    import subprocess
    import sys

    code = (
        "import sys; import rebalance.engine; "
        "bad = [m for m in ('numpy', 'scipy', 'clarabel', 'django', 'pydantic') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=ENGINE_DIR.parent.parent, capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip() == ""
