"""The notebooks run top to bottom on a fresh checkout, and are committed without outputs.

They import the project's own code, so a refactor that breaks them should fail here rather than
in front of the next reader. The kernel is this interpreter, named through a kernelspec written
for the test: a `python3` kernelspec elsewhere on the machine (a user's Jupyter, another venv)
must not decide which Python, and so which envwatch, the notebooks run. The model is the tiny
trained one, so the run depends on nothing but the repository and ../shared.
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
KERNEL = "envwatch-test"
CELL_TIMEOUT_S = 600
"""A hang guard, not a speed budget: a cell that runs this long is stuck (they take seconds on two cores)."""


def test_both_notebooks_are_there() -> None:
    assert [p.name for p in NOTEBOOKS] == ["01_dataset_exploration.ipynb", "02_model_evaluation.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    """Outputs hold images of the data and numbers of one run: they bloat diffs and go stale."""
    notebook = nbformat.read(path, as_version=4)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {index} has outputs: clear them before committing"
            assert cell.execution_count is None, f"{path.name} cell {index} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path: Path, tiny_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVWATCH_NOTEBOOK_MODEL", str(tiny_onnx))
    write_kernel_spec(tmp_path / "kernels" / KERNEL)  # argv: this very interpreter
    manager = AsyncKernelManager(
        kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
    )
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook, km=manager, timeout=CELL_TIMEOUT_S, resources={"metadata": {"path": str(path.parent)}}
    )
    started = time.perf_counter()
    client.execute()  # raises CellExecutionError, with the cell and its traceback, when a cell fails
    print(f"{path.name}: {time.perf_counter() - started:.1f} s")
    images = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, f"{path.name} drew no figure"
