"""Populations in the one loop: P = 1 equals a single run, members equal their own runs,
per-member freezing on NaN and on target, resume of a population bit for bit."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import training
from rnn_jax.training import population
from tests.training.test_loop import (
    OPTIMIZER,
    TRAIN_STEP,
    delay_batch,
    delay_loss,
    delay_task_params,
)

MEMBER_OPTIMIZER = training.make_member_optimizer("adam")
MEMBER_STEP = training.make_train_step(delay_loss, MEMBER_OPTIMIZER)


def member_state(seed, lr=0.03, clip=1.0, optimizer=MEMBER_OPTIMIZER):
    params = delay_task_params(jax.random.key(seed))
    opt_state = training.init_member_state(optimizer, params, lr=lr, clip=clip)
    return training.TrainState(params, opt_state, jnp.zeros((), jnp.int32),
                            jax.random.key(seed + 100))


def stack(states):
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)


def member_batches(seeds):
    """Member i's batch at a step is its own stream: delay_batch of a seed-shifted step."""
    @jax.jit
    def get_batch(step):
        return stack([delay_batch(step + 1000 * s) for s in seeds])
    return get_batch


def member_view(state, i):
    return jax.tree.map(lambda leaf: leaf[i], state.members)


def test_a_population_of_one_equals_the_single_run_to_float32_rounding():
    """Not bit for bit: the masked step is another XLA program, fused and rounded differently
    (the first difference, one ULP, appears after a few steps)."""
    single = training.init_state(delay_task_params(jax.random.key(0)), OPTIMIZER,
                              jax.random.key(100))
    pop = population.create(stack([single]))
    final_single, history = training.fit(single, TRAIN_STEP, delay_batch, num_steps=40,
                                      log_every=10)
    final_pop, pop_history = training.fit(pop, TRAIN_STEP, lambda s: stack([delay_batch(s)]),
                                       num_steps=40, log_every=10)
    chex.assert_trees_all_close(member_view(final_pop, 0).params, final_single.params,
                                rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose([r["loss"] for r in pop_history], [r["loss"] for r in history],
                               rtol=1e-5)
    assert [r["member"] for r in pop_history] == [0] * 4


def test_the_member_optimizer_equals_make_optimizer():
    """Learning rate and clip norm read from the optimiser state give today's updates."""
    single = training.init_state(delay_task_params(jax.random.key(0)), OPTIMIZER,
                              jax.random.key(100))
    final_single, _ = training.fit(single, TRAIN_STEP, delay_batch, num_steps=30, log_every=10)
    pop = population.create(stack([member_state(0)]))
    final_pop, _ = training.fit(pop, MEMBER_STEP, lambda s: stack([delay_batch(s)]),
                             num_steps=30, log_every=10)
    chex.assert_trees_all_close(member_view(final_pop, 0).params, final_single.params,
                                rtol=1e-6, atol=1e-7)


def separate_run(seed, lr, clip, num_steps):
    state = population.create(stack([member_state(seed, lr, clip)]))
    final, _ = training.fit(state, MEMBER_STEP, member_batches([seed]), num_steps=num_steps,
                         log_every=10)
    return member_view(final, 0)


def test_members_with_their_own_seed_data_and_values_equal_their_own_runs():
    members = [(0, 0.03, 1.0), (1, 0.01, 0.0), (2, 0.1, 0.5)]
    pop = population.create(stack([member_state(s, lr, c) for s, lr, c in members]))
    final, history = training.fit(pop, MEMBER_STEP, member_batches([0, 1, 2]), num_steps=30,
                               log_every=10)
    for i, (seed, lr, clip) in enumerate(members):
        chex.assert_trees_all_close(member_view(final, i).params,
                                    separate_run(seed, lr, clip, 30).params,
                                    rtol=1e-5, atol=1e-6)
    losses = {r["member"]: r["loss"] for r in history if r["step"] == 30}
    assert len(set(losses.values())) == 3  # different members, different numbers


def test_a_diverging_member_is_frozen_at_its_last_finite_state_and_the_others_go_on():
    poison_at = 7
    batches = member_batches([0, 1, 2])  # one jitted function: made once, compiled once

    def get_batch(step):
        xs, ys = batches(step)
        if step == poison_at - 1:  # member 1's 7th update sees a NaN
            xs = xs.at[1, 0, 0, 0].set(jnp.nan)
        return xs, ys

    new = lambda: population.create(stack([member_state(s) for s in (0, 1, 2)]))
    before, _ = training.fit(new(), MEMBER_STEP, get_batch, num_steps=poison_at - 1, log_every=3)
    final, history = training.fit(new(), MEMBER_STEP, get_batch, num_steps=20, log_every=3)
    assert np.asarray(final.diverged).tolist() == [False, True, False]
    assert np.asarray(final.stopped_at).tolist() == [0, poison_at, 0]
    assert np.asarray(final.active).tolist() == [True, False, True]
    chex.assert_trees_all_equal(member_view(final, 1).params, member_view(before, 1).params)
    assert int(member_view(final, 1).step) == poison_at - 1  # frozen before the NaN update
    for i in (0, 2):
        chex.assert_trees_all_close(member_view(final, i).params,
                                    separate_run(i, 0.03, 1.0, 20).params, rtol=1e-5, atol=1e-6)
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(final.members.params))
    member_1_steps = [r["step"] for r in history if r["member"] == 1]
    assert member_1_steps == [3, 6]  # nothing logged after it stopped (step 7, between logs)


def test_members_stop_at_their_own_target_and_the_loop_ends_when_all_have(tmp_path):
    lrs = [0.1, 0.03, 0.001]  # the slowest never reaches the target in this budget
    pop = population.create(stack([member_state(0, lr) for lr in lrs]))
    run = training.Run.create(tmp_path, "toy", "pop", {"lrs": lrs})
    final, history = training.fit(pop, MEMBER_STEP, member_batches([0, 0, 0]), num_steps=120,
                               log_every=5, target=("mse", 0.05), run=run)
    outcomes = run.summary()["members"]
    assert [o["stopped"] for o in outcomes[:2]] == ["target", "target"]
    assert outcomes[2]["stopped"] == "num_steps" and outcomes[2]["steps"] == 120
    for o in outcomes[:2]:
        assert o["final"]["mse"] <= 0.05 and o["final"]["step"] == o["steps"]
        assert max(r["step"] for r in history if r["member"] == o["member"]) == o["steps"]
    assert outcomes[0]["steps"] <= outcomes[1]["steps"]  # the larger rate gets there first
    frozen = member_view(final, 0)
    assert int(frozen.step) == outcomes[0]["steps"]  # its own update count stopped there


def test_resume_of_a_population_equals_the_uninterrupted_run(tmp_path):
    def fit(where, get_batch, lrs=(0.1, 0.03, 0.03)):
        pop = population.create(stack([member_state(i, lr) for i, lr in enumerate(lrs)]))
        run = training.Run.create(where, "toy", "pop", {"lrs": list(lrs)})
        state, history = training.fit(pop, MEMBER_STEP, get_batch, num_steps=40, log_every=4,
                                   checkpoint_every=8, target=("mse", 0.05), run=run)
        return state, run

    clean = member_batches([0, 1, 2])

    def batches(step):  # the third member's 10th update sees a NaN: it diverges
        xs, ys = clean(step)
        return (xs.at[2, 0, 0, 0].set(jnp.nan) if step == 9 else xs), ys

    reference, reference_run = fit(tmp_path / "a", batches)

    def interrupted(step):
        if step == 18:
            raise KeyboardInterrupt
        return batches(step)

    with pytest.raises(KeyboardInterrupt):
        fit(tmp_path / "b", interrupted)
    resumed, run = fit(tmp_path / "b", batches)
    assert run.summary()["resumed_from_step"] == 16
    chex.assert_trees_all_equal(resumed, reference)  # members, masks, steps: bit for bit
    drop_time = lambda rows: [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]
    assert drop_time(run.metrics()) == drop_time(reference_run.metrics())
    outcomes = lambda run: [{**o, "final": drop_time([o["final"]])} for o in
                            run.summary()["members"]]
    assert outcomes(run) == outcomes(reference_run)
    assert "diverged" in [o["stopped"] for o in run.summary()["members"]]


def test_create_rejects_states_without_one_leading_member_axis():
    with pytest.raises(ValueError, match="expected member states stacked along one leading "
                                         "axis of size P >= 1, received leading sizes"):
        population.create({"a": jnp.ones((3, 2)), "b": jnp.ones((2,))})
