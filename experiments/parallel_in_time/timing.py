"""Wall time of the sequential scan against the parallel-in-time paths, and what Newton did.

The measuring code of `python -m experiments.parallel_in_time --mode=timing`,
`benchmarks/deer.py` and `benchmarks/linear_scan.py` (command lines over it). For one `Case`
(cell, hidden size H, length T, batch B, input width I; float32, untrained params and Gaussian
inputs, both from one key) every method is a jitted program, run forward (`ys`) and forward +
backward (the gradient of `sum(ys^2)` in the params and the inputs):

    sequential       rnn_jax.unroll: lax.scan (its default backward, hand-written BPTT where
                     the cell has a kernel, autodiff otherwise)
    associative      parallel_unroll, the plain associative scan      (minGRU, minLSTM, LRU)
    associative_log  parallel_unroll, the paper's log-space scan      (minGRU, minLSTM)
    deer             deer_unroll, jacobian="full"        (cells with a real carry)
    quasi_deer       deer_unroll, jacobian="diagonal"

The programs are timed in interleaved rounds (`experiments.harness.timing`); a speed-up is the
sequential time over the method's within a round (above 1: faster), given as its median and
range over rounds. Newton iterations, the final residual max_t |f(s(t-1), x(t)) - s(t)| and
convergence come from the forward program's first call, with `on_failure="return"`: the
method's own numbers, never a sequential fallback.
"""

import math
import statistics
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from experiments.harness import timing
from rnn_jax import results, unroll
from rnn_jax.cells import Cell, get_cell
from rnn_jax.parallel.deer import deer_unroll
from rnn_jax.parallel.linear_cells import parallel_unroll

SEQUENTIAL = "sequential"
LINEAR = {"associative": False, "associative_log": True}  # method: log_space
NEWTON = {"deer": "full", "quasi_deer": "diagonal"}  # method: jacobian
METHODS = (SEQUENTIAL, *LINEAR, *NEWTON)
PASSES = ("forward", "fwd+bwd")
COLUMNS = ["cell", "hidden", "T", "batch", "method", "forward ms",
           "forward vs sequential (median, min-max)", "fwd+bwd ms", "fwd+bwd vs sequential",
           "Newton iterations", "residual", "converged"]


class Case(NamedTuple):
    """One measured shape: xs `[batch, time, inputs]`, `hidden` units of registered `cell`."""

    cell: str
    hidden: int
    time: int
    batch: int
    inputs: int = 1


def state_size(cell: Cell, params: Any) -> int:
    """D: the numbers in one example's carry (the LSTM's (h, c): 2 * hidden)."""
    return sum(leaf.shape[-1] for leaf in jax.tree.leaves(cell.initial_carry(params)))


def timeable(cell: Cell) -> bool:
    """Whether `measure` has a parallel method for `cell`: a linear cell, or a real carry
    (DEER's Jacobians are real); decided on shapes, nothing computed."""
    if cell.linear_form is not None:
        return True
    carry = jax.eval_shape(lambda: cell.initial_carry(cell.init(jax.random.key(0), 1, 2)))
    return all(jnp.issubdtype(leaf.dtype, jnp.floating) for leaf in jax.tree.leaves(carry))


def methods_for(cell: Cell, params: Any, case: Case, full_max: float = math.inf) -> list[str]:
    """The methods that apply to `cell`: the sequential scan, then the associative scans of a
    linear cell (log space where it has that form) or DEER and quasi-DEER of any other; DEER
    is left out where its Jacobians would hold more than `full_max` numbers (T B D^2)."""
    form = cell.linear_form
    if form is not None:
        log = ["associative_log"] if form.log_coefficients is not None else []
        return [SEQUENTIAL, "associative", *log]
    size = case.time * case.batch * state_size(cell, params) ** 2
    return [SEQUENTIAL, *(m for m in NEWTON if m != "deer" or size <= full_max)]


def path(cell: Cell, method: str, *, tol: float | None = None,
         max_iterations: int = 100) -> Callable:
    """`(params, xs [batch, time, in]) -> (ys [batch, time, hidden], NewtonInfo or None)`."""
    if method == SEQUENTIAL:
        return lambda p, x: (unroll(cell, p, x)[0], None)
    if method in LINEAR:
        return lambda p, x: (parallel_unroll(cell, p, x, log_space=LINEAR[method])[0], None)
    if method in NEWTON:
        def run(p, x):
            ys, _, info = deer_unroll(cell, p, x, jacobian=NEWTON[method], tol=tol,
                                      max_iterations=max_iterations, on_failure="return")
            return ys, info
        return run
    raise ValueError(f"expected a method in {METHODS}, received {method!r}")


def operands(cell: Cell, case: Case, seed: int = 0) -> tuple[Any, jax.Array]:
    """Untrained params and Gaussian inputs `[batch, time, inputs]` (float32) from `seed`."""
    key_params, key_xs = jax.random.split(jax.random.key(seed))
    params = cell.init(key_params, case.inputs, case.hidden)
    return params, jax.random.normal(key_xs, (case.batch, case.time, case.inputs), jnp.float32)


def compiled(run: Callable, backward: bool, params: Any, xs: jax.Array
             ) -> tuple[Callable[[], Any], Any]:
    """`(call, first)`: `call()` runs the jitted forward (`run`'s output) or forward+backward
    (gradients of `sum(ys^2)` in params and xs) once and blocks; `first` is the output of
    the first call, made here (compilation included)."""
    if backward:
        function = jax.jit(jax.grad(lambda p, x: jnp.sum(run(p, x)[0] ** 2), argnums=(0, 1)))
    else:
        function = jax.jit(run)

    def call():
        return jax.block_until_ready(function(params, xs))

    return call, call()


def wall_times(calls: dict, rounds: int, steps: int) -> dict[Any, list[float]]:
    """`{name: [median wall seconds of each round]}`, the calls timed in interleaved rounds."""
    measured = timing.run_rounds(calls, rounds, steps)
    return {name: [r[0] for r in per_round] for name, per_round in measured.items()}


def speed(walls: dict, name: Any, reference: Any) -> dict:
    """`ms` (median over rounds) of `name` and its speed-up over `reference` within rounds."""
    median, low, high = timing.paired_ratio(walls[reference], walls[name])
    return {"ms": 1e3 * statistics.median(walls[name]), "speedup": median,
            "speedup_min": low, "speedup_max": high}


def measure(case: Case, *, rounds: int, steps: int, tol: float | None = None,
            max_iterations: int = 100, full_max: float = math.inf, seed: int = 0,
            methods: list[str] | None = None) -> list[dict]:
    """One row per method of `case` (`methods_for` unless given; the sequential scan always):
    `{cell, hidden, T, batch, inputs, method, forward_ms, forward_speedup(_min, _max),
    fwd+bwd_..., iterations, residual, converged}` (the last three None without Newton)."""
    if methods is not None and SEQUENTIAL not in methods:
        raise ValueError(f"expected methods that include {SEQUENTIAL!r} (the reference), "
                         f"received {methods!r}")
    cell = get_cell(case.cell)
    params, xs = operands(cell, case, seed)
    methods = methods_for(cell, params, case, full_max) if methods is None else methods
    calls, infos = {}, {}
    for method in methods:
        run = path(cell, method, tol=tol, max_iterations=max_iterations)
        for backward, name in zip((False, True), PASSES):
            calls[(method, name)], first = compiled(run, backward, params, xs)
            if not backward:
                infos[method] = jax.device_get(first[1])
    walls = wall_times(calls, rounds, steps)
    rows = []
    for method in methods:
        row = {"cell": case.cell, "hidden": case.hidden, "T": case.time, "batch": case.batch,
               "inputs": case.inputs, "method": method}
        for name in PASSES:
            measured = speed(walls, (method, name), (SEQUENTIAL, name))
            row.update({f"{name}_{k}": v for k, v in measured.items()})
        info = infos[method]
        row["iterations"] = None if info is None else int(info.iterations)
        row["residual"] = None if info is None else float(info.residual)
        row["converged"] = None if info is None else bool(info.converged)
        rows.append(row)
    return rows


def shown(row: dict) -> dict:
    """A `measure` row as the table's `COLUMNS`: ms to 0.1, ratios to 0.01, residual 1e-1."""
    out = {"cell": row["cell"], "hidden": row["hidden"], "T": row["T"], "batch": row["batch"],
           "method": row["method"]}
    for name, ratio in zip(PASSES, (COLUMNS[6], COLUMNS[8])):
        out[f"{name} ms"] = f"{row[f'{name}_ms']:.1f}"
        out[ratio] = (f"{row[f'{name}_speedup']:.2f}x ({row[f'{name}_speedup_min']:.2f}-"
                      f"{row[f'{name}_speedup_max']:.2f})")
    out["Newton iterations"] = row["iterations"]
    out["residual"] = None if row["residual"] is None else f"{row['residual']:.1e}"
    out["converged"] = None if row["converged"] is None else ("yes" if row["converged"]
                                                              else "no")
    return out


def table(rows: list[dict]) -> str:
    """`measure` rows as one Markdown table (`COLUMNS`; '-' where a method has no Newton)."""
    return results.markdown_table([shown(r) for r in rows], COLUMNS)
