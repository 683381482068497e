"""experiments.vanishing_gradients on the template: the gradients measurement against a
Python loop, the recall and clipping populations against their run files, bad input, and the
recall data it trains on."""

import csv
import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl import flags

from experiments.harness import command_line, driver, template
from experiments.harness.population_state import member_keys
from experiments.vanishing_gradients import experiment as vanishing_gradients
from experiments.vanishing_gradients import norms
from rnn_jax import population_plots, sequence_model, training
from rnn_jax.cells import CELLS, get_cell, lstm
from rnn_jax.data import recall
from tests.figures import assert_figure

FIELDS = {f.name: f for f in dataclasses.fields(vanishing_gradients.Config)}


def quick(tmp_path, *argv):
    return driver.call(vanishing_gradients.EXPERIMENT, ["--quick", f"--out_dir={tmp_path}", *argv])


def only_dir(path):
    (found,) = [p for p in path.iterdir() if p.is_dir()]
    return found


def test_flags_come_from_the_config_with_its_defaults():
    flag_values = flags.FlagValues()
    command_line.define_flags(vanishing_gradients.Config, flag_values)
    for name, field in FIELDS.items():
        expected = field.default
        if name == "grid":
            expected = list(expected)
        elif isinstance(expected, tuple):  # a list flag: its items as written on the line
            expected = [str(v) for v in expected]
        assert flag_values[name].default == expected, name
    config = driver.parse(vanishing_gradients.EXPERIMENT, [])
    assert (config.part, config.steps, config.hidden, config.seq_len, config.radii) == (
        "gradients", 600, 32, 100, (0.5, 0.9, 1.0, 1.1, 1.5))
    assert driver.parse(vanishing_gradients.EXPERIMENT, ["--quick"]).radii == (1.5,)
    assert driver.parse(vanishing_gradients.EXPERIMENT, ["--quick", "--radii=0.5,2"]).radii == (0.5,
                                                                                          2.0)


def loop_gradient_norms(W, U, b, V, c, xs, labels):
    """||dL(T)/dh(t)||, t = 0..T, of the vanilla tanh RNN by a Python loop: L(T) run forward
    from each h(t), differentiated with respect to h(t); geometric mean over the batch."""
    T = xs.shape[1]

    def loss_from(t, h):
        for k in range(t, T):
            h = jnp.tanh(h @ W + xs[:, k] @ U + b[None])
        logits = h @ V + c[None]
        return -jnp.sum(jax.nn.log_softmax(logits)[jnp.arange(len(labels)), labels])

    h, norms_t = jnp.zeros((xs.shape[0], W.shape[0])), []
    for t in range(T + 1):
        norms_t.append(jnp.linalg.norm(jax.grad(loss_from, argnums=1)(t, h), axis=-1))
        if t < T:
            h = jnp.tanh(h @ W + xs[:, t] @ U + b[None])
    return np.exp(np.mean(np.log(np.stack(norms_t, 1)), 0))


@pytest.mark.slow  # an end-to-end experiment run
def test_gradients_part_measures_every_cell_for_every_seed_against_a_loop(tmp_path,
                                                                          monkeypatch):
    summary = quick(tmp_path, "--seeds=2")
    run_dir = only_dir(tmp_path / "vanishing_gradients")
    config = json.loads((run_dir / "config.json").read_text())
    assert set(config) == set(FIELDS) - set(template.Base.NOT_IN_CONFIG)
    pop_dir = only_dir(run_dir)
    assert json.loads((pop_dir / "summary.json").read_text())["measurement"]
    assert not (pop_dir / "metrics.jsonl").exists()  # nothing was trained
    measured = json.loads((pop_dir / norms.MEASUREMENT).read_text())
    labels = [label for label, _, _ in norms.variants([1.5])]
    assert list(measured) == labels
    assert {name for _, name, _ in norms.variants([1.5])} == set(CELLS)
    assert np.asarray(measured["gru"]["grad"]).shape == (2, 8 + 1)  # seeds x (T + 1)
    assert measured["gru"]["bound_factor"] is None
    assert measured["vanilla_tanh_rho1.5"]["bound_factor"] == pytest.approx([1.5, 1.5],
                                                                            rel=1e-5)
    index = labels.index("vanilla_tanh_rho1.5")
    rates = []
    for seed in (0, 1):  # the member's float32 init and data, as the experiment draws them
        key = jax.random.fold_in(member_keys(seed)["init"], index)
        model = sequence_model.init(key, get_cell("vanilla"), 4, 6, 4, spectral_radius=1.5)
        xs, y = norms.member_inputs(seed, driver.parse(vanishing_gradients.EXPERIMENT, ["--quick"]))
        with jax.enable_x64(True):
            p, o = (jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), m) for m in model)
            expected = loop_gradient_norms(p.W, p.U, p.b, o.V, o.c, jnp.asarray(xs, jnp.float64),
                                           y)
            got = np.asarray(measured["vanilla_tanh_rho1.5"]["grad"][seed])
            np.testing.assert_allclose(got, expected, rtol=1e-6)
            slope = np.polyfit(np.arange(8, -1, -1), np.log(expected), 1)[0]
            rates.append(np.exp(slope))
    rows = {r["cell"]: r for r in csv.DictReader(open(run_dir / "table_gradients.csv"))}
    assert float(rows["vanilla_tanh_rho1.5"]["rate_dL_dh_mean"]) == pytest.approx(
        np.mean(rates), rel=1e-6)
    assert "| urnn |" in summary["gradients"]
    report_only_rereads_the_measurement(tmp_path, monkeypatch)  # the same run: one measurement


def report_only_rereads_the_measurement(tmp_path, monkeypatch):
    """After `quick(tmp_path, "--seeds=2")`: --report_only rewrites the table, measuring
    nothing (part of the test above, which made the run)."""
    run_dir = only_dir(tmp_path / "vanishing_gradients")
    before = (run_dir / "table_gradients.md").read_text()
    (run_dir / "table_gradients.md").unlink()
    monkeypatch.setattr(norms, "measure", lambda *a: pytest.fail("measured again"))
    quick(tmp_path, "--seeds=2", "--report_only")
    assert (run_dir / "table_gradients.md").read_text() == before


@pytest.mark.slow  # an end-to-end experiment run
def test_recall_trains_one_population_per_cell_and_delay(tmp_path):
    summary = quick(tmp_path, "--part=recall", "--seeds=2", "--grid=cell=gru,lstm",
                    "--grid=delay=1,3", "--forget_bias=0", f"--figures_dir={tmp_path / 'fig'}")
    run_dir = only_dir(tmp_path / "vanishing_gradients")
    pops = sorted(p.name for p in run_dir.iterdir() if p.is_dir())
    assert pops == ["cellgru_delay1", "cellgru_delay3", "celllstm_delay1", "celllstm_delay3"]
    rows = summary["table_recall"]
    assert [(r["cell"], r["delay"]) for r in rows] == [("gru", 1), ("gru", 3), ("lstm_fb0", 1),
                                                       ("lstm_fb0", 3)]
    for row, pop in zip(rows, pops):
        outcomes = json.loads((run_dir / pop / "summary.json").read_text())["members"]
        accuracies = [o["final"]["eval_accuracy"] for o in outcomes]
        assert row["solved"] == f"{sum(a >= 0.99 for a in accuracies)}/2"
        assert row["eval_accuracy_mean"] == pytest.approx(np.mean(accuracies))
    assert (tmp_path / "fig" / "vanishing_gradients_recall.png").exists()


def recall_points(values: dict, delays=(2, 8, 16, 32)) -> dict:
    """Synthetic recall report points: every member equal, so mean = rate, no interval."""
    return {label: [(d, {"mean": a, "ci95_low": a, "ci95_high": a},
                     {"rate": a, "wilson_low": a, "wilson_high": a}) for d, a in zip(delays, accs)]
            for label, accs in values.items()}


def test_recall_figure_log_delays_distinct_series_legend_outside(tmp_path):
    """Log delay axis ticked at the delays run; series with equal values (all 1.0 here) drawn
    side by side with their own marker and line style; the legend outside both panels."""
    import matplotlib.image

    values = {"a": [1, 1, 1, 0.5], "b": [1, 1, 1, 0.5], "c": [1, 1, 0.4, 0.3]}
    config = vanishing_gradients.Config()
    fig = vanishing_gradients.draw_recall(recall_points(values), config)
    accuracy_ax, rate_ax = fig.axes
    for ax in (accuracy_ax, rate_ax):
        assert ax.get_xscale() == "log"
        assert [t.get_text() for t in ax.get_xticklabels()] == ["2", "8", "16", "32"]
        np.testing.assert_allclose(ax.get_xticks(), [2, 8, 16, 32])
        lines = [c.lines[0] for c in ax.containers if c.get_label() in values]  # errorbars
        assert len(lines) == 3
        assert len({(line.get_marker(), line.get_linestyle()) for line in lines}) == 3
        xs = np.array([line.get_xdata() for line in lines])  # [series, delay]
        assert all(len(set(column)) == 3 for column in xs.T)  # no series on top of another
        ratios = xs / np.array([2, 8, 16, 32])
        np.testing.assert_allclose(ratios, np.repeat(ratios[:, :1], 4, 1), rtol=1e-12)  # a factor
        np.testing.assert_allclose(xs[1], [2, 8, 16, 32])  # the middle one at the delays
    (legend,) = fig.legends
    fig.canvas.draw()
    box = legend.get_window_extent()
    for ax in (accuracy_ax, rate_ax):
        assert not box.overlaps(ax.get_window_extent())
    assert sorted(t.get_text() for t in legend.get_texts()) == ["a", "b", "c", "chance"]
    population_plots.pyplot().close(fig)
    path = vanishing_gradients.plot_recall(tmp_path / "recall.png", recall_points(values), config)
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[1] > 1.5 * image.shape[0]  # two panels and legend
    assert image[..., :3].std() > 0.05  # something drawn


def test_recall_init_options_reach_the_cell():
    config = driver.parse(vanishing_gradients.EXPERIMENT, ["--quick", "--part=recall",
                                                           "--cell=lstm", "--forget_bias=0.3"])
    params = vanishing_gradients.task(config).init(jax.random.key(0))
    forget = params.cell.b.reshape(4, -1)[lstm.GATE_ORDER.index("f")]
    np.testing.assert_array_equal(forget, np.full(6, 0.3, np.float32))
    config = driver.parse(vanishing_gradients.EXPERIMENT, ["--quick", "--part=recall",
                                                     "--spectral_radius=0.7"])
    W = vanishing_gradients.task(config).init(jax.random.key(0)).cell.W
    np.testing.assert_allclose(np.abs(np.linalg.eigvals(np.asarray(W, np.float64))), 0.7,
                               rtol=1e-5)


@pytest.mark.slow  # an end-to-end experiment run
def test_clipping_compares_members_without_and_with_clipping_at_every_step(tmp_path):
    summary = quick(tmp_path, "--part=clipping", "--seeds=2", "--grid=clip=0,0.5",
                    "--log_every=1", "--optimizer=sgd", "--lr=0.1")
    run_dir = only_dir(tmp_path / "vanishing_gradients")
    pop_dir = only_dir(run_dir)
    members = json.loads((pop_dir / "config.json").read_text())["members"]
    assert [(m["seed"], m["clip"]) for m in members] == [(0, 0.0), (1, 0.0), (0, 0.5),
                                                          (1, 0.5)]
    records = [json.loads(line) for line in (pop_dir / "metrics.jsonl").read_text().splitlines()]
    by_member = {i: [r for r in records if r["member"] == i] for i in range(4)}
    assert all([r["step"] for r in rows] == list(range(1, 7)) for rows in by_member.values())
    # step 1: the same seed, the same init and batch: the same gradient; SGD's update is
    # lr * g, clipped to lr * min(||g||, 0.5) (Pascanu et al. 2013, algorithm 1)
    for unclipped, clipped in ((0, 2), (1, 3)):
        g = by_member[unclipped][0]["grad_norm"]
        assert by_member[clipped][0]["grad_norm"] == pytest.approx(g, rel=1e-6)
        assert by_member[unclipped][0]["update_norm"] == pytest.approx(0.1 * g, rel=1e-5)
        assert by_member[clipped][0]["update_norm"] == pytest.approx(0.1 * min(g, 0.5),
                                                                     rel=1e-5)
    rows = {r["clip"]: r for r in summary["table_clipping"]}
    above = [sum(r["grad_norm"] > 0.5 for r in by_member[i]) for i in (2, 3)]
    assert rows["clip 0.5"]["steps_norm_above_0.5_mean"] == pytest.approx(np.mean(above))
    assert_figure(run_dir / "clipping.png")


def test_recall_sample_targets_the_first_symbol(key):
    xs, labels = recall.sample(key, 16, 5, num_symbols=3)
    assert xs.shape == (16, 6, 3) and xs.dtype == jnp.float32 and labels.dtype == jnp.int32
    np.testing.assert_array_equal(labels, jnp.argmax(xs[:, 0], -1))
    np.testing.assert_array_equal(jnp.sum(xs, -1), 1.0)
    again, _ = recall.sample(key, 16, 5, num_symbols=3)
    np.testing.assert_array_equal(xs, again)
    with pytest.raises(ValueError, match="expected an integer delay >= 0, received -1"):
        recall.sample(key, 4, -1)
    with pytest.raises(ValueError, match="num_symbols >= 2"):
        recall.sample(key, 4, 3, num_symbols=1)


@pytest.mark.parametrize("argv, match", [
    (["--part=plots"], r"expected one of .*, received "),
    (["--radii=0.5,-1"], "--radii: expected distinct positive finite radii, received "
                         "'0.5,-1.0'"),
    (["--radii=0.5,0.5"], "--radii: expected distinct positive finite radii"),
    (["--radii=a"], "--radii: expected float values, received 'a'"),
    (["--spectral_radius=0"], "--spectral_radius: expected a positive finite radius"),
    (["--forget_bias=inf"], "--forget_bias: expected a finite bias"),
    (["--delay=-1"], "--delay: expected an integer delay >= 0, received -1"),
    (["--num_symbols=1"], "--num_symbols: expected an integer >= 2, received 1"),
    (["--eval_batch=0"], "--eval_batch: expected an integer >= 1, received 0"),
    (["--success_accuracy=0.2"], r"--success_accuracy: expected a value in \(1 / num_symbols"),
    (["--grid=cell=gru,rnn"], "--cell: expected one of"),
    (["--part=clipping", "--log_every=1"], "--grid: expected clip=0,<norm> with "
                                           "--part=clipping"),
    (["--part=clipping", "--grid=clip=0,1"], "--log_every: expected 1 with --part=clipping"),
])
def test_bad_input_is_one_line_before_anything_is_compiled_or_written(argv, match, tmp_path,
                                                                       monkeypatch):
    def compile_attempted(*args, **kwargs):
        raise AssertionError("make_train_step was called before the flags were validated")

    monkeypatch.setattr(training, "make_train_step", compile_attempted)
    monkeypatch.setattr(norms, "measure", compile_attempted)
    with pytest.raises(template.FlagError, match=match):
        quick(tmp_path, *argv)
    assert not (tmp_path / "vanishing_gradients").exists()
