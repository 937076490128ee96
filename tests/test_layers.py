"""The layering rules that import-linter cannot express (it sees external
packages only whole): only ``cloud/azure*`` imports the Azure ML SDK."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP = {".venv", "node_modules", "var", ".git", "tests", "bench", "scripts", "mutants"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _sources() -> list[Path]:
    return [
        p
        for p in ROOT.rglob("*.py")
        if not SKIP.intersection(p.relative_to(ROOT).parts[:1])
        and not p.relative_to(ROOT).parts[0].startswith(".venv")  # .venv-mlflow2 and the like
    ]


def test_only_the_azure_provider_imports_the_azure_ml_sdk() -> None:
    importers = sorted(
        str(p.relative_to(ROOT))
        for p in _sources()
        if any(n == "azure.ai.ml" or n.startswith("azure.ai.ml.") for n in _imports(p))
    )
    assert importers, "the scan found no importer at all: it is not looking at the code"
    assert all(name.startswith("cloud/azure") for name in importers), importers
