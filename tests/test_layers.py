"""The layout keeps to its drawing: the import-linter contracts of pyproject.toml (layers, what
the reading side may import, no import circles), no module importing another's private names,
and no public name of ``import digitrec`` hidden by a subpackage of the same name."""

from __future__ import annotations

import ast
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import digitrec

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(digitrec.__file__).parent


def test_imports_keep_the_contracts_of_pyproject():
    if importlib.util.find_spec("importlinter") is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    command = shutil.which("lint-imports", path=search)
    if command is None:
        pytest.skip("import-linter is installed but its lint-imports command is not on the path")
    run = subprocess.run(
        [command, "--no-cache"],  # the contracts of pyproject.toml, in ROOT
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_no_module_imports_the_private_names_of_another():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("digitrec"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                private = [name for name in private if not name.startswith("__")]
                if private:
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {private}")
    assert found == []


def test_public_names_are_not_hidden_by_subpackages():
    """``digitrec.train(...)`` stays the function: a subpackage of that name would take its
    place once imported (the training wing is ``digitrec.training`` for that reason). The tune
    door is both a subpackage and a public name, as it was before the wings."""
    hidden = [
        name
        for name in digitrec._EXPORTS
        if name != "tune" and importlib.util.find_spec(f"digitrec.{name}") is not None
    ]
    assert hidden == []
