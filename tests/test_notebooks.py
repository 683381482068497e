"""Every notebook runs top to bottom: its code cells are executed as one script in a subprocess.

Notebooks import the library and define no library code, so this keeps them in step with it.
IPython magics and shell lines (`%...`, `!...`) are skipped.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def notebook_script(path: pathlib.Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    lines = []
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        lines += [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
        lines.append("")
    return "\n".join(lines)


def test_there_are_notebooks():
    assert NOTEBOOKS, "expected notebooks/*.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path):
    script = tmp_path / (path.stem + ".py")
    script.write_text(notebook_script(path))
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"{path.name} failed:\n{result.stderr[-3000:]}"
