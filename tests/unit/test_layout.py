"""The import direction of the layout: CLI -> modes -> core and logs; the contract never the core.

Read from the source (no import), so a module that breaks the direction is named
even when importing it would work.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "supervisor"
# The training contract: what the toolkit prepares, without running anything (job runs it;
# doctor is a command that prints job's plan).
CONTRACT = ("config", "hyperparameters", "environment", "layout", "localtree", "program",
            "sourcedir", "failure")


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.startswith("supervisor.")}


def reaching(paths, forbidden):
    return sorted(f"{path.relative_to(PACKAGE.parent)} imports {name}"
                  for path in paths for name in imported(path)
                  if any(name == f or name.startswith(f + ".") for f in forbidden))


def test_the_contract_imports_neither_the_core_nor_the_modes():
    paths = [PACKAGE / "train" / f"{name}.py" for name in CONTRACT]
    assert all(path.exists() for path in paths)
    assert [] == reaching(paths, ("supervisor.core", "supervisor.serve", "supervisor.launch",
                                  "supervisor.train.job", "supervisor.cli", "supervisor.app"))


@pytest.mark.parametrize("package", ["core", "logs"])
def test_the_core_and_the_logs_import_no_mode(package):
    paths = sorted((PACKAGE / package).glob("*.py"))
    assert [] == reaching(paths, ("supervisor.train", "supervisor.serve", "supervisor.launch",
                                  "supervisor.cli", "supervisor.app"))


def test_a_mode_is_not_imported_by_another():
    assert [] == reaching(sorted((PACKAGE / "serve").glob("*.py")), ("supervisor.train",))
    assert [] == reaching(sorted((PACKAGE / "train").glob("*.py")), ("supervisor.serve",))


def test_the_tests_import_the_checkout_they_live_in():
    import supervisor

    assert Path(supervisor.__file__).resolve().is_relative_to(PACKAGE.parent)
