"""The pure function behind the flax modules: a (deep, bidirectional) RNN with flax's options.

`apply_layers(cell, layers, inputs, ...)` is `rnn_jax.unroll` over a stack of layers with the
conventions of flax's `nn.RNN` / `nnx.RNN` and PyTorch's `nn.LSTM`:

- `time_major`: inputs `[time, batch, features]` (else `[batch, time, features]`), outputs alike;
- `seq_lengths` `[batch]`: steps past a sequence's length are padding; the final carry is the
  state after its last real step (flax), and padded outputs are zeros (flax leaves them
  unmasked: they hold whatever the scan computed);
- `reverse`: each sequence runs from its last valid step back to its first; with
  `keep_order=False` (flax's default) the outputs come in the order they were computed, i.e.
  reversed, padding still at the end; with `keep_order=True` in the inputs' order;
- `bidirectional`: a forward and a reversed direction per layer, outputs concatenated
  `[..., 2*hidden]` in the inputs' order (flax's `nn.Bidirectional`, PyTorch's
  `bidirectional=True`); `num_layers`: layer l + 1 reads layer l's outputs (PyTorch's stack);
- an `embedding` `[vocab, in]` makes the inputs integer tokens `[batch, time]`: the first
  layer gathers rows of `embedding @ U + b` (`rnn_jax.tokens`) instead of multiplying.

`layers` is a tuple with one entry per layer: the cell's params, or `BidirectionalParams`.
Carries: per layer the cell's carry, or `(forward, backward)` when bidirectional; the carry
of the whole stack is that layer carry when `num_layers == 1` (as flax's) and a tuple of them
otherwise (as PyTorch's `h_n`, one entry per layer).
"""

from typing import Any

import jax
import jax.numpy as jnp

from rnn_jax.cells.base import Cell
from rnn_jax.sequence import reverse_padded
from rnn_jax.tokens import unroll_tokens
from rnn_jax.unroll import BidirectionalParams, init_stack, unroll


def init_layers(
    cell: Cell,
    key: jax.Array,
    input_size: int,
    hidden_size: int,
    *,
    num_layers: int = 1,
    bidirectional: bool = False,
    dtype=jnp.float32,
) -> tuple[Any, ...]:
    """Params of `num_layers` layers of `cell` (each a `BidirectionalParams` if bidirectional)."""
    if not isinstance(num_layers, int) or isinstance(num_layers, bool) or num_layers < 1:
        raise ValueError(f"expected num_layers an int >= 1, received {num_layers!r}")
    return init_stack(
        key, [cell] * num_layers, input_size, [hidden_size] * num_layers,
        bidirectional=bidirectional, dtype=dtype,
    )


def apply_layers(
    cell: Cell,
    layers: tuple[Any, ...],
    inputs: jax.Array,
    *,
    initial_carry: Any = None,
    seq_lengths: jax.Array | None = None,
    reverse: bool = False,
    keep_order: bool = False,
    time_major: bool = False,
    embedding: jax.Array | None = None,
    **unroll_options,
) -> tuple[Any, jax.Array]:
    """Runs the stack; returns `(final_carry, outputs)` in flax's order.

    Args:
      cell: the `Cell` of every layer.
      layers: one params entry per layer (`BidirectionalParams` for a bidirectional stack).
      inputs: `[batch, time, features]` (`[time, batch, features]` if `time_major`); integer
        tokens `[batch, time]` (`[time, batch]`) when `embedding` is given.
      initial_carry: the carry structure described in the module docstring; None: zeros.
      seq_lengths: `[batch]` ints in [0, time].
      reverse, keep_order, time_major: flax's `nn.RNN` options (module docstring).
      embedding: `[vocab, in]`, for token inputs.
      **unroll_options: `unroll`, `remat`, `backward` of `rnn_jax.unroll`.
    Returns:
      `(carry, outputs [batch, time, hidden or 2*hidden])` (time-major if `time_major`).
    """
    layers = tuple(layers)
    bidirectional = bool(layers) and isinstance(layers[0], BidirectionalParams)
    _check(layers, inputs, bidirectional, reverse, embedding)
    if time_major:
        inputs = jnp.swapaxes(inputs, 0, 1)
    carries = _split_carry(initial_carry, len(layers))
    xs, final = inputs, []
    for index, (params, carry) in enumerate(zip(layers, carries)):
        table = embedding if index == 0 else None
        if bidirectional:
            carry_fw, carry_bw = (None, None) if carry is None else carry
            ys_fw, carry_fw = _run(cell, params.forward, xs, carry_fw, seq_lengths, False,
                                   table, unroll_options)
            ys_bw, carry_bw = _run(cell, params.backward, xs, carry_bw, seq_lengths, True,
                                   table, unroll_options)
            xs, carry = jnp.concatenate([ys_fw, ys_bw], axis=-1), (carry_fw, carry_bw)
        else:
            xs, carry = _run(cell, params, xs, carry, seq_lengths, reverse, table, unroll_options)
        final.append(carry)
    if reverse and not keep_order:  # flax: outputs in the order they were computed
        xs = reverse_padded(xs, seq_lengths)
    if time_major:
        xs = jnp.swapaxes(xs, 0, 1)
    return (final[0] if len(final) == 1 else tuple(final)), xs


def _run(cell, params, xs, carry, lengths, reverse, embedding, unroll_options):
    """One direction of one layer: `(ys in the inputs' order, final carry)`."""
    if embedding is not None:
        return unroll_tokens(cell, params, embedding, xs, carry=carry, lengths=lengths,
                             reverse=reverse, **unroll_options)
    return unroll(cell, params, xs, carry=carry, lengths=lengths, reverse=reverse,
                  **unroll_options)


def check_structure(layers: tuple[Any, ...], num_layers: int, bidirectional: bool) -> None:
    """A ValueError unless `layers` hold `num_layers` layers, bidirectional or not as asked
    (params given to a module built for another stack would run as the params say and return
    outputs of another width)."""
    received = bool(layers) and isinstance(layers[0], BidirectionalParams)
    if len(layers) != num_layers or received != bidirectional:
        raise ValueError(
            f"expected params of {num_layers} layer(s) with bidirectional={bidirectional}, "
            f"received {len(layers)} layer(s) with bidirectional={received}"
        )


def _split_carry(initial_carry: Any, num_layers: int) -> tuple[Any, ...]:
    if initial_carry is None:
        return (None,) * num_layers
    if num_layers == 1:
        return (initial_carry,)
    plain = type(initial_carry) in (tuple, list)  # not a carry NamedTuple (LSTMState)
    if not plain or len(initial_carry) != num_layers:
        received = (f"a {type(initial_carry).__name__} of {len(initial_carry)}" if plain
                    else type(initial_carry).__name__)
        raise ValueError(
            f"expected initial_carry a tuple of {num_layers} layer carries, received {received}"
        )
    return tuple(initial_carry)


def _check(layers, inputs, bidirectional, reverse, embedding) -> None:
    if not layers:
        raise ValueError("expected at least one layer of params, received none")
    if any(isinstance(p, BidirectionalParams) != bidirectional for p in layers):
        raise ValueError("expected every layer bidirectional or none, received a mixture")
    if bidirectional and reverse:
        raise ValueError(
            "expected reverse=False with bidirectional layers (they run both directions), "
            "received reverse=True"
        )
    rank = 2 if embedding is not None else 3
    if jnp.ndim(inputs) != rank:
        expected = "integer tokens [batch, time]" if rank == 2 else "[batch, time, features]"
        raise ValueError(
            f"expected inputs {expected} (or time-major), received shape {jnp.shape(inputs)}"
        )
