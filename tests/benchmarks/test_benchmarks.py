"""The benchmark programs run end to end in a tiny configuration, every implementation computes
the same model, and the paired-round arithmetic is right (no timing asserts)."""

import functools
import math
import os
import platform

import chex
import jax
import pytest

from benchmarks import implementations, memory, model, profile_step, timing, train_step

# end-to-end runs of the benchmark programs
pytestmark = pytest.mark.slow

TINY = ["--sizes", "2x8", "--time", "4", "--rounds", "1", "--steps", "1"]


def table_rows(out: str) -> list[list[str]]:
    """The cells of every data row of the Markdown tables in `out`."""
    return [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in out.splitlines() if line.startswith("| ") and not line.startswith("| cell")
            and not line.startswith("| case")]


def test_speed_table_has_every_installed_implementation_with_equal_first_losses(capsys):
    train_step.main(TINY + ["--no-settings_column"])
    out = capsys.readouterr().out
    rows = {(row[0], row[1]): row for row in table_rows(out)}
    losses_by_model = {}
    for impl in implementations.IMPLEMENTATIONS:
        if not implementations.installed(impl):
            assert implementations.skip_note(impl) in out
            continue
        row = rows[(impl.cell, impl.name)]
        # ms/step; first step s (0.00 when the compilation cache already holds the program)
        assert float(row[2]) > 0 and float(row[5]) >= 0
        losses_by_model.setdefault(impl.model, []).append(float(row[7]))
    assert set(losses_by_model) >= {"lstm", implementations.GRU_BEFORE}
    for definition, losses in losses_by_model.items():  # same weights, same batch
        assert max(losses) - min(losses) < 2e-5, (definition, losses)
    # the machine line: this machine's core count, OS and Python, whatever the CPU's maker
    (line,) = [line for line in out.splitlines() if f", {os.cpu_count()} cores; " in line]
    assert line.startswith("# ") and f"Python {platform.python_version()}" in line
    assert "process-wide settings: none" in out


def test_settings_columns_come_from_a_child_process(capsys):
    train_step.main(TINY + ["--impls", "rnn_jax.unroll", "--cells", "lstm"])
    (row,) = table_rows(capsys.readouterr().out)
    assert row[1] == "rnn_jax.unroll"
    assert float(row[8]) > 0  # keep_host_memory: ms/step, measured by the child
    assert row[9] == "-"  # no PyTorch row selected: no ratio


def _canonical_loss(impl, inputs, targets):
    """The implementation's loss as a function of `benchmarks.model` weights (so gradients of
    different implementations are comparable leaf by leaf)."""
    def loss(weights):
        params, loss_fn = implementations.loss_function(impl, weights)
        return loss_fn(params, inputs, targets)
    return jax.jit(jax.value_and_grad(loss))


def _impl(key, cell):
    (impl,) = implementations.select([key], [cell])
    return impl


# (implementation, cell, reference of the same model definition)
SAME_MODEL = [
    ("rnn_jax tokens", "lstm", "lax.scan"), ("rnn_jax.unroll", "lstm", "lax.scan"),
    ("flax", "lstm", "lax.scan"), ("haiku", "lstm", "lax.scan"), ("equinox", "lstm", "lax.scan"),
    ("torch", "lstm", "lax.scan"),
    ("rnn_jax tokens", "gru", "rnn_jax.unroll"), ("haiku", "gru", "rnn_jax.unroll"),
    ("equinox", "gru", "flax"), ("torch", "gru", "flax"),
]


def _case(cell):
    key_weights, key_batch = jax.random.split(jax.random.key(3))
    weights = model.init_weights(key_weights, cell, 7, 6, bias_scale=0.5)  # biases matter too
    return weights, *model.make_batch(key_batch, 3, 5, 7)


@functools.cache
def _reference(key, cell):
    weights, inputs, targets = _case(cell)
    return _canonical_loss(_impl(key, cell), inputs, targets)(weights)


@pytest.mark.parametrize("key, cell, reference", SAME_MODEL)
def test_implementations_of_one_model_compute_the_same_loss_and_gradients(key, cell, reference):
    impl = _impl(key, cell)
    assert impl.model == _impl(reference, cell).model
    if impl.library:
        pytest.importorskip(impl.library)
    weights, inputs, targets = _case(cell)
    ref_loss, ref_grads = _reference(reference, cell)
    if impl.library == "torch":  # its first step returns the loss before its update
        loss = implementations.make_step(impl, weights, inputs, targets)()
    else:
        loss, grads = _canonical_loss(impl, inputs, targets)(weights)
        chex.assert_trees_all_close(grads, ref_grads, rtol=2e-5, atol=2e-6)
        assert max(float(abs(g).max()) for g in jax.tree.leaves(grads)) > 1e-3
    assert math.isclose(float(loss), float(ref_loss), rel_tol=1e-5)


def test_the_two_gru_definitions_differ():
    # the reset gate before vs after the recurrent matmul: same weights, different losses
    before, after = _reference("rnn_jax.unroll", "gru")[0], _reference("flax", "gru")[0]
    assert abs(float(before) - float(after)) > 1e-4


def test_rounds_interleave_in_rotating_order():
    calls = []

    def timer(step, steps):
        calls.append(step())
        return [1.0] * steps, [1.0] * steps, [0] * steps

    steps = {name: (lambda name=name: name) for name in "abc"}
    results = timing.run_rounds(steps, rounds=4, steps=2, timer=timer)
    assert calls == list("abc" "bca" "cab" "abc")
    assert all(len(rounds) == 4 for rounds in results.values())


def test_paired_ratio_is_the_median_of_per_round_ratios():
    # scripted step times (ms) per round: the machine slows 2x in round 2, both alike
    script = {"torch": [11.0, 22.0, 18.0], "rnn_jax.unroll": [10.0, 20.0, 12.0]}
    rounds = {name: iter(ms) for name, ms in script.items()}

    def timer(name, steps):
        ms = next(rounds[name]) / 1e3
        return [ms] * steps, [2 * ms] * steps, [7] * steps

    results = timing.run_rounds({name: name for name in script}, 3, 2, timer=timer)
    impls = [_impl("torch", "lstm"), _impl("rnn_jax.unroll", "lstm")]
    firsts = {"torch": (0.1, 4.0), "rnn_jax.unroll": (1.5, 4.0)}
    rows = train_step.summarise(impls, results, firsts, batch=2, hidden=8, time_steps=5)
    ours = rows[1]
    # per round 11/10, 22/20, 18/12: median 1.1, fastest 1.1, slowest 1.5
    chex.assert_trees_all_close(ours["vs_torch"], (1.1, 1.1, 1.5))
    assert math.isclose(ours["median_ms"], 12.0) and math.isclose(ours["tokens_per_s"], 10 / 12e-3)
    assert ours["faults"] == 7
    table = train_step.format_speed(rows, settings_column=False)
    assert "| 1.10x (1.10-1.50) |" in table and "| 1 (reference) |" in table
    with pytest.raises(ValueError, match="equal, non-empty"):
        timing.paired_ratio([1.0, 2.0], [1.0])


def test_memory_case_runs_in_a_child_process(capsys):
    train_step.main(["--memory", "--memory_time", "9", "--sizes", "2x8",
                     "--memory_cases", "rnn_jax tokens:sqrt"])
    (row,) = table_rows(capsys.readouterr().out)
    assert row[:4] == ["rnn_jax tokens:sqrt", "2", "8", "9"]
    assert float(row[4]) > 0  # peak RSS in GB, read from the child's rusage


def test_profile_helper_prints_the_ops(capsys):
    profile_step.main(["rnn_jax tokens", "--batch", "2", "--hidden", "8", "--time", "3",
                       "--steps", "1", "--top", "3"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# rnn_jax token gather") and 1 <= len(lines[1:]) <= 3
    assert all(float(line.split()[0]) >= 0 for line in lines[1:])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="expected sizes as BATCHxHIDDEN"):
        train_step.parse_sizes("32")
    with pytest.raises(ValueError, match="expected implementations from"):
        implementations.select(["pytorch"], ["lstm"])
    with pytest.raises(ValueError, match="expected remat false, true, sqrt"):
        memory.parse_remat("half")
    with pytest.raises(ValueError, match="expected an implementation of the gru"):
        memory.parse_case("lax.scan:false", "gru")
    with pytest.raises(ValueError, match="expected cell in"):
        model.init_weights(jax.random.key(0), "rnn", 7, 6)
