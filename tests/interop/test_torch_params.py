"""PyTorch state_dicts in and out: outputs and final carries equal PyTorch's in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax.cells import gru_torch
from rnn_jax.interop import torch_params
from rnn_jax.interop.layers import apply_layers

torch = pytest.importorskip("torch")

IN, HIDDEN, BATCH, TIME = 3, 4, 3, 6
LENGTHS = [6, 2, 4]  # unsorted: PyTorch packs them with enforce_sorted=False

# (kind, nonlinearity, num_layers, bidirectional)
CASES = [
    ("lstm", "tanh", 2, True),
    ("gru", "tanh", 2, True),
    ("gru", "tanh", 1, False),
    ("rnn", "relu", 2, False),
]


def make_torch(kind, nonlinearity, num_layers, bidirectional, seed=0):
    torch.manual_seed(seed)
    options = dict(num_layers=num_layers, bidirectional=bidirectional, batch_first=True)
    if kind == "rnn":
        options["nonlinearity"] = nonlinearity
    module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[kind]
    return module(IN, HIDDEN, **options).double()


def run_torch(module, xs, lengths, carry=None):
    """Padded outputs (zeros past each length) and final carries, as PyTorch computes them."""
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        torch.from_numpy(xs), torch.tensor(lengths), batch_first=True, enforce_sorted=False)
    with torch.no_grad():
        out, final = module(packed, carry)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=TIME)
    final = final if isinstance(final, tuple) else (final, None)
    return out.numpy(), [None if f is None else f.numpy() for f in final]


def inputs(seed=1):
    return np.random.default_rng(seed).normal(size=(BATCH, TIME, IN))


@pytest.mark.parametrize("kind,nonlinearity,num_layers,bidirectional", CASES)
def test_outputs_and_final_carry_equal_pytorch(kind, nonlinearity, num_layers, bidirectional,
                                               x64):
    module = make_torch(kind, nonlinearity, num_layers, bidirectional)
    xs = inputs()
    directions = 2 if bidirectional else 1
    rng = np.random.default_rng(2)
    h0 = rng.normal(size=(num_layers * directions, BATCH, HIDDEN))
    c0 = rng.normal(size=h0.shape)
    torch_carry = ((torch.from_numpy(h0), torch.from_numpy(c0)) if kind == "lstm"
                   else torch.from_numpy(h0))
    expected, (h_n, c_n) = run_torch(module, xs, LENGTHS, torch_carry)

    cell, layers = torch_params.from_torch(module.state_dict(), kind, nonlinearity=nonlinearity)
    assert jax.tree.leaves(layers)[0].dtype == jnp.float64
    carry = torch_params.carry_from_torch(layers, h0, c0 if kind == "lstm" else None)
    final, ys = apply_layers(cell, layers, jnp.asarray(xs), initial_carry=carry,
                             seq_lengths=jnp.array(LENGTHS))
    np.testing.assert_allclose(ys, expected, rtol=1e-10, atol=1e-12)
    h_ours, c_ours = torch_params.carry_to_torch(layers, final)
    np.testing.assert_allclose(h_ours, h_n, rtol=1e-10, atol=1e-12)
    if kind == "lstm":
        np.testing.assert_allclose(c_ours, c_n, rtol=1e-10, atol=1e-12)


def random_layers(cell, num_layers, dtype=jnp.float32, seed=4):
    """Params with every leaf random (nonzero biases: a bias mapped to the wrong place shows)."""
    rng = np.random.default_rng(seed)
    layers = []
    for layer in range(num_layers):
        params = jax.eval_shape(lambda key: cell.init(key, IN if layer == 0 else HIDDEN, HIDDEN,
                                                      dtype=dtype), jax.random.key(0))
        layers.append(jax.tree.map(
            lambda s: jnp.asarray(0.5 * rng.normal(size=s.shape), s.dtype), params))
    return tuple(layers)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_to_torch_loads_into_pytorch_and_computes_the_same(kind):
    """rnn_jax params -> state_dict -> a fresh PyTorch module: PyTorch's outputs equal ours."""
    cell = torch_params.torch_cell(kind)
    layers = random_layers(cell, 2)
    module = make_torch(kind, "tanh", 2, False, seed=5).float()
    state = torch_params.to_torch(kind, layers)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    xs = inputs().astype(np.float32)
    expected, _ = run_torch(module, xs, [TIME] * BATCH)
    _, ys = apply_layers(cell, layers, jnp.asarray(xs))
    np.testing.assert_allclose(ys, expected, rtol=1e-5, atol=1e-6)
    _, again = torch_params.from_torch(module.state_dict(), kind)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
                 again, layers)


def test_gru_torch_cell_equals_its_equations_in_a_numpy_loop(x64):
    """The cell itself against the docstring's equations (independent of PyTorch)."""
    cell = gru_torch.make_cell()
    (params,) = random_layers(cell, 1, jnp.float64)
    assert params.U.dtype == jnp.float64
    xs = inputs()
    U, W, b, b_hn = (np.asarray(a) for a in params)
    sigma = lambda a: 1.0 / (1.0 + np.exp(-a))
    h = np.zeros((BATCH, HIDDEN))
    ys = np.asarray(apply_layers(cell, (params,), jnp.asarray(xs))[1])
    for t in range(TIME):
        gx, gh = xs[:, t] @ U + b, h @ W
        r = sigma(gx[:, :HIDDEN] + gh[:, :HIDDEN])
        z = sigma(gx[:, HIDDEN:2 * HIDDEN] + gh[:, HIDDEN:2 * HIDDEN])
        n = np.tanh(gx[:, 2 * HIDDEN:] + r * (gh[:, 2 * HIDDEN:] + b_hn))
        h = z * h + (1 - z) * n
        np.testing.assert_allclose(ys[:, t], h, rtol=1e-12, atol=1e-12)


def test_wrong_architecture_raises_naming_expected_and_received():
    gru_state = make_torch("gru", "tanh", 1, False).state_dict()
    with pytest.raises(ValueError, match=r"expected LSTM shapes .* received .*\(GRU weights\?\)"):
        torch_params.from_torch(gru_state, "lstm")
    lstm_state = dict(make_torch("lstm", "tanh", 2, False).state_dict())
    with pytest.raises(ValueError, match=r"expected kind in .* received 'cnn'"):
        torch_params.from_torch(lstm_state, "cnn")
    missing = {k: v for k, v in lstm_state.items() if k != "weight_hh_l1"}
    with pytest.raises(ValueError, match=r"l1: expected key 'weight_hh', missing"):
        torch_params.from_torch(missing, "lstm")
    one_bias = {k: v for k, v in lstm_state.items() if k != "bias_hh_l0"}
    with pytest.raises(ValueError, match=r"expected both biases or neither .* missing 'bias_hh'"):
        torch_params.from_torch(one_bias, "lstm")
    wrong = {**lstm_state, "weight_ih_l1": torch.zeros(4 * HIDDEN, HIDDEN + 1)}
    with pytest.raises(ValueError, match=r"expected LSTM shapes .*'weight_ih': \(16, 4\).* "
                                         r"received .*'weight_ih': \(16, 5\)"):
        torch_params.from_torch(wrong, "lstm")
    no_layer0 = {k: v for k, v in lstm_state.items() if k.endswith("l1")}
    with pytest.raises(ValueError, match=r"missing \(layer, reverse\) \[\(0, False\)\]"):
        torch_params.from_torch(no_layer0, "lstm")
    proj = torch.nn.LSTM(IN, HIDDEN, proj_size=2).state_dict()
    with pytest.raises(ValueError, match=r"proj_size=0\), received 'weight_hr_l0'"):
        torch_params.from_torch(proj, "lstm")
    with pytest.raises(ValueError, match=r"expected PyTorch RNN keys .* received 'rnn.weight'"):
        torch_params.from_torch({"rnn.weight": np.zeros(2)}, "lstm")
    with pytest.raises(ValueError, match=r"expected LSTMParams for PyTorch's lstm, received "
                                         r"GRUTorchParams"):
        torch_params.to_torch("lstm", torch_params.from_torch(gru_state, "gru")[1])


def test_prefix_bias_false_and_tensors_requiring_grad(x64):
    """A module inside a model (prefixed keys), without biases: still PyTorch's outputs."""
    torch.manual_seed(3)
    model = torch.nn.Module()
    model.rnn = torch.nn.GRU(IN, HIDDEN, bias=False, batch_first=True).double()
    model.head = torch.nn.Linear(HIDDEN, 2).double()
    cell, layers = torch_params.from_torch(model.state_dict(keep_vars=True), "gru", prefix="rnn.")
    xs = inputs()
    expected, _ = run_torch(model.rnn, xs, [TIME] * BATCH)
    _, ys = apply_layers(cell, layers, jnp.asarray(xs))
    np.testing.assert_allclose(ys, expected, rtol=1e-10, atol=1e-12)
