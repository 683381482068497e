"""flax cell params in and out: converted, outputs and final carries equal flax's (float64)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import rnn_jax
from rnn_jax.interop import flax_params
from rnn_jax.interop.layers import apply_layers
from rnn_jax.interop.torch_params import torch_cell

IN, HIDDEN, BATCH, TIME = 3, 4, 3, 6
LENGTHS = jnp.array([6, 2, 4])


def valid_steps_close(ours, theirs, lengths, **tolerance):
    """flax leaves padded outputs unmasked: compare each sequence's valid steps only."""
    for b, length in enumerate(np.asarray(lengths)):
        np.testing.assert_allclose(ours[b, :length], theirs[b, :length], **tolerance)
    assert not np.any(np.asarray(ours)[np.arange(TIME)[None, :] >= lengths[:, None]])


def linen_cell(kind, dtype=jnp.float64):
    return {"LSTMCell": nn.LSTMCell, "OptimizedLSTMCell": nn.OptimizedLSTMCell,
            "GRUCell": nn.GRUCell}[kind](HIDDEN, param_dtype=dtype)


def nnx_cell(kind, dtype=jnp.float64):
    make = {"LSTMCell": nnx.LSTMCell, "OptimizedLSTMCell": nnx.OptimizedLSTMCell,
            "GRUCell": nnx.GRUCell}[kind]
    return make(IN, HIDDEN, param_dtype=dtype, rngs=nnx.Rngs(0))


def randomised(tree, seed=3):
    """Every leaf random (flax's zero biases would hide a bias mapped to the wrong place)."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda a: jnp.asarray(0.5 * rng.normal(size=a.shape), a.dtype), tree)


def xs_and_carry(kind, seed=1):
    rng = np.random.default_rng(seed)
    xs = jnp.asarray(rng.normal(size=(BATCH, TIME, IN)))
    h0, c0 = (jnp.asarray(rng.normal(size=(BATCH, HIDDEN))) for _ in range(2))
    return xs, ((c0, h0) if "LSTM" in kind else h0)


def ours(kind, params, xs, flax_carry):
    """rnn_jax's outputs and final carry (in flax's form) from converted params."""
    lstm = "LSTM" in kind
    cell = torch_cell("lstm" if lstm else "gru")
    carry = flax_params.lstm_carry_from_flax(flax_carry) if lstm else flax_carry
    final, ys = apply_layers(cell, (params,), xs, initial_carry=carry, seq_lengths=LENGTHS)
    return (flax_params.lstm_carry_to_flax(final) if lstm else final), ys


@pytest.mark.parametrize("kind", ["LSTMCell", "OptimizedLSTMCell", "GRUCell"])
def test_linen_cells_convert_exactly(kind, x64):
    xs, carry = xs_and_carry(kind)
    rnn = nn.RNN(linen_cell(kind), return_carry=True)
    variables = randomised(rnn.init(jax.random.key(0), xs))
    their_carry, their_ys = rnn.apply(variables, xs, initial_carry=carry, seq_lengths=LENGTHS)
    convert = flax_params.lstm_from_flax if "LSTM" in kind else flax_params.gru_from_flax
    params = convert(variables["params"]["cell"], hidden_size=HIDDEN, input_size=IN)
    assert params.U.dtype == jnp.float64
    our_carry, our_ys = ours(kind, params, xs, carry)
    valid_steps_close(our_ys, their_ys, LENGTHS, rtol=1e-12, atol=1e-12)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12),
                 our_carry, their_carry)
    # and back: rnn_jax params -> flax's layout -> flax computes the same
    back = (flax_params.lstm_to_flax(params) if "LSTM" in kind else
            flax_params.gru_to_flax(params))
    _, again = rnn.apply({"params": {"cell": back}}, xs, initial_carry=carry)
    np.testing.assert_allclose(again[0, :], their_ys[0, :], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["LSTMCell", "OptimizedLSTMCell", "GRUCell"])
def test_nnx_cells_convert_exactly(kind, x64):
    xs, carry = xs_and_carry(kind)
    cell = nnx_cell(kind)
    nnx.update(cell, randomised(nnx.state(cell, nnx.Param)))
    their_carry, their_ys = nnx.RNN(cell, return_carry=True)(
        xs, initial_carry=carry, seq_lengths=LENGTHS)
    convert = flax_params.lstm_from_flax if "LSTM" in kind else flax_params.gru_from_flax
    params = convert(nnx.state(cell, nnx.Param))
    if kind == "GRUCell":  # nnx's GRUCell has no b_hn
        assert not np.any(np.asarray(params.b_hn))
    our_carry, our_ys = ours(kind, params, xs, carry)
    valid_steps_close(our_ys, their_ys, LENGTHS, rtol=1e-12, atol=1e-12)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12),
                 our_carry, their_carry)
    if kind == "OptimizedLSTMCell":
        layout = flax_params.lstm_to_flax(params, layout="nnx_optimized")
        jax.tree.map(np.testing.assert_array_equal, layout,
                     nnx.to_pure_dict(nnx.state(cell, nnx.Param)))


def test_bad_flax_params_raise_naming_expected_and_received(key):
    # flax's layouts of an LSTM of hidden size 5 and a GRU of 4 (the tests above check them)
    lstm_params = rnn_jax.get_cell("lstm").init(key, IN, HIDDEN + 1)
    lstm = {"params": flax_params.lstm_to_flax(lstm_params)}
    gru = flax_params.gru_to_flax(torch_cell("gru").init(key, IN, HIDDEN))
    with pytest.raises(ValueError, match=r"expected a flax LSTM cell of hidden size 4, received "
                                         r"hidden size 5"):
        flax_params.lstm_from_flax(lstm, hidden_size=HIDDEN)
    with pytest.raises(ValueError, match=r"expected a flax LSTM cell of input size 2, received "
                                         r"input size 3"):
        flax_params.lstm_from_flax(lstm, input_size=2)
    with pytest.raises(ValueError, match=r"expected flax LSTM cell params .* received "
                                         r"\{.*'hn': \['bias', 'kernel'\]"):
        flax_params.lstm_from_flax(gru)
    with pytest.raises(ValueError, match=r"expected flax GRUCell params .* received "
                                         r"\{.*'hf': \['bias', 'kernel'\]"):
        flax_params.gru_from_flax(lstm)
    with pytest.raises(ValueError, match=r"expected flax cell params .* received ndarray"):
        flax_params.lstm_from_flax(np.zeros(3))
    with pytest.raises(ValueError, match=r"expected LSTMParams, received GRUTorchParams"):
        flax_params.lstm_to_flax(flax_params.gru_from_flax(gru))
    with pytest.raises(ValueError, match=r"expected layout in .* received 'torch'"):
        flax_params.lstm_to_flax(lstm_params, layout="torch")
