"""Orbax checkpoints of a TrainState: exact round trip, clear errors on mismatch or corruption."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import train
from rnn_jax.cells import get_cell
from rnn_jax.checkpoint import Checkpointer


def lstm_state(hidden=3, seed=0):
    cell = get_cell("lstm")
    params = cell.init(jax.random.key(seed), 2, hidden)
    optimizer = train.make_optimizer("adam", 0.1, clip_norm=1.0)
    stream = cell.initial_carry(params, (4,))
    return train.init_state(params, optimizer, jax.random.key(seed + 1), stream)


def assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_round_trip_is_exact_and_keeps_latest(tmp_path):
    state = lstm_state()
    saved = state._replace(
        params=jax.tree.map(lambda a: a + 0.5, state.params),
        step=jnp.int32(7),
        stream=jax.tree.map(lambda a: a + 2.0, state.stream),
    )
    checkpointer = Checkpointer(tmp_path, max_to_keep=2)
    assert checkpointer.latest_step() is None
    for step in (3, 5, 7):
        checkpointer.save(saved._replace(step=jnp.int32(step)))
    assert checkpointer.all_steps() == [5, 7] and checkpointer.latest_step() == 7
    restored = Checkpointer(tmp_path).restore(lstm_state(seed=9))  # template: other values
    assert_trees_equal(restored, saved)
    # The restored key draws the same numbers as the saved one.
    np.testing.assert_array_equal(
        jax.random.normal(restored.key, (3,)), jax.random.normal(saved.key, (3,))
    )


def test_mismatched_template_names_the_leaf(tmp_path):
    Checkpointer(tmp_path).save(lstm_state(hidden=3))
    expected = (
        r"does not match .*expected .params.U with shape \[2, 20\].*"
        r"received .params.U with shape \[2, 12\]"
    )
    with pytest.raises(ValueError, match=expected):
        Checkpointer(tmp_path).restore(lstm_state(hidden=5))
    other_optimizer = lstm_state()._replace(opt_state=())
    with pytest.raises(ValueError, match="does not match this model/optimiser: it holds"):
        Checkpointer(tmp_path).restore(other_optimizer)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    Checkpointer(tmp_path).save(lstm_state())
    for path in (tmp_path / "0" / "arrays").rglob("*"):
        if path.is_file():
            path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"checkpoint .*0 is unreadable \(corrupt or incomplete\)"):
        Checkpointer(tmp_path).restore(lstm_state())


def test_missing_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="no checkpoint in"):
        Checkpointer(tmp_path).restore(lstm_state())
