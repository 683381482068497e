"""The notebooks are committed executed, outputs and plots included, and must stay in step.

Two kinds of test:
- the committed files (no kernel, fast): every code cell was executed, top to bottom in one
  kernel; no cell raised or wrote to stderr; a notebook that draws holds its PNGs; nothing
  volatile (timings, interpreter version) or machine-specific (paths) is stored;
- a fresh run: each notebook is executed top to bottom in a new IPython kernel (nbclient), in a
  temporary directory, and its outputs are compared with the committed ones, cell by cell: the
  same kinds of output (text, image) in the same order, and the same text once numbers are
  masked (floats move in their last digits between machines) and whitespace is collapsed
  (NumPy pads arrays to the widest number). A cell tagged `text-varies-by-machine` (e.g. text
  sampled from a trained model) is compared by kind only.

So a change to the library that alters what a notebook prints, or a notebook committed without
its outputs, fails here. Regenerate the committed outputs (only outputs and execution counts
are replaced; a notebook that raises is left untouched):

    python -m tests.notebooks.test_notebooks     # every notebook in notebooks/
    python -m tests.notebooks.test_notebooks char_lm     # one
"""

import os
import pathlib
import re
import sys
import tempfile

import nbclient
import nbformat
import pytest

pytestmark = pytest.mark.slow  # every notebook executed in a kernel
ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
VARIES_TAG = "text-varies-by-machine"
CELL_TIMEOUT_S = 900  # per cell; CI shares 2 cores between test workers
MACHINE_PATHS = ("/work", "/root", "/home", "/tmp", "/Users", "site-packages", "C:\\")
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
REGENERATE = "regenerate with `python -m tests.notebooks.test_notebooks {}`"


def execute(path: pathlib.Path) -> nbformat.NotebookNode:
    """Runs a notebook top to bottom in a fresh kernel; returns it with outputs, cleaned.

    Raises nbclient's `CellExecutionError` (naming the cell and its traceback) if a cell raises.
    """
    notebook = nbformat.read(path, as_version=4)
    env = {
        **os.environ,
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",  # figures as PNG outputs
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    with tempfile.TemporaryDirectory() as workdir:  # anything a notebook writes is thrown away
        client = nbclient.NotebookClient(
            notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3", record_timing=False,
            coalesce_streams=True, resources={"metadata": {"path": workdir}})
        client.execute(env=env)
    return clean(notebook)


def clean(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drops what changes from run to run without the notebook changing: the kernel's version."""
    notebook.metadata["language_info"] = {"name": "python"}
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
    return notebook


def output_summary(output: nbformat.NotebookNode, compare_text: bool) -> tuple:
    """An output as (kind, text): text with numbers masked and whitespace collapsed."""
    if output.output_type == "stream":
        kind, text = output.name, output.text
    elif output.output_type in ("display_data", "execute_result"):
        kind = "image/png" if "image/png" in output.data else output.output_type
        text = output.data.get("text/plain", "")
    else:  # error
        kind, text = "error", output.get("ename", "")
    if kind == "image/png" or not compare_text:
        return (kind,)
    return kind, " ".join(NUMBER.sub("#", text).split())


def notebook_summary(notebook: nbformat.NotebookNode) -> list:
    """Per code cell, its outputs as `output_summary` tuples; stderr is left out (platform
    notes)."""
    return [
        [output_summary(o, VARIES_TAG not in cell.metadata.get("tags", []))
         for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")]
        for cell in notebook.cells if cell.cell_type == "code"
    ]


def committed(path: pathlib.Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def code_cells(notebook: nbformat.NotebookNode) -> list:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def test_there_are_notebooks():
    assert NOTEBOOKS, "expected notebooks/*.ipynb, received none"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_was_executed_top_to_bottom(path):
    cells = code_cells(committed(path))
    counts = [cell.execution_count for cell in cells]
    assert counts == list(range(1, len(cells) + 1)), (
        f"{path.name}: expected execution counts 1..{len(cells)}, received {counts}; "
        + REGENERATE.format(path.stem))
    for number, cell in enumerate(cells, 1):
        kinds = [(o.output_type, o.get("name")) for o in cell.outputs]
        assert ("error", None) not in kinds, f"{path.name}: code cell {number} raised"
        assert ("stream", "stderr") not in kinds, (
            f"{path.name}: code cell {number} wrote to stderr (fix or silence the warning)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_holds_its_plots(path):
    notebook = committed(path)
    for number, cell in enumerate(code_cells(notebook), 1):
        draws = re.search(r"\bplt\.(show|plot|imshow|scatter|figure)\(", cell.source)
        images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        assert images or not draws, (
            f"{path.name}: code cell {number} draws a figure, expected an image/png output, "
            f"received {[o.output_type for o in cell.outputs]}; " + REGENERATE.format(path.stem))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_stores_nothing_volatile(path):
    notebook = committed(path)
    assert notebook.metadata.get("language_info") == {"name": "python"}, (
        f"{path.name}: expected language_info {{'name': 'python'}} (no kernel version), "
        f"received {notebook.metadata.get('language_info')}; " + REGENERATE.format(path.stem))
    for number, cell in enumerate(notebook.cells):
        assert "execution" not in cell.metadata, f"{path.name}: cell {number} stores timings"
        texts = [cell.source] + [  # image data is base64: '/tmp' can occur in it by chance
            o.get("text", "") + "".join(str(v) for k, v in o.get("data", {}).items()
                                         if k != "image/png")
            for o in cell.get("outputs", [])]
        for text in texts:
            found = [p for p in MACHINE_PATHS if p in text]
            assert not found, f"{path.name}: cell {number} shows a machine's path {found}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_matches_its_committed_outputs(path):
    fresh = notebook_summary(execute(path))
    stored = notebook_summary(committed(path))
    for number, (new, old) in enumerate(zip(fresh, stored, strict=True), 1):
        assert new == old, (
            f"{path.name}: code cell {number} now outputs\n{new}\nbut the committed copy has\n"
            f"{old}\n" + REGENERATE.format(path.stem))


def main(names: list[str]) -> None:
    paths = [ROOT / "notebooks" / f"{name.removesuffix('.ipynb')}.ipynb" for name in names]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        raise SystemExit(f"expected notebooks in notebooks/, received unknown {missing}; "
                         f"have {[p.stem for p in NOTEBOOKS]}")
    for path in paths or NOTEBOOKS:
        notebook = execute(path)  # raises before anything is written
        staging = path.with_name(f".{path.name}.partial")
        nbformat.write(notebook, staging)
        os.replace(staging, path)  # a reader never sees a half-written file
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main(sys.argv[1:])
