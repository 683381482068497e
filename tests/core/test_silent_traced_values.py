"""The one policy for values `jit` cannot check (issue 26; `rnn_jax.sequence`'s docstring),
on every entry point: eagerly, lengths outside [0, time] and token ids outside the vocabulary
raise a ValueError; traced, lengths are clamped to [0, time] (so the outputs equal those of the
clamped lengths) and an out-of-vocabulary id that is read makes its outputs and the loss NaN
(never another token's row: negative ids do not wrap); ids at padded steps change nothing."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import get_cell, unroll
from rnn_jax.parallel.deer import deer_unroll
from rnn_jax.parallel.linear_cells import parallel_unroll
from rnn_jax.seq2seq import Decoder, Encoder, Seq2Seq, decode, model
from rnn_jax.tokens import unroll_tokens
from rnn_jax.unroll import init_stack, unroll_stack

TIME = 5
OUT_OF_RANGE = jnp.array([TIME + 3, -2, 2])  # traced: the whole sequence, empty, 2 steps
CLAMPED = jnp.array([TIME, 0, 2])


def _inputs(input_size=3):
    return jax.random.normal(jax.random.key(1), (3, TIME, input_size))


ENTRY_POINTS = {  # name -> (cell, params maker, run(cell, params, xs, lengths))
    "unroll": ("lstm", lambda c, k: c.init(k, 3, 4),
               lambda c, p, x, n: unroll(c, p, x, lengths=n, reverse=True)),
    "unroll_stack": ("gru", lambda c, k: init_stack(k, [c, c], 3, [3, 3], bidirectional=True),
                     lambda c, p, x, n: unroll_stack([c, c], p, x, lengths=n, residual=True,
                                                     bidirectional=True)),
    "deer_unroll": ("gru", lambda c, k: c.init(k, 3, 4),
                    lambda c, p, x, n: deer_unroll(c, p, x, lengths=n, jacobian="diagonal",
                                                   damping=0.5)[:2]),
    "parallel_unroll": ("mingru", lambda c, k: c.init(k, 3, 4),
                        lambda c, p, x, n: parallel_unroll(c, p, x, lengths=n, reverse=True)),
}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_traced_lengths_are_clamped_and_concrete_ones_raise(entry):
    name, make, run = ENTRY_POINTS[entry]
    cell = get_cell(name)
    params, xs = make(cell, jax.random.key(0)), _inputs()
    with pytest.raises(ValueError, match=r"lengths in \[0, 5\].*received min -2 and max 8"):
        run(cell, params, xs, OUT_OF_RANGE)
    traced = jax.jit(functools.partial(run, cell))(params, xs, OUT_OF_RANGE)
    chex.assert_trees_all_close(traced, run(cell, params, xs, CLAMPED), rtol=1e-5, atol=1e-5)
    # any array-like of ints: a Python list equals the array
    chex.assert_trees_all_close(run(cell, params, xs, [5, 0, 2]), run(cell, params, xs, CLAMPED))


def test_unroll_tokens_lengths_and_out_of_vocabulary_ids():
    cell, vocab = get_cell("gru"), 6
    params = cell.init(jax.random.key(0), 3, 4)
    embedding = jax.random.normal(jax.random.key(2), (vocab, 3))
    tokens = jnp.array([[1, 2, 3, 4, 5], [1, 2, -1, 9, 9], [0, 1, 2, 3, 4]])
    with pytest.raises(ValueError, match=r"tokens in \[0, 6\).*received min -1 and max 9"):
        unroll_tokens(cell, params, embedding, tokens, lengths=jnp.array([5, 2, 5]))
    clean = tokens.at[1, 2:].set(0)
    for backward in ("handwritten", "autodiff"):
        run = jax.jit(lambda t, n, b=backward: unroll_tokens(cell, params, embedding, t,
                                                             lengths=n, backward=b))
        # padded ids are never read; traced lengths clamped
        chex.assert_trees_all_close(run(tokens, jnp.array([9, 2, -1])),
                                    run(clean, jnp.array([5, 2, 0])), rtol=1e-6, atol=1e-6)
        for bad in (vocab, -1):  # a read id outside: NaN from that step on, in that row only
            ys, carry = run(clean.at[0, 3].set(bad), jnp.array([5, 2, 5]))
            assert np.isnan(ys[0, 3:]).all() and np.isnan(carry[0]).all()
            assert np.isfinite(ys[0, :3]).all() and np.isfinite(ys[1:]).all()


@functools.cache
def _seq2seq():
    m = Seq2Seq(Encoder(get_cell("gru")), Decoder(get_cell("gru"), "additive"))
    return m, model.init(jax.random.key(0), m, 7, embed_size=3, hidden_size=4)


def test_seq2seq_traced_lengths_are_clamped():
    m, params = _seq2seq()
    source = jnp.array([[3, 4, 5, 6], [4, 4, 3, 0], [5, 3, 0, 0]])
    targets = jnp.array([[3, 4, 2], [5, 2, 0], [6, 6, 2]])
    run = jax.jit(lambda sl, tl: model.loss_and_metrics(m, params, source, sl, targets, tl))
    with pytest.raises(ValueError, match=r"source lengths in \[1, 4\].*max 7"):
        model.loss_and_metrics(m, params, source, jnp.array([7, 3, 2]), targets,
                               jnp.array([3, 2, 3]))
    expected = model.loss_and_metrics(m, params, source, [4, 3, 2], targets, [3, 2, 3])
    chex.assert_trees_all_close(run(jnp.array([7, 3, 2]), jnp.array([3, 2, 9])), expected,
                                rtol=1e-6)
    # a negative source length is an empty source, as 0 is (zero weights, initial carry)
    chex.assert_trees_all_close(run(jnp.array([-3, 3, 2]), jnp.array([3, 2, 3])),
                                run(jnp.array([0, 3, 2]), jnp.array([3, 2, 3])))
    decoded = decode.Decoded(targets, jnp.array([3, 2, 3]), jnp.zeros(3), None)
    accuracy = jax.jit(decode.accuracy)(decoded, targets, jnp.array([9, 2, 3]))
    chex.assert_trees_all_close(accuracy, decode.accuracy(decoded, targets, jnp.array([3, 2, 3])))


@pytest.mark.parametrize("where", ["source", "target", "last_label"])
@pytest.mark.parametrize("bad", [7, -1])
def test_seq2seq_out_of_vocabulary_ids_make_the_loss_nan(where, bad):
    m, params = _seq2seq()
    source = jnp.array([[3, 4, 5, 6], [4, 4, 3, 0]])
    targets = jnp.array([[3, 4, 2], [5, 2, 0]])
    sl, tl = jnp.array([4, 3]), jnp.array([3, 2])
    run = jax.jit(lambda s, t: model.loss_and_metrics(m, params, s, sl, t, tl)[0])
    clean = run(source, targets)
    assert np.isfinite(clean)
    # ids at padded steps are never read
    np.testing.assert_allclose(run(source.at[1, 3].set(bad), targets.at[1, 2].set(bad)), clean,
                               rtol=1e-6)
    if where == "source":
        source = source.at[0, 1].set(bad)
    else:
        targets = targets.at[0, 0 if where == "target" else 2].set(bad)
    with pytest.raises(ValueError, match=rf"{where.split('_')[0].replace('last', 'target')} "
                                         r"tokens in \[0, 7\)"):
        model.loss_and_metrics(m, params, source, sl, targets, tl)
    assert np.isnan(run(source, targets))
