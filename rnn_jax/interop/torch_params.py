"""PyTorch `nn.LSTM` / `nn.GRU` / `nn.RNN` state_dicts to and from rnn_jax params and carries.

    cell, layers = from_torch(torch_lstm.state_dict(), "lstm")
    ys, carry = apply_layers(cell, layers, xs)             # or LinenRNN / NnxRNN with layers
    state = to_torch("lstm", layers)                       # numpy arrays, PyTorch's keys
    torch_lstm.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})

PyTorch stores, per layer l and direction (suffix "" or "_reverse"), `weight_ih_l{l}`
`[gates*hidden, in]`, `weight_hh_l{l}` `[gates*hidden, hidden]`, `bias_ih_l{l}`, `bias_hh_l{l}`
`[gates*hidden]` (absent with `bias=False`), applied as `W x + b`; rnn_jax stores `[in, out]`
applied as `x @ U`, so every matrix is transposed. Gate orders agree: LSTM (i, f, g, o), GRU
(r, z, n). The two LSTM biases and the vanilla RNN's add up into rnn_jax's one `b`; the GRU
maps to `cells.gru_torch` (reset gate after the matmul, PyTorch's definition), whose `b_hn`
is PyTorch's `bias_hh`'s candidate block and whose `b` holds the other five blocks summed. So
`to_torch` gives the same function with the summed biases on `bias_ih` and zeros (LSTM, RNN)
or `[0, 0, b_hn]` (GRU) on `bias_hh`, not the same tensors.

Carries: PyTorch's `h_n` (and the LSTM's `c_n`) are `[num_layers * directions, batch, hidden]`,
layer-major, forward before reverse; `carry_from_torch` / `carry_to_torch` map them to the
carry structure of `rnn_jax.interop.layers` (per layer the cell's carry or `(forward,
backward)`; one layer: that carry, several: a tuple).

Tensors are read through `.detach().cpu().numpy()` when they have it, so this module never
imports torch; numpy arrays work as well.
"""

import functools
import re
from collections import Counter
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax.cells import get_cell
from rnn_jax.cells.base import Cell
from rnn_jax.cells.gru_torch import GRUTorchParams
from rnn_jax.cells.lstm import LSTMParams, LSTMState
from rnn_jax.cells.vanilla import VanillaParams
from rnn_jax.unroll import BidirectionalParams

GATES = {"lstm": 4, "gru": 3, "rnn": 1}
NAMES = {4: "LSTM", 3: "GRU", 1: "RNN"}
_KEY = re.compile(r"^(weight|bias)_(ih|hh|hr)_l(\d+)(_reverse)?$")


def to_numpy(value: Any) -> np.ndarray:
    """A torch tensor (any device, requiring grad or not) or array-like as a numpy array."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":  # NumPy has no bfloat16: widen (exact), back
            return value.float().numpy().astype(jnp.bfloat16)
        value = value.numpy()
    return np.asarray(value)


def torch_cell(kind: str, nonlinearity: str = "tanh") -> Cell:
    """The rnn_jax cell computing PyTorch's `kind` ("lstm", "gru" or "rnn" with `nonlinearity`)."""
    if kind not in GATES:
        raise ValueError(f"expected kind in {sorted(GATES)}, received {kind!r}")
    if kind == "rnn":
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"expected nonlinearity 'tanh' or 'relu' (nn.RNN's), received "
                             f"{nonlinearity!r}")
        return get_cell("vanilla", activation=nonlinearity)
    return get_cell({"lstm": "lstm", "gru": "gru_torch"}[kind])


def _parse(state_dict: Mapping[str, Any], prefix: str) -> dict:
    """`{(layer, reverse): {"weight_ih": array, ...}}` from a state_dict; unknown keys raise."""
    entries: dict = {}
    for key, value in state_dict.items():
        if not key.startswith(prefix):
            continue
        match = _KEY.match(key[len(prefix):])
        if match is None:
            raise ValueError(f"expected PyTorch RNN keys like 'weight_ih_l0', received {key!r}")
        kind, side, layer, reverse = match.groups()
        if side == "hr":
            raise ValueError(f"expected an LSTM without projections (proj_size=0), received "
                             f"{key!r}: proj_size is not supported")
        entries.setdefault((int(layer), bool(reverse)), {})[f"{kind}_{side}"] = to_numpy(value)
    if not entries:
        raise ValueError(f"expected keys 'weight_ih_l0', ... under prefix {prefix!r}, received "
                         f"{sorted(state_dict)[:6]}")
    return entries


def _other_kind(weight_hh: np.ndarray, gates: int) -> str | None:
    """The module whose gates weight_hh's rows/columns suggest, when not `gates`' (a hint)."""
    guess = NAMES.get(weight_hh.shape[0] / max(weight_hh.shape[-1], 1))
    return guess if guess and guess != NAMES[gates] else None


def _full_key(name: str, key: str) -> str:
    """`"rnn.l1_reverse", "weight_hh"` -> `"rnn.weight_hh_l1_reverse"` (the state_dict's key)."""
    prefix, _, layer = name.rpartition("l")
    return f"{prefix}{key}_l{layer}"


def _hidden_size(entries: dict, gates: int) -> int:
    """The hidden size most tensors imply (weight_hh's columns; every tensor's rows / gates), so
    one tensor of a wrong shape is named rather than all the others; weights of another module
    altogether (`_other_kind`) keep weight_hh_l0's columns."""
    first = entries[(0, False)]["weight_hh"]
    if _other_kind(first, gates) or first.ndim != 2:
        return first.shape[-1]
    votes: Counter = Counter()
    for tensors in entries.values():
        for key, value in tensors.items():
            if key == "weight_hh" and value.ndim == 2:
                votes[value.shape[1]] += 1
            if value.ndim >= 1 and value.shape[0] % gates == 0:
                votes[value.shape[0] // gates] += 1
    return votes.most_common(1)[0][0] if votes else first.shape[-1]


def _dtype_of(entries: dict, prefix: str, dtype) -> np.dtype:
    """The params' dtype: `dtype`, or None: the floating tensors' common dtype. Integer or
    boolean tensors are refused (no cast could make them weights)."""
    for (layer, reverse), tensors in sorted(entries.items()):
        for key, value in tensors.items():
            if not jnp.issubdtype(value.dtype, jnp.floating):
                name = f"{prefix}{key}_l{layer}{'_reverse' if reverse else ''}"
                raise ValueError(f"expected floating-point tensors, received {name} of dtype "
                                 f"{value.dtype}")
    if dtype is not None:
        return dtype
    dtypes = [v.dtype for t in entries.values() for v in t.values()]
    return jax.dtypes.canonicalize_dtype(functools.reduce(jnp.promote_types, dtypes))  # x64


def _layer_params(kind: str, name: str, tensors: dict, input_size: int, hidden: int, dtype):
    """One direction of one layer, shapes checked against `kind`, `input_size` and `hidden`."""
    gates = GATES[kind]
    for required in ("weight_ih", "weight_hh"):
        if required not in tensors:
            raise ValueError(f"{name}: expected key {required!r}, missing (received "
                             f"{sorted(tensors)})")
    biases = [b for b in ("bias_ih", "bias_hh") if b in tensors]
    if len(biases) == 1:
        missing = ({"bias_ih", "bias_hh"} - set(biases)).pop()
        raise ValueError(f"{name}: expected both biases or neither (bias=False), missing "
                         f"{missing!r}")
    expected = {"weight_ih": (gates * hidden, input_size), "weight_hh": (gates * hidden, hidden)}
    expected.update({b: (gates * hidden,) for b in biases})
    received = {key: tensors[key].shape for key in expected}
    if received != expected:
        guess = _other_kind(tensors["weight_hh"], gates)
        hint = f" ({guess} weights?)" if guess else ""
        odd = ", ".join(f"{_full_key(name, key)} {received[key]}" for key in expected
                        if received[key] != expected[key])
        raise ValueError(f"{name}: expected {NAMES[gates]} shapes {expected}, received "
                         f"{received}{hint}; wrong shape: {odd}")
    # cast first, so the biases are summed in the params' dtype (not in float16)
    tensors = {key: value.astype(jnp.dtype(dtype)) for key, value in tensors.items()}
    zeros = np.zeros((gates * hidden,), tensors["weight_ih"].dtype)
    b_ih, b_hh = tensors.get("bias_ih", zeros), tensors.get("bias_hh", zeros)
    U, W = (jnp.asarray(tensors[k].T, dtype) for k in ("weight_ih", "weight_hh"))
    if kind == "gru":  # b_hn stays inside the reset gate's product (cells/gru_torch.py)
        b = b_ih + np.concatenate([b_hh[: 2 * hidden], np.zeros_like(b_hh[2 * hidden:])])
        return GRUTorchParams(U=U, W=W, b=jnp.asarray(b, dtype),
                              b_hn=jnp.asarray(b_hh[2 * hidden:], dtype))
    params_type = LSTMParams if kind == "lstm" else VanillaParams
    return params_type(U=U, W=W, b=jnp.asarray(b_ih + b_hh, dtype))


def from_torch(
    state_dict: Mapping[str, Any],
    kind: str,
    *,
    nonlinearity: str = "tanh",
    prefix: str = "",
    dtype=None,
) -> tuple[Cell, tuple[Any, ...]]:
    """rnn_jax `(cell, layers)` computing the PyTorch module that `state_dict` came from.

    Args:
      state_dict: an `nn.LSTM` / `nn.GRU` / `nn.RNN` state_dict (tensors or numpy arrays);
        the number of layers and the directions are read from its keys.
      kind: "lstm", "gru" or "rnn": the module the weights must be of.
      nonlinearity: `nn.RNN`'s ("tanh" or "relu"), which its state_dict does not record.
      prefix: the module's key prefix inside a larger model's state_dict (e.g. "rnn.").
      dtype: of the params: every tensor is cast to it (float16, bfloat16, float64 alike);
        None: the tensors' common floating dtype (float64 only under x64). Integer tensors
        are refused (a ValueError names the key and the dtype). The unroll then casts
        inputs to the params' dtype (`rnn_jax.sequence`'s dtype rule).
    Returns:
      `(cell, layers)`: one entry per layer, `BidirectionalParams` if bidirectional; for
      `rnn_jax.interop.layers.apply_layers` and the flax modules.
    """
    cell = torch_cell(kind, nonlinearity)
    entries = _parse(state_dict, prefix)
    num_layers = max(layer for layer, _ in entries) + 1
    bidirectional = any(reverse for _, reverse in entries)
    expected_keys = {(layer, r) for layer in range(num_layers)
                     for r in ((False, True) if bidirectional else (False,))}
    if set(entries) != expected_keys:
        missing = sorted(expected_keys - set(entries))
        raise ValueError(f"expected weights of {num_layers} layers x "
                         f"{2 if bidirectional else 1} directions, missing (layer, reverse) "
                         f"{missing}")
    first = entries[(0, False)]
    if "weight_hh" not in first:
        raise ValueError(f"expected key {prefix}weight_hh_l0, missing")
    dtype = _dtype_of(entries, prefix, dtype)
    hidden = _hidden_size(entries, GATES[kind])
    input_size = first["weight_ih"].shape[-1] if "weight_ih" in first else 0
    layers = []
    for layer in range(num_layers):
        size_in = input_size if layer == 0 else hidden * (2 if bidirectional else 1)
        directions = [
            _layer_params(kind, f"{prefix}l{layer}{'_reverse' if r else ''}",
                          entries[(layer, r)], size_in, hidden, dtype)
            for r in ((False, True) if bidirectional else (False,))
        ]
        layers.append(BidirectionalParams(*directions) if bidirectional else directions[0])
    return cell, tuple(layers)


def _check_kind_params(kind: str, params: Any) -> None:
    expected = {"lstm": LSTMParams, "gru": GRUTorchParams, "rnn": VanillaParams}[kind]
    if not isinstance(params, expected):
        raise ValueError(f"expected {expected.__name__} for PyTorch's {kind}, received "
                         f"{type(params).__name__}")


def to_torch(kind: str, layers: tuple[Any, ...], *, prefix: str = "") -> dict[str, np.ndarray]:
    """A state_dict (numpy arrays) for PyTorch's `kind` holding `layers` (`from_torch`'s form)."""
    if kind not in GATES:
        raise ValueError(f"expected kind in {sorted(GATES)}, received {kind!r}")
    state = {}
    for layer, params in enumerate(layers):
        pairs = ((params.forward, ""), (params.backward, "_reverse")) if isinstance(
            params, BidirectionalParams) else ((params, ""),)
        for direction, suffix in pairs:
            _check_kind_params(kind, direction)
            b = np.array(direction.b)  # copies: writable, as torch.from_numpy wants
            b_hh = np.zeros_like(b)
            if kind == "gru":  # r, z biases stay summed on bias_ih; b_hn is the hh candidate
                b_hh[2 * b.shape[0] // 3:] = np.array(direction.b_hn)
            name = f"l{layer}{suffix}"
            state[f"{prefix}weight_ih_{name}"] = np.array(direction.U).T.copy()
            state[f"{prefix}weight_hh_{name}"] = np.array(direction.W).T.copy()
            state[f"{prefix}bias_ih_{name}"] = b
            state[f"{prefix}bias_hh_{name}"] = b_hh
    return state


def carry_from_torch(layers: tuple[Any, ...], h_n: Any, c_n: Any = None):
    """PyTorch's `h_n` (and `c_n` for an LSTM) `[layers*directions, batch, hidden]` as the
    carry of `apply_layers(cell, layers, ...)`."""
    h_n = jnp.asarray(to_numpy(h_n))
    c_n = None if c_n is None else jnp.asarray(to_numpy(c_n))
    directions = 2 if isinstance(layers[0], BidirectionalParams) else 1
    if h_n.ndim != 3 or h_n.shape[0] != len(layers) * directions:
        raise ValueError(f"expected h_n [{len(layers) * directions}, batch, hidden], received "
                         f"{h_n.shape}")
    lstm = _is_lstm(layers[0])
    if lstm and c_n is None:
        raise ValueError("expected c_n for an LSTM, received None")
    one = lambda i: LSTMState(h=h_n[i], c=c_n[i]) if lstm else h_n[i]
    carries = [one(i) if directions == 1 else (one(i), one(i + 1))
               for i in range(0, h_n.shape[0], directions)]
    return carries[0] if len(carries) == 1 else tuple(carries)


def carry_to_torch(layers: tuple[Any, ...], carry: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """The inverse of `carry_from_torch`: `(h_n, c_n)` numpy arrays (`c_n` None unless LSTM)."""
    per_layer = (carry,) if len(layers) == 1 else tuple(carry)
    flat = [c for layer in per_layer for c in (
        layer if isinstance(layers[0], BidirectionalParams) else (layer,))]
    if _is_lstm(layers[0]):
        return (np.stack([np.asarray(c.h) for c in flat]),
                np.stack([np.asarray(c.c) for c in flat]))
    return np.stack([np.asarray(c) for c in flat]), None


def _is_lstm(layer_params: Any) -> bool:
    params = layer_params.forward if isinstance(layer_params, BidirectionalParams) else layer_params
    return isinstance(params, LSTMParams)
