"""The hand-written BPTT (the cells' kernels, rnn_jax.bptt.engine, rnn_jax.tokens) equals
jax.grad of the plain scan, in float64."""

import jax
import jax.numpy as jnp
import pytest
from jax.test_util import check_grads

import rnn_jax
from rnn_jax.tokens import unroll_tokens

OPTIONS = {
    "plain": {},
    "lengths": {"lengths": True},
    "reverse": {"reverse": True, "lengths": True},
    "remat": {"remat": True, "lengths": True},
    "chunked": {"remat": 3, "lengths": True},  # 7 steps: the last chunk is padded
}
LSTM_ONLY_OPTIONS = {"chunked_sqrt": {"remat": "sqrt", "reverse": True},
                     "scan_unroll": {"unroll": 2}}
GRID = [(name, option) for name in ("lstm", "gru", "vanilla") for option in OPTIONS]
GRID += [("lstm", option) for option in LSTM_ONLY_OPTIONS]
BATCH, TIME, IN, HIDDEN = 3, 7, 2, 4
LENGTHS = jnp.array([7, 4, 0])


def _setup(key, name, options):
    cell = rnn_jax.get_cell(name, **options)
    key_p, key_x, key_c = jax.random.split(key, 3)
    params = cell.init(key_p, IN, HIDDEN, dtype=jnp.float64)
    xs = jax.random.normal(key_x, (BATCH, TIME, IN), jnp.float64)
    carry = jax.tree.map(
        lambda a: jax.random.normal(key_c, a.shape, a.dtype), cell.initial_carry(params, (BATCH,))
    )
    return cell, params, xs, carry


def _loss(cell, run, **options):
    """A loss touching every output and the final carry, so all cotangents are non-trivial."""

    def loss(params, xs, carry):
        ys, final = run(cell, params, xs, carry=carry, **options)
        weights = jnp.sin(jnp.arange(ys.size, dtype=ys.dtype)).reshape(ys.shape)
        return jnp.sum(weights * jnp.tanh(ys)) + sum(jnp.sum(c**2) for c in jax.tree.leaves(final))

    return loss


def _value_and_grads(loss, argnums=(0, 1, 2)):
    return jax.jit(jax.value_and_grad(loss, argnums))


def _assert_close(tree_a, tree_b, rtol=1e-10):
    for a, b in zip(jax.tree.leaves(tree_a), jax.tree.leaves(tree_b), strict=True):
        scale = max(float(jnp.max(jnp.abs(b))), 1e-30)
        assert float(jnp.max(jnp.abs(a - b))) <= rtol * scale


@pytest.mark.parametrize("name,option_name", GRID)
def test_handwritten_gradients_equal_autodiff(key, x64, name, option_name):
    cell, params, xs, carry = _setup(key, name, {})
    options = dict({**OPTIONS, **LSTM_ONLY_OPTIONS}[option_name])
    if options.pop("lengths", False):
        options["lengths"] = LENGTHS
    reference_options = {k: v for k, v in options.items() if k in ("lengths", "reverse")}
    fast_loss = _loss(cell, rnn_jax.unroll, backward="handwritten", **options)
    plain_loss = _loss(cell, rnn_jax.unroll, backward="autodiff", **reference_options)
    _assert_close(
        _value_and_grads(fast_loss)(params, xs, carry),
        _value_and_grads(plain_loss)(params, xs, carry),
    )


@pytest.mark.parametrize("name", ["lstm", "gru", "vanilla", "irnn"])
def test_handwritten_path_is_the_default(key, x64, name):
    cell, params, xs, carry = _setup(key, name, {})
    assert cell.bptt_kernel is not None
    fast_loss = _loss(cell, rnn_jax.unroll)
    plain_loss = _loss(cell, rnn_jax.unroll, backward="autodiff")
    assert "custom_vjp" in str(jax.make_jaxpr(fast_loss)(params, xs, carry))
    assert "custom_vjp" not in str(jax.make_jaxpr(plain_loss)(params, xs, carry))


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "identity"])
def test_handwritten_vanilla_activations_equal_autodiff(key, x64, activation):
    cell, params, xs, carry = _setup(key, "vanilla", {"activation": activation})
    fast_loss = _loss(cell, rnn_jax.unroll, lengths=LENGTHS)
    plain_loss = _loss(cell, rnn_jax.unroll, lengths=LENGTHS, backward="autodiff")
    _assert_close(
        _value_and_grads(fast_loss)(params, xs, carry),
        _value_and_grads(plain_loss)(params, xs, carry),
    )


@pytest.mark.parametrize("remat", [False, 2])
def test_handwritten_bidirectional_equals_autodiff(key, x64, remat):
    cell = rnn_jax.get_cell("lstm")
    params = rnn_jax.init_bidirectional(cell, key, IN, HIDDEN, dtype=jnp.float64)
    xs = jax.random.normal(jax.random.fold_in(key, 1), (BATCH, TIME, IN), jnp.float64)

    def loss(params, xs, **options):
        ys, _ = rnn_jax.unroll_bidirectional(cell, params, xs, lengths=LENGTHS, **options)
        return jnp.sum(jnp.sin(ys))

    fast_loss = lambda params, xs: loss(params, xs, remat=remat)
    plain_loss = lambda params, xs: loss(params, xs, backward="autodiff")
    _assert_close(
        _value_and_grads(fast_loss, (0, 1))(params, xs),
        _value_and_grads(plain_loss, (0, 1))(params, xs),
    )


def test_handwritten_gradients_match_finite_differences(key, x64):
    cell, params, xs, carry = _setup(key, "lstm", {})
    loss = _loss(cell, rnn_jax.unroll, lengths=LENGTHS, remat=3)
    check_grads(jax.jit(lambda p, x: loss(p, x, carry)), (params, xs), order=1, modes=["rev"])


def test_unbatched_handwritten_equals_autodiff(key, x64):
    cell, params, xs, _ = _setup(key, "gru", {})

    def loss(params, xs, backward):
        ys, h = rnn_jax.unroll(cell, params, xs[0], backward=backward)
        return jnp.sum(jnp.sin(ys)) + jnp.sum(h)

    fast_grads = _value_and_grads(lambda p, x: loss(p, x, "handwritten"), (0, 1))(params, xs)
    autodiff = _value_and_grads(lambda p, x: loss(p, x, "autodiff"), (0, 1))
    _assert_close(fast_grads, autodiff(params, xs))


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"lengths": LENGTHS, "reverse": True},
        {"remat": 2, "lengths": LENGTHS},
        {"remat": True},
        {"unroll": 3, "lengths": LENGTHS},
    ],
)
@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_unroll_tokens_equals_unroll_of_embeddings(key, x64, name, options):
    cell = rnn_jax.get_cell(name)
    key_p, key_e, key_t = jax.random.split(key, 3)
    params = cell.init(key_p, IN, HIDDEN, dtype=jnp.float64)
    embedding = jax.random.normal(key_e, (5, IN), jnp.float64)
    tokens = jax.random.randint(key_t, (BATCH, TIME), 0, 5)

    def loss(run_tokens):
        def f(params, embedding):
            if run_tokens:
                ys, carry = unroll_tokens(cell, params, embedding, tokens, **options)
            else:
                xs = embedding[tokens]
                ys, carry = rnn_jax.unroll(cell, params, xs, backward="autodiff", **options)
            return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(c) for c in jax.tree.leaves(carry))

        return f

    _assert_close(
        _value_and_grads(loss(True), (0, 1))(params, embedding),
        _value_and_grads(loss(False), (0, 1))(params, embedding),
    )


@pytest.mark.parametrize("remat", [False, 3])
def test_cell_without_kernel_falls_back_to_autodiff(key, x64, remat):
    cell, params, xs, carry = _setup(key, "output_feedback", {})
    assert cell.bptt_kernel is None
    default_loss = _loss(cell, rnn_jax.unroll, lengths=LENGTHS, remat=remat)
    plain_loss = _loss(cell, rnn_jax.unroll, lengths=LENGTHS, backward="autodiff")
    _assert_close(
        _value_and_grads(default_loss)(params, xs, carry),
        _value_and_grads(plain_loss)(params, xs, carry),
    )


def test_chunked_outputs_equal_python_loop(key, x64):
    cell, params, xs, carry = _setup(key, "lstm", {})
    ys, final = rnn_jax.unroll(cell, params, xs, carry=carry, remat=3)
    xs_proj = cell.project_inputs(params, xs)
    state, outputs = carry, []
    for t in range(TIME):
        state, h = cell.step(params, state, xs_proj[:, t])
        outputs.append(h)
    _assert_close(ys, jnp.stack(outputs, axis=1), rtol=1e-12)
    _assert_close(final, state, rtol=1e-12)


def test_bad_options_raise(key):
    cell = rnn_jax.get_cell("lstm")
    params = cell.init(key, IN, HIDDEN)
    xs = jnp.zeros((BATCH, TIME, IN))
    with pytest.raises(ValueError, match="expected backward in"):
        rnn_jax.unroll(cell, params, xs, backward="magic")
    with pytest.raises(ValueError, match='received \'fast\'; "fast" was renamed "handwritten"'):
        rnn_jax.unroll(cell, params, xs, backward="fast")
    with pytest.raises(ValueError, match='"fast" was renamed "handwritten"'):
        unroll_tokens(cell, params, jnp.zeros((5, IN)), jnp.zeros((2, 3), int), backward="fast")
    for remat in (0, -2, "cube", 1.5):
        with pytest.raises(ValueError, match="expected remat"):
            rnn_jax.unroll(cell, params, xs, remat=remat)
    with pytest.raises(ValueError, match="expected integer tokens"):
        unroll_tokens(cell, params, jnp.zeros((5, IN)), xs[..., 0])
    with pytest.raises(ValueError, match="expected embedding"):
        unroll_tokens(cell, params, jnp.zeros((5, IN + 1)), jnp.zeros((2, 3), int))


@pytest.mark.parametrize("name", ["lstm", "output_feedback"])
def test_remat_one_is_remat_true(key, x64, name):
    """remat=1 is a chunk of one step, i.e. remat=True, on the hand-written and autodiff paths."""
    cell, params, xs, carry = _setup(key, name, {})
    one = _value_and_grads(_loss(cell, rnn_jax.unroll, lengths=LENGTHS, remat=1))(params, xs, carry)
    true = _value_and_grads(_loss(cell, rnn_jax.unroll, lengths=LENGTHS, remat=True))
    plain = _loss(cell, rnn_jax.unroll, lengths=LENGTHS, backward="autodiff")
    _assert_close(one, true(params, xs, carry), rtol=1e-14)
    _assert_close(one, _value_and_grads(plain)(params, xs, carry))
