"""flax modules (linen and nnx) that run any rnn_jax cell through `rnn_jax.unroll`.

    layer = LinenRNN(rnn_jax.get_cell("lstm"), hidden_size=64, return_carry=True)
    variables = layer.init(key, xs)                    # {"params": {"layers": (LSTMParams,)}}
    carry, ys = layer.apply(variables, xs, seq_lengths=lengths)

    layer = NnxRNN(rnn_jax.get_cell("gru_torch"), 3, 64, num_layers=2, rngs=nnx.Rngs(0))
    ys = layer(xs, seq_lengths=lengths)

Both follow flax's `nn.RNN` call signature (`initial_carry`, `seq_lengths`, `return_carry`,
`time_major`, `reverse`, `keep_order`, per call or as attributes) plus PyTorch's
`num_layers` and `bidirectional`; `rnn_jax.interop.layers` says what each means. Being
`rnn_jax.unroll`, they bring its hand-written backward pass and `remat` options, and padded
outputs are zeros. With `vocab_size`, the module owns an embedding and takes integer tokens:
embedding and input projection become one table gather (`rnn_jax.tokens`).

Parameters are the cells' NamedTuples, one entry per layer (`BidirectionalParams` when
bidirectional): in linen under `params["layers"]` (and `params["embedding"]`), in nnx as
`nnx.Param` leaves of `module.layers`, so the usual `TrainState` / `nnx.Optimizer` code trains
them, and the converters (`rnn_jax.interop.torch_params`, `flax_params`) fill them directly
(`NnxRNN.from_layers`). Carries are the cell's own (an LSTM's `LSTMState(h, c)`; flax's LSTM
carry is `(c, h)`: `flax_params.lstm_carry_from_flax` converts).
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx

from rnn_jax.cells import get_cell
from rnn_jax.cells.base import Cell
from rnn_jax.interop.layers import apply_layers, check_structure, init_layers

# flax's nn.Embed default: variance_scaling(1.0, "fan_in", "normal", out_axis=0)
embedding_init = nn.initializers.variance_scaling(1.0, "fan_in", "normal", out_axis=0)


def as_cell(cell: Cell | str) -> Cell:
    """A `Cell` as given, or the registered cell of that name."""
    if isinstance(cell, str):
        return get_cell(cell)
    if not isinstance(cell, Cell):
        raise ValueError(f"expected a rnn_jax Cell or a cell name, received {type(cell).__name__}")
    return cell


def _pick(value, default):
    return default if value is None else value


class LinenRNN(nn.Module):
    """A (deep, bidirectional) RNN of rnn_jax cells as a `flax.linen.Module`.

    Attributes:
      cell: a rnn_jax `Cell` (or its registered name).
      hidden_size: units per layer and direction.
      num_layers, bidirectional: PyTorch's stack options.
      vocab_size, embed_size: token inputs through an owned `[vocab_size, embed_size]`
        embedding (`embed_size` None: `hidden_size`); None: float inputs.
      time_major, return_carry, reverse, keep_order: flax's `nn.RNN` attributes.
      unroll, remat, backward: `rnn_jax.unroll`'s options.
      param_dtype: dtype of the params.
    """

    cell: Cell | str
    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False
    vocab_size: int | None = None
    embed_size: int | None = None
    time_major: bool = False
    return_carry: bool = False
    reverse: bool = False
    keep_order: bool = False
    unroll: int | None = None
    remat: bool | int | str = False
    backward: str = "handwritten"
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, inputs, *, initial_carry=None, seq_lengths=None, return_carry=None,
                 time_major=None, reverse=None, keep_order=None):
        """`inputs [batch, time, features]` (or tokens `[batch, time]`) -> outputs
        `[batch, time, hidden or 2*hidden]`, or `(carry, outputs)` with `return_carry`."""
        cell = as_cell(self.cell)
        embedding = None
        if self.vocab_size is not None:
            shape = (self.vocab_size, _pick(self.embed_size, self.hidden_size))
            embedding = self.param("embedding", embedding_init, shape, self.param_dtype)
            input_size = shape[1]
        else:
            input_size = jnp.shape(inputs)[-1]
        layers = self.param(
            "layers", lambda key: init_layers(
                cell, key, input_size, self.hidden_size, num_layers=self.num_layers,
                bidirectional=self.bidirectional, dtype=self.param_dtype))
        check_structure(tuple(layers), self.num_layers, self.bidirectional)
        carry, outputs = apply_layers(
            cell, layers, inputs, initial_carry=initial_carry, seq_lengths=seq_lengths,
            reverse=_pick(reverse, self.reverse), keep_order=_pick(keep_order, self.keep_order),
            time_major=_pick(time_major, self.time_major), embedding=embedding,
            unroll=self.unroll, remat=self.remat, backward=self.backward)
        return (carry, outputs) if _pick(return_carry, self.return_carry) else outputs


def _values(tree):
    """The arrays inside a tree of `nnx.Variable`s."""
    return jax.tree.map(lambda v: v[...], tree, is_leaf=lambda v: isinstance(v, nnx.Variable))


class NnxRNN(nnx.Module):
    """A (deep, bidirectional) RNN of rnn_jax cells as a `flax.nnx.Module`.

    Args:
      cell: a rnn_jax `Cell` (or its registered name).
      in_features: input width (the embedding's width with `vocab_size`).
      hidden_size: units per layer and direction.
      num_layers, bidirectional: PyTorch's stack options.
      vocab_size: token inputs through an owned `[vocab_size, in_features]` embedding.
      time_major, return_carry, reverse, keep_order: flax's `nnx.RNN` options.
      unroll, remat, backward: `rnn_jax.unroll`'s options.
      param_dtype: dtype of the params.
      rngs: `nnx.Rngs`; its `params` stream initialises the cells.
      layers, embedding: given params instead (then `in_features`, `hidden_size`,
        `num_layers`, `bidirectional`, `vocab_size` and `rngs` are read off them or unused).
    """

    def __init__(self, cell: Cell | str, in_features: int | None = None,
                 hidden_size: int | None = None, *, num_layers: int = 1,
                 bidirectional: bool = False, vocab_size: int | None = None,
                 time_major: bool = False, return_carry: bool = False, reverse: bool = False,
                 keep_order: bool = False, unroll: int | None = None,
                 remat: bool | int | str = False, backward: str = "handwritten",
                 param_dtype=jnp.float32, rngs: nnx.Rngs | None = None,
                 layers: tuple | None = None, embedding: jax.Array | None = None):
        cell = as_cell(cell)
        if layers is None:
            if in_features is None or hidden_size is None or rngs is None:
                raise ValueError(
                    f"expected in_features, hidden_size and rngs (or given layers), received "
                    f"{in_features}, {hidden_size} and {type(rngs).__name__}")
            layers = init_layers(cell, rngs.params(), in_features, hidden_size,
                                 num_layers=num_layers, bidirectional=bidirectional,
                                 dtype=param_dtype)
            if vocab_size is not None:
                embedding = embedding_init(rngs.params(), (vocab_size, in_features),
                                           param_dtype)
        self._set(cell, layers, embedding, dict(
            time_major=time_major, return_carry=return_carry, reverse=reverse,
            keep_order=keep_order, unroll=unroll, remat=remat, backward=backward))

    @classmethod
    def from_layers(cls, cell: Cell | str, layers: tuple, *, embedding=None, **options):
        """A module holding given params (e.g. converted from PyTorch): `layers` one entry per
        layer, `embedding` `[vocab, in]` or None; `options` as for the constructor."""
        return cls(cell, layers=tuple(layers), embedding=embedding, **options)

    def _set(self, cell: Cell, layers: tuple, embedding, options: dict) -> None:
        self.cell = nnx.static(cell)
        self.layers = nnx.data(jax.tree.map(nnx.Param, tuple(layers)))
        self.embedding = None if embedding is None else nnx.Param(embedding)
        self.options = nnx.static(options)

    def __call__(self, inputs, *, initial_carry=None, seq_lengths=None, return_carry=None,
                 time_major=None, reverse=None, keep_order=None):
        """As `LinenRNN.__call__`."""
        options = self.options
        carry, outputs = apply_layers(
            self.cell, _values(self.layers), inputs, initial_carry=initial_carry,
            seq_lengths=seq_lengths, reverse=_pick(reverse, options["reverse"]),
            keep_order=_pick(keep_order, options["keep_order"]),
            time_major=_pick(time_major, options["time_major"]),
            embedding=None if self.embedding is None else self.embedding[...],
            unroll=options["unroll"], remat=options["remat"], backward=options["backward"])
        return (carry, outputs) if _pick(return_carry, options["return_carry"]) else outputs
