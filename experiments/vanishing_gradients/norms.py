"""Part `gradients` of the vanishing_gradients experiment: gradient norms at init, no training.

For every cell variant (`variants`) and every seed: a random init and random one-hot inputs of
length T (--seq_len), L(T) = cross-entropy of a random readout of the last output against a
random label. `rnn_jax.diagnostics` gives ||dL(T)/dh(t)|| for all t in one backward pass and
the spectral norms ||dh(T)/dh(t)||; both are averaged over the batch in log space (a
geometric mean), and `diagnostics.decay_rate` fits their per-step factor r:
log ||.|| = a + (T - t) log r. The vanilla cells' bound is (lambda_W lambda_phi)^(T - t)
(the notes' Jacobian bound, Pascanu, Mikolov & Bengio 2013, eq. 7).

Seeds are vmapped: one compiled measurement per variant. Measured in float64, so that norms
of 1e-40 and below stay representable (the float32 init is converted on the host).
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.harness import reporting
from experiments.harness.population_state import member_keys
from rnn_jax import (
    diagnostics,
    population_plots,
    readout,
    sequence_model,
    stats,
    training,
)
from rnn_jax.cells import CELLS, get_cell
from rnn_jax.data import recall

MEASUREMENT = "gradients.json"


def variants(radii) -> list[tuple[str, str, dict]]:
    """(label, cell name, init options) for every registered cell; vanilla per spectral
    radius, the LSTM at forget-gate bias 0 and 1."""
    rows = []
    for name in sorted(CELLS):
        if name == "vanilla":
            rows += [(f"vanilla_tanh_rho{r:g}", name, {"spectral_radius": r}) for r in radii]
        elif name == "lstm":
            rows += [(f"lstm_fb{b:g}", name, {"forget_bias": b}) for b in (0.0, 1.0)]
        else:
            rows.append((name, name, {}))
    return rows


def vanilla_activation(cell) -> str | None:
    """'tanh'/'relu'/... for vanilla cells (the bound applies), None otherwise."""
    return cell.name.split("_", 1)[1] if cell.name.startswith("vanilla_") else None


def geometric_mean(norms: jax.Array) -> jax.Array:
    """`[batch, time + 1] -> [time + 1]`: exp of the mean log norm (zeros floored)."""
    return jnp.exp(jnp.mean(jnp.log(jnp.maximum(norms, jnp.finfo(norms.dtype).tiny)), 0))


def measure_one(cell, model, xs, labels) -> tuple[jax.Array, jax.Array]:
    """One seed: `[time + 1]` geometric means of ||dL(T)/dh(t)|| and ||dh(T)/dh(t)||."""

    def loss_fn(output):  # L(T): cross-entropy of the readout of the last output
        logits = readout.linear(model.readout, output)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels)

    grads = diagnostics.gradient_norms(cell, model.cell, xs, loss_fn)
    jacobians = diagnostics.jacobian_norms(cell, model.cell, xs, final_only=True)
    return geometric_mean(grads), geometric_mean(jacobians)


def member_inputs(seed: int, config) -> tuple[jax.Array, jax.Array]:
    """A seed's inputs `[batch, T, symbols]` and labels `[batch]` (from its data key)."""
    key_xs, key_labels = jax.random.split(member_keys(seed)["data"])
    xs, _ = recall.sample(key_xs, config.batch, config.seq_len - 1, config.num_symbols)
    return xs, jax.random.randint(key_labels, (config.batch,), 0, config.num_symbols)


def measure(config, members: list[dict], run: training.Run) -> None:
    """Measures every variant for every member's seed; writes `gradients.json` into `run`:
    {label: {"grad", "jacobian": [seeds][T + 1], "bound_factor": [seeds] or None}}."""
    seeds = [m["seed"] for m in members]
    data = [member_inputs(s, config) for s in seeds]
    xs = np.stack([np.asarray(x, np.float64) for x, _ in data])
    labels = jnp.stack([y for _, y in data])
    out = {}
    for i, (label, name, options) in enumerate(variants(config.radii)):
        cell = get_cell(name)
        keys = jnp.stack([jax.random.fold_in(member_keys(s)["init"], i)
                          for s in seeds])
        models = jax.vmap(lambda k: sequence_model.init(
            k, cell, config.num_symbols, config.hidden, config.num_symbols, **options))(keys)
        models = jax.tree.map(lambda a: np.asarray(a, np.float64), models)
        with jax.enable_x64(True):
            grads, jacobians = jax.jit(jax.vmap(
                lambda m, x, y: measure_one(cell, m, x, y)))(models, xs, labels)
            activation = vanilla_activation(cell)
            factor = (jax.vmap(lambda W: diagnostics.bound_factor(W, activation))(
                models.cell.W) if activation else None)
            out[label] = training.to_jsonable(
                {"grad": grads, "jacobian": jacobians, "bound_factor": factor})
    (run.path / MEASUREMENT).write_text(json.dumps(out))


def rates(curves: dict) -> dict:
    """Per-seed fitted rates and end-to-start ratios of one variant's curves."""
    grads, jacobians = (np.asarray(curves[k], np.float64) for k in ("grad", "jacobian"))
    with jax.enable_x64(True):  # norms below float32's range keep their value
        return {"grad": np.asarray(diagnostics.decay_rate(jnp.asarray(grads))),
                "jacobian": np.asarray(diagnostics.decay_rate(jnp.asarray(jacobians))),
                "ratio": grads[:, 0] / grads[:, -1]}


def report(run: training.Run, pop_run: training.Run, config) -> tuple[list[dict], object]:
    """The table (mean and 95 % t-interval over seeds of each variant's rates) and figure."""
    measured = json.loads((pop_run.path / MEASUREMENT).read_text())
    rows = []
    for label, curves in measured.items():
        r = rates(curves)
        factor = curves["bound_factor"]
        row = {"cell": label, "seeds": len(curves["grad"]),
               "bound_factor": float(np.mean(factor)) if factor is not None else None}
        for name, key in (("rate_dL_dh", "grad"), ("rate_dhT_dhk", "jacobian")):
            d = stats.describe(r[key])
            row[f"{name}_mean"] = d["mean"]
            row[f"{name}_ci95"] = f"[{d['ci95_low']:.3f}, {d['ci95_high']:.3f}]"
        row[f"median dL/dh(0) / dL/dh(T), T={config.seq_len}"] = \
            f"{np.median(r['ratio']):.1e}"
        rows.append(row)
    columns = list(rows[0])
    table = reporting.write_table(run, "table_gradients", rows, columns)
    return table, plot(run.path / "gradients.png", measured, config.seq_len)


def plot(path, measured: dict, T: int):
    """log10 of each norm relative to its value at t = T against T - t (median over seeds);
    the vanilla cells' bound dashed."""
    plt = population_plots.pyplot()
    distance = np.arange(T, -1, -1)  # T - t for t = 0..T
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    colors = plt.cm.tab20(np.linspace(0, 1, len(measured)))
    for ax, kind, title in ((axes[0], "grad", "||dL(T)/dh(t)|| / ||dL(T)/dh(T)||"),
                            (axes[1], "jacobian", "||dh(T)/dh(t)||_2")):
        for color, (label, curves) in zip(colors, measured.items()):
            values = np.maximum(np.asarray(curves[kind], np.float64), 1e-300)  # [seeds, T + 1]
            relative = np.log10(values / values[:, -1:])
            ax.plot(distance, np.median(relative, 0), color=color, label=label)
            if curves["bound_factor"] is not None:  # the notes' bound, from the parameters
                ax.plot(distance, distance * np.log10(np.median(curves["bound_factor"])),
                        color=color, ls="--", lw=0.8)
        ax.set(xlabel="distance T - t", title=f"log10 {title} at init (dashed: bound)")
    axes[0].set_ylabel(f"log10, median over {len(values)} seeds")
    axes[0].set_ylim(-40, 20)
    axes[1].legend(fontsize=7, ncol=2)
    return population_plots.save(fig, path)
