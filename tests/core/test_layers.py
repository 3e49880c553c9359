"""The core library is plain Python: no Airflow import and no Encord SDK import, not even lazily."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "include" / "encord_ingest"


def imported_roots(path: Path) -> set[str]:
    """The top-level package of every import in a module, including imports inside functions."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("forbidden", ["airflow", "encord"])
def test_core_imports_neither_airflow_nor_the_encord_sdk(forbidden: str) -> None:
    modules = sorted(CORE.rglob("*.py"))
    assert len(modules) > 20
    offenders = [str(path.relative_to(CORE)) for path in modules if forbidden in imported_roots(path)]
    assert offenders == []
