"""Orbax checkpoints of a TrainState: exact round trip, clear errors on mismatch or corruption,
checksums of every array, fallback to the previous valid checkpoint."""

import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import training
from rnn_jax.cells import get_cell
from rnn_jax.training import Checkpointer, CorruptCheckpointError


def lstm_state(hidden=3, seed=0):
    cell = get_cell("lstm")
    params = cell.init(jax.random.key(seed), 2, hidden)
    optimizer = training.make_optimizer("adam", 0.1, clip_norm=1.0)
    stream = cell.initial_carry(params, (4,))
    return training.init_state(params, optimizer, jax.random.key(seed + 1), stream)


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


def save_steps(directory, steps, poison_step=None):
    """Checkpoints of one state at `steps`; at `poison_step` its params are NaN."""
    checkpointer = Checkpointer(directory, max_to_keep=len(steps))
    for step in steps:
        state = lstm_state()._replace(step=jnp.int32(step))
        if step == poison_step:
            state = state._replace(params=jax.tree.map(lambda a: a * jnp.nan, state.params))
        checkpointer.save(state)
    checkpointer.close()


def test_changed_array_bytes_are_detected_and_the_previous_checkpoint_is_used(tmp_path):
    """Step 5's arrays replaced by other valid orbax data (NaN params, as in a mixed-up copy):
    orbax reads them without complaint; the checksum saved with step 5 does not match."""
    save_steps(tmp_path / "run", [3, 5])
    save_steps(tmp_path / "other", [5], poison_step=5)
    arrays = tmp_path / "run" / "5" / "arrays"
    shutil.rmtree(arrays)
    shutil.copytree(tmp_path / "other" / "5" / "arrays", arrays)
    with pytest.raises(CorruptCheckpointError, match=r"checkpoint .*5 is corrupt: the bytes of "
                                                     r"\.params\.\S+ differ from the checksum"):
        Checkpointer(tmp_path / "run").restore(lstm_state())
    checkpointer = Checkpointer(tmp_path / "run")
    restored = checkpointer.restore_latest(lstm_state(seed=9))
    assert int(restored.step) == 3
    assert_trees_equal(restored.params, lstm_state().params)
    assert checkpointer.all_steps() == [3]
    checkpointer.close()
    assert (tmp_path / "run_rejected" / "5" / "arrays").is_dir()  # kept for inspection


def test_truncated_checkpoint_falls_back_then_reports_none(tmp_path):
    save_steps(tmp_path, [3, 5])
    for step in (5, 3):
        (data,) = [p for p in (tmp_path / str(step) / "arrays" / "d").iterdir()]
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    checkpointer = Checkpointer(tmp_path)
    assert checkpointer.restore_latest(lstm_state()) is None  # both bad: start from scratch
    assert checkpointer.all_steps() == []
    checkpointer.close()
    assert sorted(p.name for p in (tmp_path.parent / f"{tmp_path.name}_rejected").iterdir()) == [
        "3", "5"]


def test_a_checkpoint_of_another_model_is_an_error_not_a_fallback(tmp_path):
    save_steps(tmp_path, [3, 5])
    with pytest.raises(ValueError, match="does not match this model/optimiser"):
        Checkpointer(tmp_path).restore_latest(lstm_state(hidden=5))
    assert Checkpointer(tmp_path).all_steps() == [3, 5]
