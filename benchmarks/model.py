"""The benchmark's one model, shared by every implementation: its weights and its batch.

Char-LM training step: embedding `[vocab, hidden]` -> 1-layer LSTM or GRU (hidden units) ->
linear readout `[hidden, vocab]` -> softmax cross-entropy averaged over all steps; Adam.

Every implementation starts from the same `LSTMWeights` / `GRUWeights` (rnn_jax's layout:
matrices `[in, out]` applied as `x @ U`, fused gates along the last axis) and maps them onto its
own parameters, so all of them compute the same first loss from the same batch. The GRU comes
in two definitions: the notes' GRU (rnn_jax, haiku) applies the reset gate before the recurrent
matmul, `n = tanh(x U_n + b_n + (r * h) W_n)`; PyTorch's (torch, flax, equinox) after it,
`n = tanh(x U_n + b_n + r * (h W_n + b_hn))`. Same FLOPs; `b_hn` is used by the second only.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

GATES = {"lstm": 4, "gru": 3}
LSTM_GATE_ORDER = ("i", "f", "g", "o")  # PyTorch's order; c = f c + i g, h = o tanh(c)
GRU_GATE_ORDER = ("r", "z", "n")  # PyTorch's order; h = z h_prev + (1 - z) n


class LSTMWeights(NamedTuple):
    embedding: jax.Array  # [vocab, hidden]
    U: jax.Array  # [hidden, 4*hidden] input weights, gates (i, f, g, o)
    W: jax.Array  # [hidden, 4*hidden] recurrent weights
    b: jax.Array  # [4*hidden]
    V: jax.Array  # [hidden, vocab] readout
    c: jax.Array  # [vocab]


class GRUWeights(NamedTuple):
    embedding: jax.Array  # [vocab, hidden]
    U: jax.Array  # [hidden, 3*hidden] input weights, gates (r, z, n)
    W: jax.Array  # [hidden, 3*hidden] recurrent weights
    b: jax.Array  # [3*hidden] input-side biases
    b_hn: jax.Array  # [hidden] recurrent-side candidate bias (reset-after GRUs only)
    V: jax.Array  # [hidden, vocab] readout
    c: jax.Array  # [vocab]


def init_weights(key: jax.Array, cell: str, vocab: int, hidden: int, *, bias_scale: float = 0.1):
    """Scaled normal matrices; biases normal times `bias_scale` (nonzero: then the first losses
    of the implementations agree only if every bias is mapped too)."""
    if cell not in GATES:
        raise ValueError(f"expected cell in {sorted(GATES)}, received {cell!r}")
    gates = GATES[cell] * hidden
    keys = jax.random.split(key, 8)
    scale = 1.0 / jnp.sqrt(hidden)
    fields = {
        "embedding": 0.1 * jax.random.normal(keys[0], (vocab, hidden)),
        "U": scale * jax.random.normal(keys[1], (hidden, gates)),
        "W": scale * jax.random.normal(keys[2], (hidden, gates)),
        "b": bias_scale * jax.random.normal(keys[3], (gates,)),
        "V": scale * jax.random.normal(keys[4], (hidden, vocab)),
        "c": bias_scale * jax.random.normal(keys[5], (vocab,)),
    }
    if cell == "lstm":
        return LSTMWeights(**fields)
    return GRUWeights(b_hn=bias_scale * jax.random.normal(keys[6], (hidden,)), **fields)


def make_batch(key: jax.Array, batch: int, time: int, vocab: int):
    """Random tokens: `(inputs [batch, time], targets [batch, time])`, targets shifted by one."""
    tokens = jax.random.randint(key, (batch, time + 1), 0, vocab)
    return tokens[:, :-1], tokens[:, 1:]



def check_weights(weights, cell: str) -> None:
    expected = {"lstm": LSTMWeights, "gru": GRUWeights}[cell]
    if not isinstance(weights, expected):
        raise TypeError(f"expected {expected.__name__} for the {cell}, received "
                        f"{type(weights).__name__}")


def init_apply_model(init, apply, params, library: str):
    """`(params, loss_fn)` for a library's `init(key, tokens)` / `apply(params, tokens) -> logits`
    pair (flax, haiku) and `params` mapped from our weights, which must have `init`'s tree."""
    expected = jax.eval_shape(init, jax.random.key(0), jnp.zeros((1, 2), jnp.int32))
    if jax.tree.structure(expected) != jax.tree.structure(params):
        raise ValueError(f"expected {library} params {jax.tree.structure(expected)}, "
                         f"received {jax.tree.structure(params)}")

    def loss_fn(params, tokens, targets):
        return cross_entropy(apply(params, tokens), targets)

    return params, loss_fn


def cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy over `[batch, time]`: the loss of every JAX implementation."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()
