"""The flax modules: flax's nn.RNN conventions (checked against flax itself), and training."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from flax.training import train_state

import rnn_jax
from rnn_jax.interop import flax_params
from rnn_jax.interop.flax_modules import LinenRNN, NnxRNN
from rnn_jax.interop.layers import apply_layers

IN, HIDDEN, BATCH, TIME = 3, 4, 3, 6
LENGTHS = jnp.array([6, 2, 4])


def valid_steps_close(ours, theirs, lengths=LENGTHS, tolerance=1e-12):
    """flax leaves padded outputs unmasked: valid steps equal, ours zero past each length."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    valid = np.arange(TIME)[None, :] < np.asarray(lengths)[:, None]
    np.testing.assert_allclose(ours[valid], theirs[valid], rtol=tolerance, atol=tolerance)
    assert not np.any(ours[~valid])


def flax_lstm_and_ours(key, **options):
    """A flax nn.RNN(LSTMCell) with random weights, and our LinenRNN holding the same weights."""
    rng = np.random.default_rng(0)
    xs = jnp.asarray(rng.normal(size=(BATCH, TIME, IN)))
    theirs = nn.RNN(nn.LSTMCell(HIDDEN, param_dtype=jnp.float64), **options)
    variables = theirs.init(key, xs)
    variables = jax.tree.map(lambda a: jnp.asarray(0.5 * rng.normal(size=a.shape)), variables)
    ours = LinenRNN(rnn_jax.get_cell("lstm"), HIDDEN, param_dtype=jnp.float64, **options)
    layers = (flax_params.lstm_from_flax(variables["params"]["cell"]),)
    return xs, theirs, variables, ours, {"params": {"layers": layers}}


@pytest.mark.parametrize("reverse,keep_order,time_major", [
    (False, False, False), (True, False, False), (True, True, True),
])
def test_linen_module_follows_flax_rnn_options(reverse, keep_order, time_major, key, x64):
    xs, theirs, variables, ours, our_variables = flax_lstm_and_ours(key)
    rng = np.random.default_rng(1)
    c0, h0 = (jnp.asarray(rng.normal(size=(BATCH, HIDDEN))) for _ in range(2))
    options = dict(seq_lengths=LENGTHS, return_carry=True, reverse=reverse,
                   keep_order=keep_order, time_major=time_major)
    inputs = jnp.swapaxes(xs, 0, 1) if time_major else xs
    their_carry, their_ys = theirs.apply(variables, inputs, initial_carry=(c0, h0), **options)
    our_carry, our_ys = ours.apply(our_variables, inputs,
                                   initial_carry=rnn_jax.cells.lstm.LSTMState(h=h0, c=c0),
                                   **options)
    if time_major:
        their_ys, our_ys = jnp.swapaxes(their_ys, 0, 1), jnp.swapaxes(our_ys, 0, 1)
    valid_steps_close(our_ys, their_ys)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12),
                 flax_params.lstm_carry_to_flax(our_carry), their_carry)


def test_linen_bidirectional_equals_flax_bidirectional(key, x64):
    xs, _, _, _, _ = flax_lstm_and_ours(key)
    theirs = nn.Bidirectional(nn.RNN(nn.LSTMCell(HIDDEN, param_dtype=jnp.float64)),
                              nn.RNN(nn.LSTMCell(HIDDEN, param_dtype=jnp.float64)),
                              return_carry=True)
    variables = theirs.init(key, xs)
    rng = np.random.default_rng(2)
    variables = jax.tree.map(lambda a: jnp.asarray(0.5 * rng.normal(size=a.shape)), variables)
    their_carry, their_ys = theirs.apply(variables, xs, seq_lengths=LENGTHS)
    convert = lambda name: flax_params.lstm_from_flax(variables["params"][name]["cell"])
    layers = (rnn_jax.BidirectionalParams(convert("forward_rnn"), convert("backward_rnn")),)
    ours = LinenRNN("lstm", HIDDEN, bidirectional=True, return_carry=True)
    our_carry, our_ys = ours.apply({"params": {"layers": layers}}, xs, seq_lengths=LENGTHS)
    assert our_ys.shape == (BATCH, TIME, 2 * HIDDEN)
    valid_steps_close(our_ys, their_ys)
    for our, their in zip(our_carry, their_carry):
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12),
                     flax_params.lstm_carry_to_flax(our), their)


def test_nnx_equals_linen_and_tokens_equal_embedded_inputs(key):
    """NnxRNN.from_layers computes what LinenRNN does with the same params (2 layers,
    bidirectional); the token path equals the embedding looked up first."""
    linen = LinenRNN("gru_torch", HIDDEN, num_layers=2, bidirectional=True, vocab_size=7,
                     embed_size=IN)
    tokens = jax.random.randint(key, (BATCH, TIME), 0, 7)
    expected, variables = linen.init_with_output(key, tokens, seq_lengths=LENGTHS)
    params = variables["params"]
    module = NnxRNN.from_layers("gru_torch", params["layers"], embedding=params["embedding"])
    np.testing.assert_allclose(module(tokens, seq_lengths=LENGTHS), expected, atol=1e-6)
    _, embedded = apply_layers(rnn_jax.get_cell("gru_torch"), params["layers"],
                               params["embedding"][tokens], seq_lengths=LENGTHS)
    np.testing.assert_allclose(embedded, expected, rtol=1e-5, atol=1e-6)


class NnxTagger(nnx.Module):
    def __init__(self, rngs):
        self.rnn = NnxRNN("lstm", IN, HIDDEN, num_layers=2, rngs=rngs)
        self.head = nnx.Linear(HIDDEN, 1, rngs=rngs)

    def __call__(self, xs):
        return self.head(self.rnn(xs, seq_lengths=LENGTHS))[..., 0]


def running_sign_task(key):
    """Targets: the sign of the running sum of the first feature (needs the recurrence)."""
    xs = jax.random.normal(key, (BATCH, TIME, IN))
    return xs, jnp.sign(jnp.cumsum(xs[..., 0], axis=1))


def test_nnx_module_trains_with_nnx_optimizer(key):
    xs, targets = running_sign_task(key)
    model = NnxTagger(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(3e-2), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer):
        loss_fn = lambda model: jnp.mean((model(xs) - targets) ** 2)
        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(train_step(model, optimizer)) for _ in range(10)]
    assert losses[-1] < 0.7 * losses[0], losses


class LinenTagger(nn.Module):
    @nn.compact
    def __call__(self, xs, seq_lengths):
        ys = LinenRNN("lstm", HIDDEN, bidirectional=True)(xs, seq_lengths=seq_lengths)
        return nn.Dense(1)(ys)[..., 0]


def test_linen_module_trains_with_train_state(key):
    xs, targets = running_sign_task(key)
    model = LinenTagger()
    state = train_state.TrainState.create(
        apply_fn=model.apply, params=model.init(key, xs, LENGTHS)["params"],
        tx=optax.adam(3e-2))

    @jax.jit
    def train_step(state):
        def loss_fn(params):
            return jnp.mean((state.apply_fn({"params": params}, xs, LENGTHS) - targets) ** 2)
        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        return state.apply_gradients(grads=grads), loss

    losses = []
    for _ in range(10):
        state, loss = train_step(state)
        losses.append(float(loss))
    assert losses[-1] < 0.7 * losses[0], losses


def test_bad_module_inputs_raise(key):
    xs = jnp.ones((BATCH, TIME, IN))
    with pytest.raises(ValueError, match=r"expected reverse=False with bidirectional layers"):
        LinenRNN("lstm", HIDDEN, bidirectional=True, reverse=True).init(key, xs)
    with pytest.raises(ValueError, match=r"expected inputs \[batch, time, features\] .* "
                                         r"received shape \(6, 3\)"):
        LinenRNN("lstm", HIDDEN).init(key, xs[0])
    with pytest.raises(ValueError, match=r"expected initial_carry a tuple of 2 layer carries, "
                                         r"received LSTMState"):
        carry = rnn_jax.get_cell("lstm").initial_carry(
            rnn_jax.get_cell("lstm").init(key, IN, HIDDEN), (BATCH,))
        LinenRNN("lstm", HIDDEN, num_layers=2).init(key, xs, initial_carry=carry)
    with pytest.raises(ValueError, match=r"expected num_layers an int >= 1, received 0"):
        NnxRNN("lstm", IN, HIDDEN, num_layers=0, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"expected a rnn_jax Cell or a cell name, received "
                                         r"LSTMCell"):
        LinenRNN(nn.LSTMCell(HIDDEN), HIDDEN).init(key, xs)
    with pytest.raises(ValueError, match=r"unknown cell 'lstn'"):
        NnxRNN("lstn", IN, HIDDEN, rngs=nnx.Rngs(0))
