"""Unrolling under padding, reversal, bidirectional and stacked composition, and bad input."""

import chex
import jax
import jax.numpy as jnp
import pytest

from rnn_jax import (
    get_cell,
    init_bidirectional,
    init_stack,
    unroll,
    unroll_bidirectional,
    unroll_stack,
)
from rnn_jax.cells import CELLS

ALL_CELLS = sorted(CELLS)
close = lambda a, b: chex.assert_trees_all_close(a, b, rtol=1e-5, atol=1e-6)


def setup(name, key, batch=3, time=6, input_size=3, hidden_size=4):
    cell = get_cell(name)
    params = cell.init(key, input_size, hidden_size)
    xs = jax.random.normal(jax.random.fold_in(key, 7), (batch, time, input_size))
    return cell, params, xs


@pytest.mark.parametrize("name", ALL_CELLS)
def test_appending_padding_changes_nothing(name, key):
    cell, params, xs = setup(name, key)
    lengths = jnp.array([6, 4, 1])
    ys, carry = unroll(cell, params, xs, lengths=lengths)
    padded = jnp.concatenate([xs, 100.0 * jnp.ones((3, 5, 3))], axis=1)
    ys_padded, carry_padded = unroll(cell, params, padded, lengths=lengths)
    close(ys_padded[:, :6], ys)
    assert not jnp.any(ys_padded[:, 6:])
    close(carry_padded, carry)


@pytest.mark.parametrize("name", ALL_CELLS)
def test_lengths_match_each_sequence_alone(name, key):
    cell, params, xs = setup(name, key)
    lengths = jnp.array([6, 4, 0])
    ys, carry = unroll(cell, params, xs, lengths=lengths)
    ys_rev, carry_rev = unroll(cell, params, xs, lengths=lengths, reverse=True)
    for b, n in enumerate(lengths.tolist()):
        alone = xs[b, :n]
        if n == 0:  # an empty sequence keeps the initial carry and emits nothing
            jax.tree.map(close, jax.tree.map(lambda a: a[b], carry),
                         cell.initial_carry(params, ()))
            continue
        ys_alone, carry_alone = unroll(cell, params, alone)
        close(ys[b, :n], ys_alone)
        assert not jnp.any(ys[b, n:])
        jax.tree.map(lambda a, c: close(a[b], c), carry, carry_alone)
        # reverse: run the reversed valid prefix alone, then flip back
        ys_rev_alone, carry_rev_alone = unroll(cell, params, alone[::-1])
        close(ys_rev[b, :n], ys_rev_alone[::-1])
        assert not jnp.any(ys_rev[b, n:])
        jax.tree.map(lambda a, c: close(a[b], c), carry_rev, carry_rev_alone)


@pytest.mark.parametrize("name", ALL_CELLS)
def test_bidirectional_under_padding_matches_each_sequence_alone(name, key):
    cell, _, xs = setup(name, key)
    params = init_bidirectional(cell, key, 3, 4)
    lengths = jnp.array([6, 3, 5])
    ys, _ = unroll_bidirectional(cell, params, xs, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        forward, _ = unroll(cell, params.forward, xs[b, :n])
        backward, _ = unroll(cell, params.backward, xs[b, :n][::-1])
        close(ys[b, :n], jnp.concatenate([forward, backward[::-1]], axis=-1))
        assert not jnp.any(ys[b, n:])


@pytest.mark.parametrize("name", ALL_CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_stack_equals_layer_by_layer_unroll(name, bidirectional, key):
    cell, _, xs = setup(name, key)
    cells = [cell, get_cell("lstm")]
    params = init_stack(key, cells, 3, [4, 4], bidirectional=bidirectional)
    lengths = jnp.array([6, 2, 4])
    ys, carries = unroll_stack(cells, params, xs, lengths=lengths, bidirectional=bidirectional)
    run = unroll_bidirectional if bidirectional else unroll
    h, expected_carries = xs, []
    for layer_cell, layer_params in zip(cells, params):
        h, c = run(layer_cell, layer_params, h, lengths=lengths)
        expected_carries.append(c)
    close(ys, h)
    close(carries, tuple(expected_carries))


def test_residual_stack_adds_skip_connections_of_equal_width(key):
    cells = [get_cell("gru")] * 3
    params = init_stack(key, cells, 3, [4, 4, 4])
    xs = jax.random.normal(key, (2, 5, 3))
    lengths = jnp.array([5, 2])
    ys, _ = unroll_stack(cells, params, xs, lengths=lengths, residual=True)
    h1, _ = unroll(cells[0], params[0], xs, lengths=lengths)  # 3 -> 4: no skip
    h2 = unroll(cells[1], params[1], h1, lengths=lengths)[0] + h1
    h3 = unroll(cells[2], params[2], h2, lengths=lengths)[0] + h2
    close(ys, h3)
    assert not jnp.any(ys[1, 2:])


def test_remat_and_unroll_factor_give_the_same_values_and_gradients(key):
    cell, params, xs = setup("lstm", key)
    lengths = jnp.array([6, 3, 5])

    def loss(params, **options):
        return jnp.sum(unroll(cell, params, xs, lengths=lengths, **options)[0] ** 2)

    plain = jax.value_and_grad(loss)(params)
    for options in ({"remat": True}, {"unroll": 3}):
        other = jax.value_and_grad(lambda p: loss(p, **options))(params)
        close(other, plain)


def test_bad_input_errors(key):
    cell, params, xs = setup("lstm", key)
    with pytest.raises(ValueError, match=r"expected 3 input features.*received xs with shape"):
        unroll(cell, params, jnp.ones((2, 5, 4)))
    with pytest.raises(ValueError, match=r"expected xs of rank 3.*received shape \(5,\)"):
        unroll(cell, params, jnp.ones((5,)))
    with pytest.raises(ValueError, match=r"expected floating-point inputs.*int32"):
        unroll(cell, params, jnp.ones((2, 5, 3), jnp.int32))
    with pytest.raises(ValueError, match=r"carry batch mismatch: xs has batch size 3"):
        unroll(cell, params, xs, carry=cell.initial_carry(params, (2,)))
    with pytest.raises(ValueError, match=r"expected lengths in \[0, 6\].*max 7"):
        unroll(cell, params, xs, lengths=jnp.array([7, 1, 1]))
    with pytest.raises(ValueError, match=r"expected lengths in \[0, 6\].*min -1"):
        unroll(cell, params, xs, lengths=jnp.array([-1, 1, 1]))
    with pytest.raises(ValueError, match=r"expected lengths of shape \(3,\), received \(2,\)"):
        unroll(cell, params, xs, lengths=jnp.array([1, 1]))
    with pytest.raises(ValueError, match=r"expected integer lengths, received dtype float32"):
        unroll(cell, params, xs, lengths=jnp.array([1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"one hidden size per cell"):
        init_stack(key, [cell, cell], 3, [4])
