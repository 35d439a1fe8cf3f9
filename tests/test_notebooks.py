"""The committed result notebooks re-execute to their committed outputs (strict nbval).

A change that moves a published number therefore fails here until the notebooks are re-run
with `jmvae reproduce` and committed.
"""

import ast
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from jmvae_core.pages.status import FACE_NOTEBOOKS, RESULT_NOTEBOOKS

ROOT = Path(__file__).resolve().parent.parent
ALL = sorted(set(RESULT_NOTEBOOKS) | set(FACE_NOTEBOOKS))
STRICT = [n for n in ALL if n != "status"]  # status reports execution times


def test_result_notebooks_are_committed_executed():
    for name in ALL:
        nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        meta = nb.metadata.get("papermill", {})
        assert meta and not meta.get("exception"), f"{name}.ipynb is not an executed notebook"
        assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("name", STRICT)
def test_result_notebook_reproduces_its_outputs(name):
    cmd = [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", "--nbval"]
    cmd += ["--sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg")]
    done = subprocess.run(
        [*cmd, str(ROOT / "notebooks" / f"{name}.ipynb")], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout[-4000:]


MAX_CELL_LINES = 4
LOGIC = (ast.For, ast.While, ast.FunctionDef, ast.ClassDef, ast.AsyncFor, ast.With)


@pytest.mark.parametrize("name", ALL)
def test_result_notebook_cells_are_thin_and_show_results_first(name):
    """Logic lives in the package: each code cell is at most four lines with no loop,
    function or class, and only its output shows in the book (results_first's tags)."""
    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        tags = set(cell.metadata.get("tags", []))
        if tags & {"parameters", "injected-parameters"}:
            assert tags & {"remove-cell", "hide-input"}, (name, i, tags)
            continue
        lines = [
            ln for ln in cell.source.splitlines() if ln.strip() and not ln.strip().startswith("#")
        ]
        assert len(lines) <= MAX_CELL_LINES, (name, i, cell.source)
        logic = [type(n).__name__ for n in ast.walk(ast.parse(cell.source)) if isinstance(n, LOGIC)]
        assert not logic, (name, i, logic)
        assert tags & {"remove-input", "hide-input", "remove-cell"}, (name, i, tags)
