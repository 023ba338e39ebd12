"""The notebooks in notebooks/ run clean on the bundled sample captures, and are committed
with their outputs (the plots included) so that they read well where notebooks are rendered."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from run_notebooks import execute  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _images(notebook) -> int:
    return sum(1 for cell in notebook.cells if cell.cell_type == "code"
               for output in cell.get("outputs", []) if "image/png" in output.get("data", {}))


def _errors(notebook) -> list:
    return [output for cell in notebook.cells if cell.cell_type == "code"
            for output in cell.get("outputs", []) if output.get("output_type") == "error"]


def test_there_are_the_three_notebooks():
    assert [p.name for p in NOTEBOOKS] == ["01_capture_tour.ipynb", "02_triage_failed_retrieve.ipynb",
                                           "03_walk_a_c_move_retrieve.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_without_a_failing_cell(path):
    notebook = execute(path)  # nbclient raises CellExecutionError on the first failing cell
    assert not _errors(notebook)
    assert _images(notebook) >= 3, "the notebook should show its plots"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_with_its_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code), "run scripts/run_notebooks.py before committing"
    assert _images(notebook) >= 3 and not _errors(notebook)
