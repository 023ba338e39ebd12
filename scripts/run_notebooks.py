#!/usr/bin/env python3
"""Execute the notebooks in notebooks/ and save them with their outputs.

    python3 scripts/run_notebooks.py            # every notebook, in place
    python3 scripts/run_notebooks.py --check    # execute into memory only; exit 1 if a cell fails

Each notebook runs in its own folder (so ``../sample_pcaps`` resolves) on the
``python3`` kernel that ipykernel provides. A failing cell stops the run with
the cell's error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def execute(path: Path, timeout: int = 300) -> nbformat.NotebookNode:
    """Run every cell of ``path`` in a fresh kernel; raises CellExecutionError on a failing cell."""
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    return notebook


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    parser.add_argument("--check", action="store_true", help="do not write the executed notebooks back")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(NOTEBOOKS.glob("*.ipynb"))
    for path in paths:
        try:
            notebook = execute(path)
        except CellExecutionError as exc:
            print(f"{path}: a cell failed\n{exc}", file=sys.stderr)
            return 1
        if not args.check:
            nbformat.write(notebook, path)
        print(f"{path}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
