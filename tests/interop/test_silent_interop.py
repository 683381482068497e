"""Interop and dtype inputs that used to fail deep inside or answer silently (issue 26): one
wrong-shaped tensor is named, integer state_dicts are refused and half-precision ones cast,
a LinenRNN built for another stack refuses its params, lengths may be a Python list, and
floating inputs are cast to the params' dtype (`rnn_jax.sequence`'s dtype rule)."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import get_cell, unroll
from rnn_jax.interop import torch_params
from rnn_jax.interop.flax_modules import LinenRNN
from rnn_jax.interop.layers import apply_layers

torch = pytest.importorskip("torch")

IN, HIDDEN = 3, 4


def _lstm(num_layers=2):
    torch.manual_seed(0)
    return torch.nn.LSTM(IN, HIDDEN, num_layers=num_layers, batch_first=True)


@pytest.mark.parametrize("key, shape", [("weight_hh_l0", (16, 5)), ("bias_hh_l1", (17,)),
                                        ("weight_ih_l1", (20, 4))])
def test_one_wrong_shaped_tensor_is_named(key, shape):
    state = {**_lstm().state_dict(), key: torch.zeros(shape)}
    with pytest.raises(ValueError, match=re.escape(f"; wrong shape: {key} {shape}") + "$"):
        torch_params.from_torch(state, "lstm")


def test_integer_state_dict_is_refused_and_half_precision_is_cast():
    module = _lstm(1)
    xs = np.random.default_rng(0).normal(size=(2, 5, IN)).astype(np.float32)
    state = module.state_dict()
    with pytest.raises(ValueError, match=r"floating-point tensors, received weight_ih_l0 of "
                                         r"dtype int64"):
        torch_params.from_torch({k: v.to(torch.int64) for k, v in state.items()}, "lstm")
    for half in (torch.float16, torch.bfloat16):
        rounded = {k: v.to(half) for k, v in state.items()}
        module.load_state_dict({k: v.float() for k, v in rounded.items()})
        with torch.no_grad():  # reference: PyTorch in float32 on the rounded weights
            expected = module(torch.from_numpy(xs))[0].numpy()
        cell, layers = torch_params.from_torch(rounded, "lstm", dtype=jnp.float32)
        assert {leaf.dtype for leaf in jax.tree.leaves(layers)} == {jnp.dtype(jnp.float32)}
        np.testing.assert_allclose(apply_layers(cell, layers, jnp.asarray(xs))[1], expected,
                                   rtol=1e-5, atol=1e-6)
        cell, layers = torch_params.from_torch(rounded, "lstm")  # None: the tensors' dtype
        ys = apply_layers(cell, layers, jnp.asarray(xs), seq_lengths=[5, 3])[1]
        assert ys.dtype == layers[0].U.dtype and str(ys.dtype) == str(half).split(".")[1]
        np.testing.assert_allclose(np.asarray(ys[0], np.float32), expected[0], atol=3e-2)


def test_linen_module_refuses_params_of_another_stack(key):
    xs = jnp.ones((2, 5, IN))
    bidirectional = LinenRNN("lstm", HIDDEN, bidirectional=True).init(key, xs)
    with pytest.raises(ValueError, match=r"expected params of 1 layer\(s\) with "
                                         r"bidirectional=False, received 1 layer\(s\) with "
                                         r"bidirectional=True"):
        LinenRNN("lstm", HIDDEN).apply(bidirectional, xs)
    deep = LinenRNN("lstm", HIDDEN, num_layers=2).init(key, xs)
    with pytest.raises(ValueError, match=r"expected params of 1 layer.*received 2 layer"):
        LinenRNN("lstm", HIDDEN).apply(deep, xs)
    assert isinstance(LinenRNN("lstm", HIDDEN), nn.Module)


def test_lengths_as_a_python_list_equal_an_array(key):
    cell = get_cell("gru")
    params = cell.init(key, IN, HIDDEN)
    xs = jax.random.normal(key, (3, 5, IN))
    for reverse in (False, True):
        expected = unroll(cell, params, xs, lengths=jnp.array([5, 0, 2]), reverse=reverse)
        np.testing.assert_array_equal(
            unroll(cell, params, xs, lengths=[5, 0, 2], reverse=reverse)[0], expected[0])
        np.testing.assert_array_equal(apply_layers(cell, (params,), xs, seq_lengths=[5, 0, 2],
                                                   reverse=reverse, keep_order=True)[1],
                                      expected[0])


@pytest.mark.parametrize("name", ["lstm", "gru", "vanilla"])
def test_float32_inputs_are_cast_to_bfloat16_params(name, key):
    cell = get_cell(name)
    params = jax.tree.map(lambda a: a.astype(jnp.bfloat16), cell.init(key, IN, HIDDEN))
    xs = jax.random.normal(key, (2, 5, IN), jnp.float32)
    ys, _ = unroll(cell, params, xs, lengths=jnp.array([5, 3]))
    assert ys.dtype == jnp.bfloat16
    same, _ = unroll(cell, params, xs.astype(jnp.bfloat16), lengths=jnp.array([5, 3]))
    np.testing.assert_array_equal(np.asarray(ys, np.float32), np.asarray(same, np.float32))
