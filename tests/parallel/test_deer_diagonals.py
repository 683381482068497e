"""The closed-form Jacobian diagonals of quasi-DEER (each cell's `jacobian_diagonal`) against
`jax.jacfwd` of the cells' own steps in float64, and quasi-DEER with them against quasi-DEER
reading the diagonal off the full Jacobian (a replaced step has no closed form)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import get_cell
from rnn_jax.cells import ACTIVATIONS
from rnn_jax.parallel.deer import deer_unroll, flattener

CELLS = [("vanilla", {"activation": a}) for a in sorted(ACTIVATIONS)] + [("gru", {}),
                                                                         ("lstm", {})]


def random_case(name, options, key, batch=3, hidden=5, inputs=2):
    """Params with every bias and the carry away from zero (float64): `(cell, params, carry,
    x_proj [batch, gates])`."""
    cell = get_cell(name, **options)
    keys = jax.random.split(key, 4)
    params = cell.init(keys[0], inputs, hidden, dtype=jnp.float64)
    params = params._replace(b=jax.random.normal(keys[1], params.b.shape, jnp.float64))
    leaves, tree = jax.tree.flatten(cell.initial_carry(params, (batch,)))
    carry = jax.tree.unflatten(tree, [0.8 * jax.random.normal(k, leaf.shape, jnp.float64)
                                      for k, leaf in zip(jax.random.split(keys[2], len(leaves)),
                                                         leaves)])
    xs = jax.random.normal(keys[3], (batch, inputs), jnp.float64)
    return cell, params, carry, cell.project_inputs(params, xs)


@pytest.mark.parametrize("name, options", CELLS)
def test_closed_form_equals_the_jacobians_diagonal(name, options, key, x64):
    cell, params, carry, x_proj = random_case(name, options, key)
    flat, unflat = flattener(carry)
    closed_form = cell.jacobian_diagonal
    assert closed_form is not None
    received = flat(closed_form(params, carry, x_proj))  # [batch, D]

    def one(s, x):  # one example's flat step, for jacfwd
        return flat(cell.step(params, unflat(s[None]), x[None])[0])[0]

    jacobians = jax.vmap(jax.jacfwd(one))(flat(carry), x_proj)  # [batch, D, D]
    expected = jnp.diagonal(jacobians, axis1=-2, axis2=-1)
    np.testing.assert_allclose(received, expected, rtol=1e-12, atol=1e-12)


def test_a_replaced_step_has_no_closed_form():
    gru = get_cell("gru")
    assert gru.jacobian_diagonal is not None
    assert gru._replace(step=lambda p, h, x: gru.step(p, h, x)).jacobian_diagonal is None
    assert get_cell("mingru").jacobian_diagonal is None


@pytest.mark.parametrize("name", ["gru", "lstm"])
def test_quasi_deer_takes_the_same_iterations_either_way(name, key, x64):
    """The same diagonal numbers, so the same Newton iterates: same count, same trajectory."""
    cell = get_cell(name)
    params = cell.init(key, 2, 4, dtype=jnp.float64)
    xs = jax.random.normal(jax.random.fold_in(key, 1), (2, 30, 2), jnp.float64)
    lengths = jnp.array([30, 17])
    wrapped = cell._replace(step=lambda p, c, x: cell.step(p, c, x))  # read off the Jacobian

    @jax.jit
    def run(params, xs):
        return [deer_unroll(c, params, xs, lengths=lengths, jacobian="diagonal",
                            on_failure="return") for c in (cell, wrapped)]

    (ys, final, info), (ys_jvp, final_jvp, info_jvp) = run(params, xs)
    assert int(info.iterations) == int(info_jvp.iterations) and bool(info.converged)
    np.testing.assert_allclose(ys, ys_jvp, rtol=1e-12, atol=1e-12)
