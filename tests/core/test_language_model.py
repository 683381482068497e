"""Recurrent and fixed-window language models against Python-loop / NumPy references."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax import test_util

from rnn_jax import get_cell, language_model
from rnn_jax.data import streams

VOCAB = 7
init_lm = jax.jit(language_model.init, static_argnums=(1, 2, 3),
                  static_argnames=("embed_size", "dtype"))


@pytest.mark.parametrize("embed_size, names", [(0, ("lstm", "vanilla")),
                                               (3, ("lstm", "vanilla")),
                                               (3, ("gru", "urnn"))])  # urnn: 2 x 5 outputs
def test_apply_equals_a_python_loop_of_steps(key, embed_size, names):
    cells = tuple(get_cell(name) for name in names)
    params = init_lm(key, cells, VOCAB, (6, 5), embed_size=embed_size)
    assert (params.embed is None) == (embed_size == 0)
    assert params.readout.V.shape == (10 if names[-1] == "urnn" else 5, VOCAB)
    tokens = jax.random.randint(key, (2, 9), 0, VOCAB)
    logits, carries = jax.jit(functools.partial(language_model.apply, cells))(params, tokens)
    assert logits.shape == (2, 9, VOCAB)
    step = jax.jit(functools.partial(language_model.step, cells))
    stream = language_model.initial_stream(cells, params, 2)
    for t in range(9):
        stream, want = step(params, stream, tokens[:, t])
        np.testing.assert_allclose(logits[:, t], want, atol=1e-5)
    chex.assert_trees_all_close(carries, stream, rtol=1e-7, atol=1e-5)


def test_dropout_only_in_training(key):
    cells = (get_cell("gru"), get_cell("gru"))
    params = init_lm(key, cells, VOCAB, (6, 6), embed_size=3)
    tokens = jax.random.randint(key, (2, 5), 0, VOCAB)
    apply = jax.jit(functools.partial(language_model.apply, cells, dropout_rate=0.5))
    plain, _ = jax.jit(functools.partial(language_model.apply, cells))(params, tokens)
    evaluated, _ = apply(params, tokens, None, None)  # no key: evaluation, no dropout
    np.testing.assert_allclose(evaluated, plain, atol=1e-6)
    dropped, _ = apply(params, tokens, None, jax.random.key(1))
    assert not np.allclose(dropped, plain, atol=1e-3)
    again, _ = apply(params, tokens, None, jax.random.key(1))
    np.testing.assert_array_equal(again, dropped)


def test_window_model_matches_a_numpy_reference(key):
    params = language_model.init_window(key, VOCAB, 3, 2, 4)
    tokens = np.asarray(jax.random.randint(key, (2, 6), 0, VOCAB))
    history = np.array([[5, 6], [1, 2]])
    window_apply = jax.jit(language_model.window_apply)
    logits, stream = window_apply(params, jnp.asarray(tokens), jnp.asarray(history))
    E, W, b = (np.asarray(a, np.float64) for a in (params.embed, params.W, params.b))
    V, c = np.asarray(params.readout.V, np.float64), np.asarray(params.readout.c, np.float64)
    for batch in range(2):
        seen = list(history[batch]) + list(tokens[batch])
        for t in range(6):
            window = seen[t : t + 3]  # the 3 tokens ending at tokens[t]
            h = np.tanh(np.concatenate([E[w] for w in window]) @ W + b)
            np.testing.assert_allclose(logits[batch, t], h @ V + c, atol=1e-5)
    np.testing.assert_array_equal(stream, tokens[:, -2:])
    # chunked with the carried window == one call; sampling steps agree too
    first, carried = window_apply(params, jnp.asarray(tokens[:, :3]), jnp.asarray(history))
    second, _ = window_apply(params, jnp.asarray(tokens[:, 3:]), carried)
    np.testing.assert_allclose(jnp.concatenate([first, second], axis=1), logits, atol=1e-6)
    _, step_logits = language_model.window_step(params, jnp.asarray(history),
                                                jnp.asarray(tokens[:, 0]))
    np.testing.assert_allclose(step_logits, logits[:, 0], atol=1e-6)
    with pytest.raises(ValueError, match="window of >= 1"):
        language_model.init_window(key, VOCAB, 0, 2, 4)


def test_eval_fn_is_the_mean_cross_entropy_of_the_whole_stream(key):
    cells = (get_cell("lstm"),)
    params = init_lm(key, cells, VOCAB, (5,), embed_size=3)
    ids = np.asarray(jax.random.randint(key, (30,), 0, VOCAB))
    data = streams.make_streams(ids, 1, 4)  # one row: the carried state spans the whole text
    apply_fn = functools.partial(language_model.apply, cells)
    eval_fn = jax.jit(language_model.make_eval_fn(
        apply_fn, streams.all_chunks(data), language_model.initial_stream(cells, params, 1)))
    metrics = eval_fn(params)
    logits, _ = apply_fn(params, jnp.asarray(ids[None, :-1]))
    want = np.mean(optax.softmax_cross_entropy_with_integer_labels(logits[0], ids[1:]))
    np.testing.assert_allclose(metrics["val_nats"], want, rtol=1e-5)
    np.testing.assert_allclose(metrics["val_bits"], want / np.log(2), rtol=1e-5)
    np.testing.assert_allclose(metrics["val_perplexity"], np.exp(want), rtol=1e-5)


def test_gradients_match_finite_differences(key, x64):
    cells = (get_cell("gru"),)
    params = init_lm(key, cells, VOCAB, (3,), embed_size=2, dtype=jnp.float64)
    tokens = jax.random.randint(key, (1, 4), 0, VOCAB)
    loss_fn = language_model.make_loss_fn(functools.partial(language_model.apply, cells))
    batch = {"inputs": tokens, "targets": jnp.roll(tokens, 1, axis=1),
             "mask": jnp.ones((1, 4)), "reset": jnp.array(False)}
    stream = language_model.initial_stream(cells, params, 1)
    test_util.check_grads(
        jax.jit(lambda p: loss_fn(p, batch, None, stream)[0]), (params,), order=1, modes=["rev"]
    )
