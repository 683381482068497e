"""The parity sweep: success rate vs training length for several cells over seeds.

A (cell, length, seed) run succeeds when its accuracy at the training length reaches
`--success_accuracy` within `--steps`. Each run is also tested at `--test_seq_len` (length
generalisation). Writes sweep.csv (one row per run), sweep.md (the table), sweep.png.
"""

import time
from pathlib import Path

from rnn_jax import results


def aggregate(rows: list[dict]) -> list[dict]:
    """One row per (cell, seq_len): success rate, mean steps to success, mean test accuracy."""
    table = []
    for cell in dict.fromkeys(r["cell"] for r in rows):
        for seq_len in dict.fromkeys(r["seq_len"] for r in rows if r["cell"] == cell):
            group = [r for r in rows if r["cell"] == cell and r["seq_len"] == seq_len]
            solved = [r for r in group if r["solved"]]
            table.append({
                "cell": cell,
                "seq_len": seq_len,
                "success_rate": len(solved) / len(group),
                "seeds": len(group),
                "mean_steps_to_success": sum(r["steps"] for r in solved) / len(solved)
                if solved else None,
                "mean_eval_accuracy": sum(r["eval_accuracy"] for r in group) / len(group),
                "mean_test_accuracy": sum(r["test_accuracy"] for r in group) / len(group),
            })
    return table


def read_rows(run_dir: Path) -> list[dict]:
    """The per-run rows of sweep.csv with their types back."""
    import csv

    types = {"seq_len": int, "seed": int, "steps": int, "eval_accuracy": float,
             "test_accuracy": float, "solved": lambda s: s == "True"}
    with open(Path(run_dir) / "sweep.csv") as f:
        return [{k: types.get(k, str)(v) for k, v in row.items()} for row in csv.DictReader(f)]


def plot(run_dir: Path, test_seq_len: int) -> Path:
    """Draws sweep.png from sweep.csv (redraw without re-running)."""
    table = aggregate(read_rows(run_dir))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    for cell in dict.fromkeys(r["cell"] for r in table):
        rows = [r for r in table if r["cell"] == cell]
        lengths = [r["seq_len"] for r in rows]
        left.plot(lengths, [r["success_rate"] for r in rows], marker="o", label=cell)
        right.plot(lengths, [r["mean_test_accuracy"] for r in rows], marker="o", label=cell)
    left.set(xlabel="training sequence length", ylabel="success rate", ylim=(-0.05, 1.05),
             title="solved within the step budget")
    right.set(xlabel="training sequence length", ylabel=f"accuracy at T={test_seq_len}",
              ylim=(0.45, 1.02), title="length generalisation")
    lengths = sorted({r["seq_len"] for r in table})
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xticks(lengths, [str(n) for n in lengths])
        ax.minorticks_off()
        ax.legend()
    fig.tight_layout()
    path = Path(run_dir) / "sweep.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def run_sweep(config, train_one) -> dict:
    """Runs every (cell, length, seed) with `train_one` and writes the sweep files."""
    cfg = config.train
    name = cfg.run_name or (("quick_" if cfg.quick else "") +
                            f"sweep_h{cfg.hidden}_steps{cfg.steps}_seed{cfg.seed}")
    run = results.Run.create(cfg.out_dir, "parity", name, config, overwrite=cfg.overwrite)
    start, rows = time.perf_counter(), []
    for cell in config.sweep_cells:
        cache = {}  # one compiled train step per (cell, length), shared by its seeds
        for seq_len in config.sweep_lengths:
            for seed in range(cfg.seed, cfg.seed + config.sweep_seeds):
                _, final = train_one(config, cell, seq_len, seed, step_cache=cache)
                rows.append({
                    "cell": cell, "seq_len": seq_len, "seed": seed,
                    "solved": final["eval_accuracy"] >= config.success_accuracy,
                    "steps": final["step"], "eval_accuracy": final["eval_accuracy"],
                    "test_accuracy": final["test_accuracy"],
                })
                print(", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                for k, v in rows[-1].items()), flush=True)
    table = aggregate(rows)
    results.write_csv(run.path / "sweep.csv", rows)
    markdown = results.markdown_table(table)
    (run.path / "sweep.md").write_text(markdown + "\n")
    plot(run.path, config.test_seq_len)
    wall = time.perf_counter() - start
    run.write_summary({"sweep": table, "runs": len(rows), "wall_time_s": wall})
    print(markdown)
    print(f"parity sweep: {len(rows)} runs ({', '.join(config.sweep_cells)} x lengths "
          f"{list(config.sweep_lengths)} x {config.sweep_seeds} seeds) in {wall:.1f}s; "
          f"run dir {run.path}")
    return run.summary()
