"""Bad or adversarial library inputs: a clear ValueError at trace time, or a safe result (traced
lengths past T, empty time axes, NaN in padded steps), never a silent NaN or a wrong answer."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnn_jax
from rnn_jax import initializers, language_model, sampling
from rnn_jax.cells import CELLS, vanilla
from rnn_jax.tokens import unroll_tokens

ALL_CELLS = sorted(CELLS)
KERNEL_CELLS = ["gru", "lstm", "vanilla"]
BATCH, TIME, IN, HIDDEN = 3, 6, 2, 4
REMATS = [False, True, 2, "sqrt"]


def _setup(name, key, dtype=jnp.float32):
    cell = rnn_jax.get_cell(name)
    params = cell.init(key, IN, HIDDEN, dtype=dtype)
    xs = jax.random.normal(jax.random.fold_in(key, 1), (BATCH, TIME, IN), dtype)
    return cell, params, xs


def _close(a, b, rtol=1e-5, atol=1e-6):
    chex.assert_trees_all_close(a, b, rtol=rtol, atol=atol)


# ---- traced lengths outside [0, T] ----


@pytest.mark.parametrize("remat", [False, 2])
@pytest.mark.parametrize("name", ["lstm", "output_feedback"])  # hand-written and autodiff
def test_traced_lengths_past_time_mean_the_whole_sequence(name, remat, key):
    cell, params, xs = _setup(name, key)
    both = rnn_jax.init_bidirectional(cell, key, IN, HIDDEN)
    too_long, clipped = jnp.array([TIME + 3, 2, -1]), jnp.array([TIME, 2, 0])
    for run, p in [
        (lambda p, x, n: rnn_jax.unroll(cell, p, x, lengths=n, reverse=True, remat=remat), params),
        (lambda p, x, n: rnn_jax.unroll(cell, p, x, lengths=n, remat=remat), params),
        (lambda p, x, n: rnn_jax.unroll_bidirectional(cell, p, x, lengths=n, remat=remat), both),
    ]:
        ys, carry = jax.jit(run)(p, xs, too_long)
        assert all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree.leaves((ys, carry)))
        _close((ys, carry), run(p, xs, clipped))


def test_traced_token_lengths_past_time_and_reverse_padded(key):
    cell = rnn_jax.get_cell("lstm")
    params = cell.init(key, IN, HIDDEN)
    embedding = jax.random.normal(key, (5, IN))
    tokens = jax.random.randint(key, (BATCH, TIME), 0, 5)
    run = lambda n: unroll_tokens(cell, params, embedding, tokens, lengths=n, reverse=True)
    ys, _ = jax.jit(run)(jnp.array([TIME + 9, 3, -2]))
    _close(ys, run(jnp.array([TIME, 3, 0]))[0])
    xs = embedding[tokens]
    flipped = jax.jit(rnn_jax.reverse_padded)(xs, jnp.array([TIME + 1, 1, -4]))
    _close(flipped[0], xs[0, ::-1])
    _close(flipped[1], jnp.zeros_like(xs[1]).at[0].set(xs[1, 0]))
    assert not jnp.any(flipped[2])


# ---- empty time axis ----


@pytest.mark.parametrize("remat", REMATS)
@pytest.mark.parametrize("name", ALL_CELLS)
def test_empty_time_axis_gives_empty_outputs_and_the_initial_carry(name, remat, key):
    cell, params, xs = _setup(name, key)
    width = rnn_jax.unroll(cell, params, xs[:, :1])[0].shape[-1]
    carry = jax.tree.map(lambda a: a + 0.5, cell.initial_carry(params, (BATCH,)))
    ys, final = rnn_jax.unroll(cell, params, xs[:, :0], carry=carry, remat=remat)
    assert ys.shape == (BATCH, 0, width) and ys.dtype == xs.dtype
    _close(final, carry)
    ys, final = rnn_jax.unroll(cell, params, xs[0, :0], remat=remat)  # unbatched
    assert ys.shape == (0, width)


def test_empty_token_sequence(key):
    cell = rnn_jax.get_cell("lstm")
    params = cell.init(key, IN, HIDDEN)
    ys, final = unroll_tokens(cell, params, jnp.ones((5, IN)), jnp.zeros((BATCH, 0), int),
                                   remat=True)
    assert ys.shape == (BATCH, 0, HIDDEN)
    _close(final, cell.initial_carry(params, (BATCH,)))


# ---- sizes, params, carries ----


@pytest.mark.parametrize("hidden", [0, -3, 2.5, True, "4"])
@pytest.mark.parametrize("name", ALL_CELLS)
def test_bad_hidden_size_raises(name, hidden, key):
    with pytest.raises(ValueError, match=rf"expected hidden_size an int >= 1, received {hidden!r}"):
        rnn_jax.get_cell(name).init(key, IN, hidden)
    with pytest.raises(ValueError, match=r"expected input_size an int >= 1, received 0"):
        rnn_jax.get_cell(name).init(key, 0, HIDDEN)


@pytest.mark.parametrize("name", ALL_CELLS)
def test_another_cells_params_raise_naming_both(name, key):
    cell = rnn_jax.get_cell(name)
    xs = jnp.ones((BATCH, TIME, IN))
    for other in ALL_CELLS:
        params = rnn_jax.get_cell(other).init(key, IN, HIDDEN)
        if type(params) is type(cell.init(key, IN, HIDDEN)):
            continue  # vanilla and irnn share VanillaParams
        expected = type(cell.init(key, IN, HIDDEN)).__name__
        match = rf"expected {expected} params, received {type(params).__name__}"
        with pytest.raises(ValueError, match=match):
            rnn_jax.unroll(cell, params, xs)


@pytest.mark.parametrize("name", ALL_CELLS)
def test_params_of_inconsistent_shapes_raise(name, key):
    cell = rnn_jax.get_cell(name)
    params = cell.init(key, IN, HIDDEN)
    field = params._fields[1]  # W (or V_im for the uRNN)
    broken = params._replace(**{field: jnp.ones(getattr(params, field).shape[:-1] + (1,))})
    with pytest.raises(ValueError, match=rf"expected {type(params).__name__} shapes .* received"):
        rnn_jax.unroll(cell, broken, jnp.ones((BATCH, TIME, IN)))


@pytest.mark.parametrize("name", ALL_CELLS)
def test_carry_of_the_wrong_size_structure_or_dtype_raises(name, key):
    cell, params, xs = _setup(name, key)
    carry = cell.initial_carry(params, (BATCH,))
    wider = lambda a: jnp.zeros(a.shape[:-1] + (a.shape[-1] + 1,), a.dtype)
    other_size = jax.tree.map(wider, carry)
    with pytest.raises(ValueError, match=r"expected carry leaves .* received"):
        rnn_jax.unroll(cell, params, xs, carry=other_size)
    wrong_dtype = jax.tree.map(lambda a: jnp.zeros(a.shape, jnp.float16), carry)
    with pytest.raises(ValueError, match=r"expected carry leaves .*float16"):
        rnn_jax.unroll(cell, params, xs, carry=wrong_dtype)
    with pytest.raises(ValueError, match=r"expected a carry structured as"):
        rnn_jax.unroll(cell, params, xs, carry=(jax.tree.leaves(other_size)[0],) * 3)


def test_language_model_and_tokens_inputs_raise(key):
    cells = (rnn_jax.get_cell("gru"),)
    params = language_model.init(key, cells, 5, (HIDDEN,), embed_size=IN)
    with pytest.raises(ValueError, match=r"expected LMParams with 2 layers .* received LMParams "
                                         r"with 1 layers"):
        language_model.apply(cells * 2, params, jnp.zeros((1, 3), int))
    with pytest.raises(ValueError, match=r"expected vocab_size an int >= 1, received 0"):
        language_model.init(key, cells, 0, (HIDDEN,))
    with pytest.raises(ValueError, match=r"expected tokens in \[0, 5\).*max 5"):
        unroll_tokens(cells[0], params.layers[0], params.embed, jnp.array([[0, 5]]))


# ---- NaN: padded steps stay out of the gradients, valid steps propagate ----


@pytest.mark.parametrize("options", [
    {}, {"reverse": True}, {"remat": True}, {"remat": 2}, {"backward": "autodiff"},
    {"backward": "autodiff", "reverse": True},
])
@pytest.mark.parametrize("name", ALL_CELLS)
def test_nan_in_padded_steps_reaches_no_valid_gradient(name, options, key):
    cell, params, xs = _setup(name, key)
    lengths = jnp.array([TIME, 3, 1])
    padded = rnn_jax.sequence_mask(lengths, TIME)[..., None]
    poisoned = jnp.where(padded, xs, jnp.nan)

    def loss(params, xs):
        ys, carry = rnn_jax.unroll(cell, params, xs, lengths=lengths, **options)
        leaves = [jnp.abs(a) for a in jax.tree.leaves(carry)]  # abs: complex uRNN carry
        return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(a) for a in leaves)

    grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    value, (dparams, dxs) = grads(params, poisoned)
    clean_value, (clean_dparams, clean_dxs) = grads(params, jnp.where(padded, xs, 0.0))
    assert bool(jnp.isfinite(value)) and all(
        bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves((dparams, dxs))
    )
    _close((value, dparams), (clean_value, clean_dparams))
    _close(dxs, clean_dxs)  # zero at the padded steps


@pytest.mark.parametrize("remat", [False, True])
@pytest.mark.parametrize("name", ALL_CELLS)
def test_nan_input_in_a_valid_step_propagates(name, remat, key):
    cell, params, xs = _setup(name, key)
    xs = xs.at[0, 2].set(jnp.nan)
    ys, carry = rnn_jax.unroll(cell, params, xs, remat=remat)
    assert bool(jnp.all(jnp.isfinite(ys[0, :2]))) and bool(jnp.all(jnp.isfinite(ys[1:])))
    assert all(bool(jnp.any(jnp.isnan(ys[0, t]))) for t in range(2, TIME))
    assert all(bool(jnp.any(jnp.isnan(leaf[0]))) for leaf in jax.tree.leaves(carry))


# ---- forward-mode differentiation of the default path ----


@pytest.mark.parametrize("name", KERNEL_CELLS)
def test_forward_mode_of_the_default_path_equals_autodiff(name, key, x64):
    cell, params, xs = _setup(name, key, jnp.float64)
    lengths = jnp.array([TIME, 4, 0])
    f = lambda backward: lambda x: rnn_jax.unroll(
        cell, params, x, lengths=lengths, reverse=True, backward=backward
    )[0]
    tangent = jax.random.normal(jax.random.fold_in(key, 5), xs.shape, jnp.float64)
    expected = jax.jvp(f("autodiff"), (xs,), (tangent,))
    _close(jax.jvp(f("handwritten"), (xs,), (tangent,)), expected, rtol=1e-12, atol=1e-12)
    jitted = jax.jit(lambda x, t: jax.jvp(f("handwritten"), (x,), (t,)))(xs, tangent)
    _close(jitted, expected, rtol=1e-12, atol=1e-12)
    _close(jax.jacfwd(f("handwritten"))(xs), jax.jacrev(f("handwritten"))(xs), rtol=1e-10,
           atol=1e-12)
    tokens = jnp.zeros((1, TIME), int)
    on_tokens = lambda e: unroll_tokens(cell, params, e, tokens)[0]
    embedding = jnp.ones((2, IN), jnp.float64)
    _close(jax.jacfwd(on_tokens)(embedding), jax.jacrev(on_tokens)(embedding), rtol=1e-10,
           atol=1e-12)


# ---- initialisers and sampling ----


def test_glorot_recurrent_init_honours_the_spectral_radius(key):
    params = vanilla.init(key, IN, 16, recurrent_init="glorot", spectral_radius=0.7)
    np.testing.assert_allclose(np.max(np.abs(np.linalg.eigvals(params.W))), 0.7, rtol=1e-5)
    unscaled = vanilla.init(key, IN, 16, recurrent_init="glorot")
    np.testing.assert_allclose(params.W / unscaled.W, np.full((16, 16), params.W[0, 0]
                                                              / unscaled.W[0, 0]), rtol=1e-5)
    key_w = jax.random.split(key)[1]  # the default stays the plain Glorot draw
    np.testing.assert_array_equal(unscaled.W, initializers.glorot_uniform(key_w, (16, 16)))
    for radius in (-1.0, "big", True):
        with pytest.raises(ValueError, match=rf"expected spectral_radius a number >= 0, "
                                             rf"received {radius!r}"):
            vanilla.init(key, IN, 16, recurrent_init="glorot", spectral_radius=radius)


def test_top_k_keeps_exactly_k_tokens_among_ties():
    logits = jnp.array([[2.0, 5.0, 5.0, 5.0, 1.0]])
    keys = jax.random.split(jax.random.key(0), 200)
    draws = jax.vmap(lambda k: sampling.choose(k, logits, top_k=1))(keys)
    assert set(np.asarray(draws).ravel().tolist()) == {1}
    for k in (1, 2, 3, 4):
        assert int(jnp.sum(jnp.isfinite(sampling.filter_top_k(logits, k)))) == k


def test_bad_sampling_requests_raise():
    step_fn = lambda stream, token: (stream, jnp.zeros((1, 4)))
    prime, key = jnp.array([1]), jax.random.key(0)
    for bad in (-1, 1.5):
        with pytest.raises(ValueError, match=rf"expected top_k an int >= 0.*received {bad!r}"):
            sampling.sample(step_fn, (), prime, key, 3, top_k=bad)
    with pytest.raises(ValueError, match=r"expected length an int >= 1, received -1"):
        sampling.sample(step_fn, (), prime, key, -1)
    with pytest.raises(ValueError, match=r"expected integer priming tokens"):
        sampling.sample(step_fn, (), jnp.array([1.0]), key, 3)
