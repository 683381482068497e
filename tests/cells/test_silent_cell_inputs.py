"""A cell's `step` checks the shapes it is given (issue 26): a raw input `x` where
`project_inputs(params, x)` belongs (one input feature, as in parity, used to broadcast
silently), a projection of the wrong width, or a carry of another batch size is a ValueError
naming the expected and the received shape, eagerly and at trace time under `jit`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax.cells import get_cell

NAMES = ("vanilla", "irnn", "lstm", "output_feedback", "urnn", "gru", "gru_torch")
HIDDEN = 4


def _setup(name, input_size=1):
    cell = get_cell(name)
    params = cell.init(jax.random.key(0), input_size, HIDDEN)
    x = jax.random.normal(jax.random.key(1), (2, input_size))
    return cell, params, x


@pytest.mark.parametrize("name", NAMES)
def test_raw_input_to_step_is_refused(name):
    cell, params, x = _setup(name)
    carry = cell.initial_carry(params, (2,))
    width = cell.project_inputs(params, x).shape[-1]
    message = rf"step expected x_proj \[\.\.\., {width}\].*received shape \(2, 1\)"
    with pytest.raises(ValueError, match=message):
        cell.step(params, carry, x)
    with pytest.raises(ValueError, match=message):  # at trace time, before anything runs
        jax.jit(cell.step)(params, carry, x)


@pytest.mark.parametrize("name", NAMES)
def test_carry_of_another_batch_size_is_refused(name):
    cell, params, x = _setup(name, input_size=3)
    x_proj = cell.project_inputs(params, x)
    with pytest.raises(ValueError, match=r"carry's batch axes to match x_proj's \(2,\)"):
        cell.step(params, cell.initial_carry(params, (3,)), x_proj)


@pytest.mark.parametrize("name", NAMES)
def test_projected_input_and_a_broadcasting_carry_still_step(name):
    """The checks refuse nothing valid: a batched carry, and a carry of batch 1 for a batch
    of 2, give the step of a plain loop over the examples."""
    cell, params, x = _setup(name, input_size=3)
    x_proj = cell.project_inputs(params, x)
    one = jax.tree.map(lambda a: a + 0.1, cell.initial_carry(params))
    both = jax.tree.map(lambda a: jnp.stack([a, a]), one)
    _, ys = cell.step(params, both, x_proj)
    _, ys_shared = cell.step(params, jax.tree.map(lambda a: a[None], one), x_proj)
    for b in range(2):
        _, y = cell.step(params, one, x_proj[b])
        np.testing.assert_allclose(ys[b], y, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(ys_shared[b], y, rtol=1e-6, atol=1e-6)


def test_lstm_wrong_width_projection_and_carry_name_the_mismatch():
    cell, params, x = _setup("lstm", input_size=3)
    carry = cell.initial_carry(params, (2,))
    x_proj = cell.project_inputs(params, x)
    with pytest.raises(ValueError,
                       match=r"expected x_proj \[\.\.\., 16\].*received shape \(2, 12\)"):
        cell.step(params, carry, x_proj[:, :12])
    bad = carry._replace(c=carry.c[:, :3])
    with pytest.raises(ValueError,
                       match=r"expected carry c \[\.\.\., 4\], received shape \(2, 3\)"):
        cell.step(params, bad, x_proj)
