"""The training loop: loss falls, resume equals uninterrupted, clipping, NaN stop, retrace guard,
truncated-BPTT stream (its reset: tests/core/test_sequence.py)."""

import json
import math
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rnn_jax import readout, training
from rnn_jax.cells import get_cell
from rnn_jax.training import Checkpointer
from rnn_jax.unroll import unroll

CELL = get_cell("vanilla")


def delay_task_params(key, hidden=8):
    key_cell, key_out = jax.random.split(key)
    return (CELL.init(key_cell, 1, hidden), readout.init_linear(key_out, hidden, 1))


def delay_loss(params, batch, key, stream):
    """Predict the previous input: y(t) = x(t-1)."""
    del key
    xs, ys = batch
    hs, _ = unroll(CELL, params[0], xs)
    loss = jnp.mean((readout.linear(params[1], hs) - ys) ** 2)
    return loss, ({"mse": loss}, stream)


@jax.jit
def delay_batch(step):
    xs = jax.random.normal(jax.random.fold_in(jax.random.key(1), step), (16, 6, 1))
    return xs, jnp.pad(xs[:, :-1], ((0, 0), (1, 0), (0, 0)))


OPTIMIZER = training.make_optimizer("adam", 0.03, clip_norm=1.0)
TRAIN_STEP = training.make_train_step(delay_loss, OPTIMIZER)  # shared: compiled once for the file


def new_state(optimizer=OPTIMIZER, seed=0):
    params = delay_task_params(jax.random.key(seed))
    return training.init_state(params, optimizer, jax.random.key(seed + 100))


def test_loss_falls_and_step_traced_once():
    # its own step: under pytest-xdist, other tests of this file may have traced TRAIN_STEP
    # with a restored (differently typed) state before this one runs
    step = training.make_train_step(delay_loss, OPTIMIZER)
    state, history = training.fit(new_state(), step, delay_batch, num_steps=150, log_every=10)
    assert int(state.step) == 150
    assert [r["step"] for r in history] == list(range(10, 151, 10))
    assert history[-1]["loss"] < 0.2 * history[0]["loss"]
    assert step.num_traces() == 1  # retrace guard: one compile for all 150 steps


@pytest.mark.parametrize("name, lr", [("sgd", 0.1), ("adam", 0.1), ("rmsprop", 0.03),
                                      ("adagrad", 0.5)])
def test_every_optimizer_converges_to_the_known_optimum(name, lr):
    """Minimise ||w - w*||^2 from w = 0: every optimiser must end near w*."""
    w_star = jnp.array([1.0, -2.0, 0.5])

    def loss_fn(params, batch, key, stream):
        return jnp.sum((params - w_star) ** 2), ({}, stream)

    optimizer = training.make_optimizer(name, lr, clip_norm=10.0)
    state = training.init_state(jnp.zeros(3), optimizer, jax.random.key(0))
    state, history = training.fit(state, training.make_train_step(loss_fn, optimizer),
                                  lambda s: None, num_steps=300, log_every=300)
    np.testing.assert_allclose(state.params, w_star, atol=0.05)
    assert history[-1]["loss"] < 1e-2


def test_unknown_optimizer_and_schedule():
    with pytest.raises(ValueError, match="unknown optimizer 'adamw2'; expected one of"):
        training.make_optimizer("adamw2", 0.1)
    with pytest.raises(ValueError, match="unknown schedule"):
        training.make_schedule("bogus", 0.1, num_steps=10)
    schedule = training.make_schedule("cosine", 0.1, num_steps=10)
    assert float(schedule(0)) == pytest.approx(0.1) and float(schedule(10)) == pytest.approx(0.0)


def test_warmup_cosine_takes_a_traced_rate():
    """A population member's rate is traced: linear warm-up to it, then cosine decay to 0."""
    values = jax.jit(lambda lr: jnp.stack([training.make_schedule(
        "warmup_cosine", lr, num_steps=10, warmup_steps=2)(s) for s in (0, 1, 2, 6, 10)]))(0.4)
    expected = [0.0, 0.2, 0.4, 0.4 * 0.5 * (1 + math.cos(math.pi * 4 / 8)), 0.0]
    assert values.tolist() == pytest.approx(expected, abs=1e-7)


def test_clipping_bounds_the_update_norm():
    """sgd with lr 1 after clip_by_global_norm(c): ||update|| = min(||g||, c)."""
    params = {"w": jnp.arange(1.0, 5.0)}

    def loss_fn(p, batch, key, stream):
        return 100.0 * jnp.sum(p["w"] ** 2), ({}, stream)  # ||g|| = 200 ||w|| >> c

    for clip in (0.5, 3.0):
        optimizer = training.make_optimizer("sgd", 1.0, clip_norm=clip)
        state = training.init_state(params, optimizer, jax.random.key(0))
        before = np.asarray(state.params["w"])
        state, metrics = training.make_train_step(loss_fn, optimizer)(state, None)
        step_norm = np.linalg.norm(np.asarray(state.params["w"]) - before)
        assert float(metrics["grad_norm"]) == pytest.approx(200 * np.linalg.norm(before), rel=1e-5)
        assert step_norm == pytest.approx(clip, rel=1e-5)
        assert float(metrics["update_norm"]) == pytest.approx(clip, rel=1e-5)
    # No clipping: the whole gradient is applied.
    optimizer = training.make_optimizer("sgd", 1.0)
    state = training.init_state({"w": jnp.arange(1.0, 5.0)}, optimizer, jax.random.key(0))
    _, metrics = training.make_train_step(loss_fn, optimizer)(state, None)
    assert float(metrics["update_norm"]) == pytest.approx(float(metrics["grad_norm"]), rel=1e-6)


def fit_into(tmp_path, num_steps, get_batch=delay_batch, **kwargs):
    run = training.Run.create(tmp_path, "toy", "run", {"num_steps": num_steps})
    state, history = training.fit(
        new_state(), TRAIN_STEP, get_batch,
        num_steps=num_steps, log_every=3, run=run, checkpoint_every=5, plot=False, **kwargs,
    )
    return state, history, run


def without_time(records):
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in records]


def test_resume_after_interrupt_equals_uninterrupted(tmp_path):
    reference, reference_history, reference_run = fit_into(tmp_path / "a", 17)

    def interrupted(step):
        if step == 12:  # after the step-10 checkpoint and the step-12 log line
            raise KeyboardInterrupt
        return delay_batch(step)

    with pytest.raises(KeyboardInterrupt):
        fit_into(tmp_path / "b", 17, get_batch=interrupted)
    run_b = training.Run(tmp_path / "b" / "toy" / "run")
    assert Checkpointer(run_b.checkpoint_dir).latest_step() == 10
    assert [r["step"] for r in run_b.metrics()] == [3, 6, 9, 12]

    resumed, history, run = fit_into(tmp_path / "b", 17)
    assert run.summary()["resumed_from_step"] == 10
    chex.assert_trees_all_equal(resumed.params, reference.params)  # bit for bit
    assert without_time(history) == without_time(reference_history)
    assert without_time(run.metrics()) == without_time(reference_run.metrics())  # no doubles
    assert [r["step"] for r in run.metrics()] == [3, 6, 9, 12, 15, 17]
    assert run.summary()["final"]["loss"] == reference_run.summary()["final"]["loss"]


def test_non_finite_loss_stops_with_step_and_keeps_last_good_checkpoint(tmp_path):
    def poisoned(step):
        xs, ys = delay_batch(step)
        return (xs * jnp.nan, ys) if step == 7 else (xs, ys)

    # Batch 7 is the 8th update: metrics.jsonl numbers it step 8.
    expected = (r"at step 8 \(the update on batch get_batch\(7\)\).*last checkpoint with finite "
                r"parameters is step 5 in .*checkpoints\. Try a smaller --lr")
    with pytest.raises(training.NonFiniteLossError, match=expected):
        fit_into(tmp_path, 20, get_batch=poisoned)
    checkpointer = Checkpointer(tmp_path / "toy" / "run" / "checkpoints")
    assert checkpointer.all_steps() == [5]
    restored = checkpointer.restore(new_state())
    assert int(restored.step) == 5
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(restored.params))


def test_target_stops_early_and_is_recorded(tmp_path):
    run = training.Run.create(tmp_path, "toy", "target", {})
    eval_fn = jax.jit(lambda p: {"eval_mse": delay_loss(p, delay_batch(-1), None, ())[0]})
    state, history = training.fit(
        new_state(), TRAIN_STEP, delay_batch,
        num_steps=1000, eval_fn=eval_fn, eval_every=10, log_every=10, run=run, plot=False,
        target=("eval_mse", 0.05, "<="),
    )
    assert history[-1]["eval_mse"] <= 0.05 < history[-2]["eval_mse"]
    assert int(state.step) == history[-1]["step"] < 1000
    summary = json.loads((run.path / training.SUMMARY).read_text())
    assert summary["stopped"] == "target" and summary["steps"] == int(state.step)


def test_target_direction():
    assert training.target_reached({"eval_loss": 0.1}, ("eval_loss", 0.2))
    assert not training.target_reached({"eval_loss": 0.3}, ("eval_loss", 0.2))
    assert training.target_reached({"accuracy": 0.99}, ("accuracy", 0.99))
    assert not training.target_reached({"accuracy": 0.5}, ("accuracy", 0.99))
    assert training.target_reached({"x": 0.1}, ("x", 0.2, "<="))
    assert not training.target_reached({"loss": 0.1}, ("accuracy", 0.0))


def test_stream_is_carried_and_gradients_stop_at_batch_boundaries():
    """Truncated BPTT over two chunks of one sequence: with lr 0, the carried stream equals the
    unroll of the whole sequence, and the chunk-2 gradient treats the carry as a constant."""
    params = CELL.init(jax.random.key(0), 1, 4)
    xs = jax.random.normal(jax.random.key(1), (2, 10, 1))
    chunks = [xs[:, :5], xs[:, 5:]]

    def chunk_loss(p, chunk, carry):
        hs, carry = unroll(CELL, p, chunk, carry=carry)
        return jnp.sum(hs**2), carry

    def loss_fn(p, chunk, key, stream):
        loss, carry = chunk_loss(p, chunk, stream)
        return loss, ({}, carry)

    optimizer = optax.chain(optax.clip_by_global_norm(jnp.inf), optax.sgd(0.0))
    state = training.init_state(params, optimizer, jax.random.key(2),
                                CELL.initial_carry(params, (2,)))
    train_step = training.make_train_step(loss_fn, optimizer, donate=False)
    state, _ = train_step(state, chunks[0])
    carry_after_chunk_1 = state.stream
    state, metrics = train_step(state, chunks[1])

    _, carry_full = jax.jit(lambda p, x: unroll(CELL, p, x))(params, xs)
    np.testing.assert_allclose(state.stream, carry_full, rtol=1e-5, atol=1e-6)
    truncated = jax.jit(jax.grad(lambda p: chunk_loss(p, chunks[1], carry_after_chunk_1)[0]))(
        params)
    full = jax.jit(jax.grad(
        lambda p: chunk_loss(p, chunks[1], unroll(CELL, p, chunks[0])[1])[0]))(params)
    assert float(metrics["grad_norm"]) == pytest.approx(float(optax.tree.norm(truncated)), 1e-5)
    assert float(optax.tree.norm(full)) != pytest.approx(float(metrics["grad_norm"]), 1e-3)


def interrupted_at(stop):
    def get_batch(step):
        if step == stop:
            raise KeyboardInterrupt
        return delay_batch(step)
    return get_batch


def test_a_corrupt_latest_checkpoint_falls_back_and_still_ends_like_uninterrupted(tmp_path,
                                                                                  caplog):
    reference, reference_history, _ = fit_into(tmp_path / "a", 17)
    with pytest.raises(KeyboardInterrupt):
        fit_into(tmp_path / "b", 17, get_batch=interrupted_at(12))
    checkpoints = tmp_path / "b" / "toy" / "run" / "checkpoints"
    (data,) = (checkpoints / "10" / "arrays" / "d").iterdir()
    data.write_bytes(data.read_bytes()[:-7])  # truncated
    with caplog.at_level("WARNING"):
        resumed, history, run = fit_into(tmp_path / "b", 17)
    assert f"checkpoint {checkpoints / '10'} is unreadable" in caplog.text
    assert "falling back to step 5" in caplog.text
    assert run.summary()["resumed_from_step"] == 5
    chex.assert_trees_all_equal(resumed.params, reference.params)
    assert without_time(run.metrics()) == without_time(reference_history)


def test_without_checkpoints_an_interrupted_run_starts_again_with_no_doubled_records(tmp_path):
    def fit_plain(get_batch=delay_batch):
        run = training.Run.create(tmp_path, "toy", "plain", {})
        return training.fit(new_state(), TRAIN_STEP, get_batch, num_steps=12, log_every=3, run=run,
                         plot=False)

    with pytest.raises(KeyboardInterrupt):
        fit_plain(interrupted_at(8))
    run = training.Run(tmp_path / "toy" / "plain")
    assert [r["step"] for r in run.metrics()] == [3, 6]
    _, history = fit_plain()
    assert run.summary()["resumed_from_step"] == 0
    assert [r["step"] for r in run.metrics()] == [3, 6, 9, 12]
    assert without_time(run.metrics()) == without_time(history)


def test_a_kill_while_resuming_keeps_every_record(tmp_path, monkeypatch):
    with pytest.raises(KeyboardInterrupt):
        fit_into(tmp_path, 17, get_batch=interrupted_at(12))
    metrics = tmp_path / "toy" / "run" / training.METRICS
    before = metrics.read_bytes()
    real_replace = os.replace

    def killed(src, dst):
        if str(dst).endswith(training.METRICS):
            raise KeyboardInterrupt  # between writing the new file and renaming it
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        fit_into(tmp_path, 17)
    assert metrics.read_bytes() == before  # steps 3, 6, 9, 12: none lost
    monkeypatch.setattr(os, "replace", real_replace)
    _, _, run = fit_into(tmp_path, 17)
    assert [r["step"] for r in run.metrics()] == [3, 6, 9, 12, 15, 17]


def test_a_finished_run_is_not_trained_again(tmp_path):
    run = training.Run.create(tmp_path, "toy", "target", {})
    eval_fn = jax.jit(lambda p: {"eval_mse": delay_loss(p, delay_batch(-1), None, ())[0]})
    options = dict(num_steps=1000, eval_fn=eval_fn, eval_every=10, log_every=10, plot=False,
                   target=("eval_mse", 0.05, "<="), checkpoint_every=20)
    state, _ = training.fit(new_state(), TRAIN_STEP, delay_batch, run=run, **options)
    files = {p: p.read_bytes() for p in run.path.rglob("*") if p.is_file()}
    with pytest.raises(training.RunFinished, match=rf"run {run.path} is already finished "
                                                  rf"\({int(state.step)} steps, stopped at target"):
        training.fit(new_state(), TRAIN_STEP, delay_batch, run=training.Run(run.path), **options)
    with pytest.raises(training.RunFinished):
        training.Run.create(tmp_path, "toy", "target", {})
    assert {p: p.read_bytes() for p in run.path.rglob("*") if p.is_file()} == files


def test_non_finite_loss_after_a_resume_names_the_resumed_checkpoint(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        fit_into(tmp_path, 20, get_batch=interrupted_at(12))

    def poisoned(step):
        xs, ys = delay_batch(step)
        return (xs * jnp.nan, ys) if step == 11 else (xs, ys)

    with pytest.raises(training.NonFiniteLossError,
                       match=r"at step 12 .*last checkpoint with finite parameters is step 10 in"):
        fit_into(tmp_path, 20, get_batch=poisoned)
    state = new_state()
    with pytest.raises(training.NonFiniteLossError,
                       match=r"at step 2 .*no checkpoints are saved \(checkpoint_every=0\)"):
        training.fit(state, TRAIN_STEP, lambda s: (delay_batch(s)[0] * (jnp.nan if s else 1.0),
                                                delay_batch(s)[1]), num_steps=5, log_every=5)


def test_parameters_that_become_non_finite_are_never_checkpointed(tmp_path):
    """A finite loss whose gradient overflows: the update makes the params inf, the loss of that
    step is still finite; the checkpoint at that step is refused, the previous one named."""
    def loss_fn(params, batch, key, stream):
        del key
        scale = jnp.where(batch, jnp.float32(1e38), jnp.float32(1.0))
        return jnp.sum(jnp.sin(params) * scale), ({}, stream)  # |loss| <= 2e38: finite

    optimizer = optax.sgd(10.0)  # the update -10 cos(w) 1e38 overflows
    run = training.Run.create(tmp_path, "toy", "overflow", {})
    state = training.init_state(jnp.ones(2), optimizer, jax.random.key(0))
    expected = r"parameters became non-finite by step 6 \(not saved\).*finite parameters is step 3"
    with pytest.raises(training.NonFiniteLossError, match=expected):
        training.fit(state, training.make_train_step(loss_fn, optimizer), lambda s: s == 5,
                  num_steps=9, log_every=3, checkpoint_every=3, run=run, plot=False)
    assert Checkpointer(run.checkpoint_dir).all_steps() == [3]


def test_on_update_sees_every_step_once_with_its_state():
    """training.fit's hook: called after each update with the step numbered as in metrics.jsonl."""
    seen = []
    state = training.TrainState({"w": jnp.ones(2)}, optax.sgd(0.1).init({"w": jnp.ones(2)}),
                             jnp.zeros((), jnp.int32), jax.random.key(0), ())
    step = training.make_train_step(lambda p, b, k, s: (jnp.sum(p["w"] ** 2), ({}, s)),
                                 optax.sgd(0.1))
    training.fit(state, step, lambda s: None, num_steps=5, log_every=2,
              on_update=lambda done, st: seen.append((done, int(st.step))))
    assert seen == [(s, s) for s in range(1, 6)]
