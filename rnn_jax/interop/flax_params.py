"""flax's LSTM and GRU cell params to and from rnn_jax's, and flax's LSTM carry.

    params = lstm_from_flax(variables["params"]["cell"])      # linen LSTMCell / OptimizedLSTMCell
    params = lstm_from_flax(nnx.state(nnx_cell))              # nnx LSTMCell / OptimizedLSTMCell
    flax_params = lstm_to_flax(params)                        # linen layout (both cells share it)

Layouts (flax's `recurrent.py`; kernels `[in, out]` as rnn_jax's, so nothing is transposed):
- linen `LSTMCell` and `OptimizedLSTMCell`, nnx `LSTMCell`: one Dense per gate, `i{g}` (kernel,
  no bias) on the inputs and `h{g}` (kernel, bias) on h for g in (i, f, g, o), rnn_jax's gate
  order: U, W, b are the per-gate blocks concatenated (nnx names the `if` Dense `if_`).
- nnx `OptimizedLSTMCell`: `dense_i` (kernel `[in, 4H]`) and `dense_h` (kernel `[H, 4H]`,
  bias): U, W, b themselves ("nnx_optimized" layout).
- linen `GRUCell`: `ir`, `iz`, `in` (kernel, bias) and `hr`, `hz` (kernel), `hn` (kernel,
  bias); nnx `GRUCell`: `dense_i` (kernel, bias), `dense_h` (kernel, no bias: b_hn = 0). Both
  apply the reset gate after the recurrent matmul: `cells.gru_torch`'s `GRUTorchParams`.

flax's LSTM carry is `(c, h)`; rnn_jax's `LSTMState(h, c)`.
"""

from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np
from flax import nnx

from rnn_jax.cells.gru_torch import GRUTorchParams
from rnn_jax.cells.lstm import GATE_ORDER, LSTMParams, LSTMState

LSTM_LINEN = {**{f"i{g}": ("kernel",) for g in GATE_ORDER},
              **{f"h{g}": ("kernel", "bias") for g in GATE_ORDER}}
GRU_LINEN = {"ir": ("kernel", "bias"), "iz": ("kernel", "bias"), "in": ("kernel", "bias"),
             "hr": ("kernel",), "hz": ("kernel",), "hn": ("kernel", "bias")}
NNX_FUSED = {"dense_i": ("kernel",), "dense_h": ("kernel", "bias")}
GRU_NNX = {"dense_i": ("kernel", "bias"), "dense_h": ("kernel",)}
LAYOUTS = ("linen", "nnx_optimized")
NNX_NAMES = {"if_": "if"}  # nnx's LSTMCell attribute for the `if` Dense (a Python keyword)


def _plain(params: Any) -> dict:
    """Nested dicts of arrays from a linen params dict (FrozenDict, or variables with a
    "params" entry) or an nnx `State`."""
    if isinstance(params, nnx.State):
        params = nnx.to_pure_dict(params)
    if not isinstance(params, Mapping):
        raise ValueError(f"expected flax cell params (a mapping or nnx.State), received "
                         f"{type(params).__name__}")
    if set(params) == {"params"}:
        params = params["params"]
    as_arrays = lambda entry: ({k: np.asarray(v) for k, v in entry.items()}
                               if isinstance(entry, Mapping) else entry)
    return {NNX_NAMES.get(name, name): as_arrays(entry) for name, entry in params.items()}


def _matches(params: dict, layout: dict) -> bool:
    return set(params) == set(layout) and all(
        isinstance(params[name], dict) and set(params[name]) == set(keys)
        for name, keys in layout.items())


def _describe(params: dict) -> dict:
    return {name: sorted(entry) if isinstance(entry, dict) else type(entry).__name__
            for name, entry in params.items()}


def _check_sizes(cell: str, kernel_h: np.ndarray, kernel_i: np.ndarray, gates: int,
                 hidden_size: int | None, input_size: int | None) -> None:
    hidden, size_in = kernel_h.shape[0], kernel_i.shape[0]
    if hidden_size is not None and hidden != hidden_size:
        raise ValueError(f"expected a flax {cell} cell of hidden size {hidden_size}, received "
                         f"hidden size {hidden}")
    if input_size is not None and size_in != input_size:
        raise ValueError(f"expected a flax {cell} cell of input size {input_size}, received "
                         f"input size {size_in}")
    if kernel_h.shape != (hidden, gates * hidden) or kernel_i.shape[-1] != gates * hidden:
        raise ValueError(f"expected {cell} kernels [in, {gates}*{hidden}] and [{hidden}, "
                         f"{gates}*{hidden}], received {kernel_i.shape} and {kernel_h.shape}")


def lstm_from_flax(params: Any, *, hidden_size: int | None = None,
                   input_size: int | None = None, dtype=None) -> LSTMParams:
    """rnn_jax `LSTMParams` from a flax LSTM cell's params (any layout in the docstring).

    `hidden_size` / `input_size`, when given, are checked (a ValueError naming both sizes).
    """
    params = _plain(params)
    if _matches(params, LSTM_LINEN):
        cat = lambda side, leaf: np.concatenate(
            [params[f"{side}{g}"][leaf] for g in GATE_ORDER], axis=-1)
        U, W, b = cat("i", "kernel"), cat("h", "kernel"), cat("h", "bias")
    elif _matches(params, NNX_FUSED):
        U, W = params["dense_i"]["kernel"], params["dense_h"]["kernel"]
        b = params["dense_h"]["bias"]
    else:
        raise ValueError(f"expected flax LSTM cell params {LSTM_LINEN} (LSTMCell, linen "
                         f"OptimizedLSTMCell) or {NNX_FUSED} (nnx OptimizedLSTMCell), received "
                         f"{_describe(params)}")
    _check_sizes("LSTM", W, U, 4, hidden_size, input_size)
    return LSTMParams(*(jnp.asarray(a, dtype) for a in (U, W, b)))


def lstm_to_flax(params: LSTMParams, *, layout: str = "linen") -> dict:
    """A flax LSTM cell's params holding `params`: "linen" (linen `LSTMCell` and
    `OptimizedLSTMCell`, nnx `LSTMCell`) or "nnx_optimized" (nnx `OptimizedLSTMCell`)."""
    if not isinstance(params, LSTMParams):
        raise ValueError(f"expected LSTMParams, received {type(params).__name__}")
    if layout not in LAYOUTS:
        raise ValueError(f"expected layout in {LAYOUTS}, received {layout!r}")
    if layout == "nnx_optimized":
        return {"dense_i": {"kernel": params.U}, "dense_h": {"kernel": params.W, "bias": params.b}}
    blocks = lambda a: dict(zip(GATE_ORDER, jnp.split(a, 4, axis=-1)))
    U, W, b = blocks(params.U), blocks(params.W), blocks(params.b)
    flax_params = {f"i{g}": {"kernel": U[g]} for g in GATE_ORDER}
    flax_params.update({f"h{g}": {"kernel": W[g], "bias": b[g]} for g in GATE_ORDER})
    return flax_params


def gru_from_flax(params: Any, *, hidden_size: int | None = None,
                  input_size: int | None = None, dtype=None) -> GRUTorchParams:
    """`cells.gru_torch` params from a flax `GRUCell`'s (linen or nnx)."""
    params = _plain(params)
    if _matches(params, GRU_LINEN):
        U = np.concatenate([params[f"i{g}"]["kernel"] for g in "rzn"], axis=-1)
        W = np.concatenate([params[f"h{g}"]["kernel"] for g in "rzn"], axis=-1)
        b = np.concatenate([params[f"i{g}"]["bias"] for g in "rzn"], axis=-1)
        b_hn = params["hn"]["bias"]
    elif _matches(params, GRU_NNX):
        U, b = params["dense_i"]["kernel"], params["dense_i"]["bias"]
        W = params["dense_h"]["kernel"]
        b_hn = np.zeros(W.shape[:1], W.dtype)
    else:
        raise ValueError(f"expected flax GRUCell params {GRU_LINEN} (linen) or {GRU_NNX} (nnx), "
                         f"received {_describe(params)}")
    _check_sizes("GRU", W, U, 3, hidden_size, input_size)
    return GRUTorchParams(*(jnp.asarray(a, dtype) for a in (U, W, b, b_hn)))


def gru_to_flax(params: GRUTorchParams) -> dict:
    """A linen `GRUCell`'s params holding `params` (nnx's GRUCell has no b_hn to hold it)."""
    if not isinstance(params, GRUTorchParams):
        raise ValueError(f"expected GRUTorchParams (cells.gru_torch), received "
                         f"{type(params).__name__}")
    blocks = lambda a: dict(zip("rzn", jnp.split(a, 3, axis=-1)))
    U, W, b = blocks(params.U), blocks(params.W), blocks(params.b)
    flax_params = {f"i{g}": {"kernel": U[g], "bias": b[g]} for g in "rzn"}
    flax_params.update({f"h{g}": {"kernel": W[g]} for g in "rz"})
    flax_params["hn"] = {"kernel": W["n"], "bias": params.b_hn}
    return flax_params


def lstm_carry_from_flax(carry: tuple[Any, Any]) -> LSTMState:
    """flax's LSTM carry `(c, h)` as rnn_jax's `LSTMState(h, c)`."""
    c, h = carry
    return LSTMState(h=h, c=c)


def lstm_carry_to_flax(state: LSTMState) -> tuple[Any, Any]:
    """rnn_jax's `LSTMState(h, c)` as flax's LSTM carry `(c, h)`."""
    return state.c, state.h
