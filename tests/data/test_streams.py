"""Truncated-BPTT batching: exact coverage in order, carried state, and k = T equals full BPTT."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rnn_jax import get_cell, language_model, losses, training
from rnn_jax.data import streams


@pytest.mark.parametrize("num_tokens,batch,k", [(101, 4, 7), (50, 7, 5), (9, 8, 3), (33, 1, 32)])
def test_one_epoch_covers_every_pair_exactly_once_in_order(num_tokens, batch, k):
    ids = np.arange(num_tokens, dtype=np.int32)  # token value == position
    data = streams.make_streams(ids, batch, k)
    rows = [[] for _ in range(batch)]
    for step in range(data.num_chunks):
        chunk = streams.get_chunk(data, step)
        assert chunk["inputs"].shape == (batch, k)
        assert bool(chunk["reset"]) == (step == 0)
        for b in range(batch):
            real = chunk["mask"][b] == 1
            assert np.all(real[: real.sum()])  # padding only after the real steps
            rows[b] += list(zip(chunk["inputs"][b][real], chunk["targets"][b][real]))
    pairs = [pair for row in rows for pair in row]  # rows are consecutive pieces of the text
    assert pairs == [(t, t + 1) for t in range(num_tokens - 1)]
    assert data.num_tokens == num_tokens - 1
    # the next epoch starts over, with a reset
    again = streams.get_chunk(data, data.num_chunks)
    np.testing.assert_array_equal(again["inputs"], streams.get_chunk(data, 0)["inputs"])
    assert bool(again["reset"])


def test_all_chunks_stacks_the_epoch():
    data = streams.make_streams(np.arange(40), 3, 4)
    stacked = streams.all_chunks(data)
    for j in range(data.num_chunks):
        for name in ("inputs", "targets", "mask"):
            np.testing.assert_array_equal(stacked[name][j], streams.get_chunk(data, j)[name])
    assert stacked["reset"].tolist() == [True] + [False] * (data.num_chunks - 1)


def test_bad_layout_requests_raise():
    with pytest.raises(ValueError, match="1-D integer token stream"):
        streams.make_streams(np.zeros((2, 3), np.int32), 1, 2)
    with pytest.raises(ValueError, match="at least batch_size"):
        streams.make_streams(np.arange(4), 4, 2)
    with pytest.raises(ValueError, match="chunk_length >= 1"):
        streams.make_streams(np.arange(10), 2, 0)


def _model(key, vocab=7, hidden=5, dtype=jnp.float32, names=("lstm", "gru")):
    cells = tuple(get_cell(name) for name in names)
    init = jax.jit(language_model.init, static_argnums=(1, 2, 3),
                   static_argnames=("embed_size", "dtype"))  # one compile beats eager init
    return cells, init(key, cells, vocab, (hidden,) * len(cells), embed_size=3, dtype=dtype)


def _reference_loss(cells, params, inputs, targets):
    """Full BPTT reference: a Python loop over time through every layer's `step`."""
    carries = [cell.initial_carry(p, (inputs.shape[0],)) for cell, p in zip(cells, params.layers)]
    total = 0.0
    for t in range(inputs.shape[1]):
        x = params.embed[inputs[:, t]]
        for layer, (cell, p) in enumerate(zip(cells, params.layers)):
            carries[layer], x = cell.step(p, carries[layer], cell.project_inputs(p, x))
        logits = x @ params.readout.V + params.readout.c[None]
        total = total + losses.softmax_cross_entropy(logits, targets[:, t])
    return total / inputs.shape[1]


def test_truncated_bptt_with_one_chunk_per_sequence_equals_full_bptt(key, x64):
    ids = jax.random.randint(key, (2 * 6 + 1,), 0, 7)
    data = streams.make_streams(np.asarray(ids), 2, 6)  # k = T: the whole row in one chunk
    assert data.num_chunks == 1
    cells, params = _model(key, dtype=jnp.float64, names=("lstm",))
    apply_fn = functools.partial(language_model.apply, cells)
    optimizer = optax.sgd(1.0)  # new params = params - grad, so the step reveals the gradient
    stale = jax.tree.map(lambda a: a + 1.0, language_model.initial_stream(cells, params, 2))
    state = training.init_state(params, optimizer, key, stale)  # reset must discard the stale state
    step = training.make_train_step(language_model.make_loss_fn(apply_fn), optimizer, donate=False)
    new_state, metrics = step(state, streams.get_chunk(data, 0))

    batch = streams.get_chunk(data, 0)
    reference = jax.jit(jax.value_and_grad(_reference_loss, argnums=1), static_argnums=0)
    ref_loss, ref_grads = reference(
        cells, params, jnp.asarray(batch["inputs"]), jnp.asarray(batch["targets"]))
    np.testing.assert_allclose(metrics["loss"], ref_loss, rtol=1e-12)
    loop_grads = jax.tree.map(lambda old, new: old - new, params, new_state.params)
    chex.assert_trees_all_close(loop_grads, ref_grads, rtol=1e-9, atol=1e-12)


def test_carried_state_across_chunks_equals_one_long_unroll(key):
    cells, params = _model(key)
    tokens = jax.random.randint(key, (3, 20), 0, 7)
    apply = jax.jit(functools.partial(language_model.apply, cells))
    full_logits, full_carries = apply(params, tokens)
    stream = language_model.initial_stream(cells, params, 3)
    pieces = []
    for start in range(0, 20, 5):  # chunks of 5
        logits, stream = apply(params, tokens[:, start : start + 5], stream)
        stream = jax.lax.stop_gradient(stream)  # what the loop does between batches
        pieces.append(logits)
    np.testing.assert_allclose(jnp.concatenate(pieces, axis=1), full_logits, atol=1e-5)
    chex.assert_trees_all_close(stream, full_carries, rtol=1e-7, atol=1e-5)


def test_truncation_cuts_the_gradient_at_chunk_boundaries(key):
    """With k < T the loss of chunk 2 has no gradient path into chunk 1's inputs."""
    cells, params = _model(key, names=("gru",))
    tokens = jax.random.randint(key, (2, 10), 0, 7)
    xs = params.embed[tokens]

    def second_chunk_loss(xs, truncate):
        # embed-level inputs so we can differentiate with respect to them
        hs, carries = _unroll_from_inputs(cells, params, xs[:, :5], None)
        if truncate:
            carries = jax.lax.stop_gradient(carries)
        hs, _ = _unroll_from_inputs(cells, params, xs[:, 5:], carries)
        return jnp.sum(hs)

    grad = jax.jit(jax.grad(second_chunk_loss), static_argnums=1)
    truncated, full = grad(xs, True), grad(xs, False)
    assert np.all(np.asarray(truncated[:, :5]) == 0)
    assert np.any(np.asarray(full[:, :5]) != 0)
    np.testing.assert_allclose(truncated[:, 5:], full[:, 5:], atol=1e-6)


def _unroll_from_inputs(cells, params, xs, carries):
    from rnn_jax.unroll import unroll_stack

    return unroll_stack(cells, params.layers, xs, carries=carries)
