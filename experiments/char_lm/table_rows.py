"""char_lm's table rows, read from a finished population's metrics.jsonl and summary.json:
one row per population (table.md) and the losses at each evaluation (curve.md).

Why its own module: `compare.py` builds the same rows over the populations of several runs.
"""

import math

from experiments.harness import reporting


def model_label(config) -> str:
    if config.model == "window":
        return f"window K={config.window}, {config.hidden} units"
    layers = f"{config.layers} x " if config.layers > 1 else ""
    return f"{layers}{config.cell} {config.hidden}"


def reached(pop_run, value: float) -> dict[int, tuple[int, float] | None]:
    """Per member: (step, wall_s) of the first evaluation with val_nats <= value, or None."""
    first = {}
    for row in pop_run.metrics():
        member = row.get("member", 0)
        first.setdefault(member, None)
        if first[member] is None and row.get("val_nats", math.inf) <= value:
            first[member] = (row["step"], row["wall_s"])
    return first


def population_row(config, pop_run) -> dict:
    """One table row: final validation and training loss and best validation loss over
    members, who reached --success_nats (Wilson interval) and when (each member's step),
    throughput."""
    outcomes = reporting.finals(pop_run)
    summary = pop_run.summary()
    evaluations = [r for r in pop_run.metrics() if "val_nats" in r]
    best = [{"final": {"best_val_nats": min([r["val_nats"] for r in evaluations
                                             if r["member"] == o["member"]] or [math.nan])}}
            for o in outcomes]
    first = reached(pop_run, config.success_nats)
    hits = [first.get(o["member"]) for o in outcomes]
    wall = sorted(h[1] for h in hits if h is not None)
    tokens = len(outcomes) * config.batch * config.seq_len * summary["steps"]
    return {"model": model_label(config), "members": len(outcomes),
            "params": summary["num_params"], "steps": summary["steps"],
            **reporting.metric_row(outcomes, "val_nats"),
            **reporting.metric_row(outcomes, "val_bits"),
            **reporting.metric_row(outcomes, "train_nats"),
            **reporting.metric_row(best, "best_val_nats"),
            **reporting.reached_row([h[0] if h else None for h in hits]),
            "steps_to_success": " ".join(str(h[0]) if h else "-" for h in hits),
            "median_wall_s_to_success": wall[len(wall) // 2] if wall else None,
            "wall_s": round(summary["wall_time_s"]),
            "tokens_per_s": round(tokens / summary["wall_time_s"])}


def curve_rows(pop_run) -> list[dict]:
    """Validation and training nats/token at each evaluation: mean and 95 % interval over
    members, and the mean gap (validation - training)."""
    by_step = {}
    for row in pop_run.metrics():
        if "val_nats" in row:
            by_step.setdefault(row["step"], []).append(row)
    out = []
    for step, rows in sorted(by_step.items()):
        finals = [{"final": r} for r in rows]
        gaps = [{"final": {"gap_nats": r["val_nats"] - r.get("train_nats", math.nan)}}
                for r in rows]
        out.append({"step": step, "wall_s": round(max(r["wall_s"] for r in rows)),
                    **reporting.metric_row(finals, "train_nats"),
                    **reporting.metric_row(finals, "val_nats"),
                    **reporting.metric_row(gaps, "gap_nats")})
    return out
