"""Result tables: sweep CSVs and Markdown tables of run records.

Run directories (`Run`, metrics.jsonl, summary.json, curves.png) live in `rnn_jax.training`.
"""

import math
from pathlib import Path
from typing import Any

from rnn_jax.training.records import to_jsonable


def write_csv(path: str | Path, rows: list[dict]) -> Path:
    """Writes `rows` (dicts with the same keys) as CSV, e.g. a sweep's sweep.csv."""
    import csv

    path = Path(path)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(to_jsonable(rows))
    return path


def table_cell(value: Any) -> str:
    """One value as `markdown_table` writes it (floats to 3 decimals, or 4 significant digits
    below 1e-3; None and NaN as '-')."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if 0 < abs(value) < 1e-3 else f"{value:.3f}"
    return str(value)


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
    """`rows` as a Markdown table (floats to 3 decimals, or 4 significant digits below 1e-3 so
    a small loss does not read as 0.000; None and NaN as '-')."""
    columns = columns or (list(rows[0]) if rows else [])
    cell = table_cell

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
