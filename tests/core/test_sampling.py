"""Sampling: same seed same text, agreement with a Python-loop reference, greedy, top-k."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import get_cell, language_model, sampling

VOCAB = 6


@pytest.fixture(scope="module")
def model():
    cells = (get_cell("gru"),)
    init = jax.jit(language_model.init, static_argnums=(1, 2, 3), static_argnames="embed_size")
    params = init(jax.random.key(3), cells, VOCAB, (8,), embed_size=4)
    params = params._replace(readout=params.readout._replace(V=3.0 * params.readout.V))
    step_fn = functools.partial(language_model.step, cells, params)
    return step_fn, language_model.initial_stream(cells, params, 1)


def _sample(model, key, **options):
    step_fn, stream = model
    run = jax.jit(functools.partial(sampling.sample, step_fn, length=12, **options))
    return np.asarray(run(stream, jnp.array([1, 4, 2]), key))


def _reference(model, key, *, temperature=1.0, top_k=0, greedy=False):
    """The same sampler as a plain Python loop over single model steps."""
    step_fn, stream = model
    for token in [1, 4, 2]:
        stream, logits = step_fn(stream, jnp.array([token]))
    out = []
    for step_key in jax.random.split(key, 12):
        if greedy:
            token = int(jnp.argmax(logits[0]))
        else:
            scaled = logits[0] / temperature
            if top_k:
                kth = np.sort(np.asarray(scaled))[-top_k]
                scaled = jnp.where(scaled < kth, -jnp.inf, scaled)
            token = int(jax.random.categorical(step_key, scaled[None])[0])
        out.append(token)
        stream, logits = step_fn(stream, jnp.array([token]))
    return np.array(out)


def test_same_seed_same_sample_and_agrees_with_a_python_loop(model):
    key = jax.random.key(7)
    first = _sample(model, key, temperature=0.9)
    np.testing.assert_array_equal(first, _sample(model, key, temperature=0.9))
    np.testing.assert_array_equal(first, _reference(model, key, temperature=0.9))
    assert not np.array_equal(first, _sample(model, jax.random.key(8), temperature=0.9))


def test_greedy_takes_the_most_likely_token(model):
    greedy = _sample(model, jax.random.key(0), greedy=True)
    np.testing.assert_array_equal(greedy, _reference(model, jax.random.key(0), greedy=True))
    np.testing.assert_array_equal(greedy, _sample(model, jax.random.key(1), greedy=True))
    # top-1 sampling and a near-zero temperature are greedy too
    np.testing.assert_array_equal(greedy, _sample(model, jax.random.key(2), top_k=1))
    np.testing.assert_array_equal(greedy, _sample(model, jax.random.key(2), temperature=1e-4))


def test_top_k_agrees_with_a_python_loop(model):
    key = jax.random.key(5)
    np.testing.assert_array_equal(
        _sample(model, key, top_k=2), _reference(model, key, top_k=2)
    )


def test_top_k_only_ever_draws_the_k_largest():
    logits = jnp.array([[0.0, 3.0, 1.0, 2.5, -1.0]])
    keys = jax.random.split(jax.random.key(0), 400)
    draws = jax.vmap(lambda k: sampling.choose(k, logits, top_k=2))(keys)
    assert set(np.asarray(draws).ravel().tolist()) == {1, 3}
    filtered = sampling.filter_top_k(logits, 3)
    assert np.isneginf(np.asarray(filtered)).tolist() == [[True, False, False, False, True]]
    np.testing.assert_array_equal(sampling.filter_top_k(logits, 0), logits)


def test_bad_requests_raise(model):
    step_fn, stream = model
    with pytest.raises(ValueError, match=r"priming sequence of shape \[P >= 1\]"):
        sampling.sample(step_fn, stream, jnp.zeros((0,), jnp.int32), jax.random.key(0), 3)
    with pytest.raises(ValueError, match="temperature > 0"):
        sampling.sample(step_fn, stream, jnp.array([1]), jax.random.key(0), 3, temperature=0.0)
