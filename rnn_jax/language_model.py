"""Language models over token ids: a recurrent LM and the fixed-window neural LM baseline.

Recurrent LM (one or more layers of any library cell):
    x(t) = E[w(t)]  (embedding; one-hot when the model has no embedding)
    h^l(t) = cell_l(h^l(t-1), dropout(h^{l-1}(t)))      h^0 = x
    o(t) = c + V dropout(h^L(t)),  p(w(t+1) | w(<=t)) = softmax(o(t))
Dropout (Zaremba et al. 2014) acts only on the non-recurrent connections: the output of each
recurrent layer, on its way to the next layer or to the readout; never on the carried state.

Fixed-window neural LM (Bengio et al. 2003): the previous K tokens w(t-K+1..t) are looked up
in one shared embedding table, concatenated, and fed to one hidden layer:
    h(t) = tanh(b + W [E[w(t-K+1)]; ...; E[w(t)]]),  o(t) = c + V h(t).

Both expose `apply(params, tokens, stream, key) -> (logits, stream)` where `stream` is what a
batch hands to the next one under truncated BPTT (the RNN's carries; the window model's last
K-1 tokens), and `step(params, stream, token) -> (stream, logits)` for sampling.
Every row starts from a zero stream (`initial_stream`, and `reset_state` zeros it again at a
reset), also for a cell with a learned initial state (the uRNN's h0 is not used here).
"""

import math
import numbers
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import optax

from rnn_jax import initializers, losses, readout
from rnn_jax.cells.base import Cell, affine
from rnn_jax.sequence import reset_state
from rnn_jax.tokens import unroll_tokens
from rnn_jax.unroll import init_stack, output_size, unroll

ApplyFn = Callable[[Any, jax.Array, Any, jax.Array | None], tuple[jax.Array, Any]]


class LMParams(NamedTuple):
    embed: jax.Array | None  # [vocab, embed]; None: one-hot inputs
    layers: tuple[Any, ...]  # one params per recurrent layer
    readout: readout.LinearParams  # V: [hidden, vocab], c: [vocab]


def init(
    key: jax.Array,
    cells: Sequence[Cell],
    vocab_size: int,
    hidden_sizes: Sequence[int],
    *,
    embed_size: int = 0,
    dtype=jnp.float32,
) -> LMParams:
    """Params of the recurrent LM; `embed_size=0` feeds one-hot vectors instead."""
    for name, size, least in (("vocab_size", vocab_size, 1), ("embed_size", embed_size, 0)):
        if not isinstance(size, numbers.Integral) or isinstance(size, bool) or size < least:
            raise ValueError(f"expected {name} an int >= {least}, received {size!r}")
    key_embed, key_layers, key_out = jax.random.split(key, 3)
    embed = None
    if embed_size:
        embed = jax.random.normal(key_embed, (vocab_size, embed_size), dtype)
    input_size = embed_size or vocab_size
    layers = init_stack(key_layers, cells, input_size, hidden_sizes, dtype=dtype)
    width = output_size(cells[-1], layers[-1])  # the uRNN emits [Re h; Im h]: 2 x hidden
    return LMParams(embed, layers, readout.init_linear(key_out, width, vocab_size, dtype=dtype))


def _embedding_matrix(params: LMParams) -> jax.Array:
    """`[vocab, embed]`, or the identity `[vocab, vocab]` for one-hot inputs."""
    if params.embed is None:
        return jnp.eye(params.readout.V.shape[1], dtype=params.readout.V.dtype)
    return params.embed


def _embed(params: LMParams, tokens: jax.Array) -> jax.Array:
    """`[...] int -> [..., embed or vocab]` (one-hot rows of the identity without an embedding)."""
    return _embedding_matrix(params)[tokens]


def _dropout(key: jax.Array | None, rate: float, x: jax.Array) -> jax.Array:
    """Inverted dropout; the identity when `key` is None (evaluation) or `rate` is 0."""
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0)


def _check_layers(cells: Sequence[Cell], params: LMParams) -> None:
    if not isinstance(params, LMParams) or len(cells) != len(params.layers):
        received = type(params).__name__
        if isinstance(params, LMParams):
            received = f"LMParams with {len(params.layers)} layers"
        raise ValueError(f"expected LMParams with {len(cells)} layers (one per cell), received "
                         f"{received}")


def initial_stream(cells: Sequence[Cell], params: LMParams, batch_size: int) -> tuple[Any, ...]:
    """Zero carries of every layer, `[batch, ...]` leaves: the truncated-BPTT stream.

    Every leaf is its own buffer, so the loop can donate the stream with its train state.
    """
    carries = tuple(cell.initial_carry(p, (batch_size,)) for cell, p in zip(cells, params.layers))
    return jax.tree.map(jnp.zeros_like, carries)


def apply(
    cells: Sequence[Cell],
    params: LMParams,
    tokens: jax.Array,
    stream: Any = None,
    key: jax.Array | None = None,
    *,
    dropout_rate: float = 0.0,
) -> tuple[jax.Array, tuple[Any, ...]]:
    """Logits for the next token at every step, teacher forced.

    Args:
      tokens: `[batch, time]` int ids.
      stream: every layer's carry at the start (None: `initial_stream`, zeros).
      key: dropout key; None disables dropout.
    Returns:
      `(logits [batch, time, vocab], every layer's final carry)`.
    """
    _check_layers(cells, params)
    carries = initial_stream(cells, params, tokens.shape[0]) if stream is None else stream
    dropout = key is not None and dropout_rate > 0.0
    keys = jax.random.split(key, len(cells)) if dropout else (None,) * len(cells)
    xs, final = tokens, []
    for layer, (cell, layer_params, carry) in enumerate(zip(cells, params.layers, carries)):
        if layer == 0:  # embedding and input projection as one table gather (rnn_jax.tokens)
            xs, carry = unroll_tokens(cell, layer_params, _embedding_matrix(params), xs,
                                      carry=carry)
        else:
            xs, carry = unroll(cell, layer_params, xs, carry=carry)
        xs = _dropout(keys[layer], dropout_rate, xs)  # between layers / before the readout
        final.append(carry)
    return readout.linear(params.readout, xs), tuple(final)


def step(
    cells: Sequence[Cell], params: LMParams, stream: tuple[Any, ...], token: jax.Array
) -> tuple[tuple[Any, ...], jax.Array]:
    """One step for sampling: `token [batch]` -> `(new carries, logits [batch, vocab])`.

    Runs each cell's own `project_inputs` and `step`, as `apply` does through `unroll`.
    """
    _check_layers(cells, params)
    x = _embed(params, token)
    carries = []
    for cell, layer_params, carry in zip(cells, params.layers, stream):
        cell.input_size(layer_params)  # a ValueError unless these are the cell's params
        carry, x = cell.step(layer_params, carry, cell.project_inputs(layer_params, x))
        carries.append(carry)
    return tuple(carries), readout.linear(params.readout, x)


class WindowParams(NamedTuple):
    embed: jax.Array  # [vocab, embed] shared by the K window positions
    W: jax.Array  # [K*embed, hidden]
    b: jax.Array  # [hidden]
    readout: readout.LinearParams  # V: [hidden, vocab], c: [vocab]


def init_window(
    key: jax.Array, vocab_size: int, window: int, embed_size: int, hidden_size: int,
    *, dtype=jnp.float32,
) -> WindowParams:
    """Params of the fixed-window LM over the previous `window` (K) tokens."""
    if window < 1:
        raise ValueError(f"expected a window of >= 1 tokens, received {window}")
    key_embed, key_w, key_out = jax.random.split(key, 3)
    return WindowParams(
        embed=jax.random.normal(key_embed, (vocab_size, embed_size), dtype),
        W=initializers.glorot_uniform(key_w, (window * embed_size, hidden_size), dtype),
        b=jnp.zeros((hidden_size,), dtype),
        readout=readout.init_linear(key_out, hidden_size, vocab_size, dtype=dtype),
    )


def window_size(params: WindowParams) -> int:
    return params.W.shape[0] // params.embed.shape[1]


def window_initial_stream(params: WindowParams, batch_size: int) -> jax.Array:
    """The K-1 tokens before the first chunk, `[batch, K-1]` (zeros = token 0)."""
    return jnp.zeros((batch_size, window_size(params) - 1), jnp.int32)


def window_apply(
    params: WindowParams, tokens: jax.Array, stream: jax.Array | None = None, key=None
) -> tuple[jax.Array, jax.Array]:
    """`tokens [batch, time]` -> `(logits [batch, time, vocab], last K-1 tokens)`; the window
    at step t is the K tokens ending at t, reaching back into `stream` at the start."""
    window = window_size(params)
    if stream is None:
        stream = window_initial_stream(params, tokens.shape[0])
    history = jnp.concatenate([stream, tokens.astype(stream.dtype)], axis=1)  # [B, K-1+T]
    time = tokens.shape[1]
    windows = jnp.stack([history[:, i : i + time] for i in range(window)], axis=-1)  # [B,T,K]
    xs = params.embed[windows].reshape(*windows.shape[:2], -1)  # [B, T, K*embed]
    hs = jnp.tanh(affine(xs, params.W, params.b))
    return readout.linear(params.readout, hs), history[:, history.shape[1] - (window - 1) :]


def window_step(
    params: WindowParams, stream: jax.Array, token: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """One step for sampling: `token [batch]` -> `(new last K-1 tokens, logits [batch, vocab])`."""
    logits, stream = window_apply(params, token[:, None], stream)
    return stream, logits[:, 0]


def make_loss_fn(apply_fn: ApplyFn) -> Callable:
    """The loop's `loss_fn(params, batch, key, stream) -> (loss, (metrics, stream))`.

    Resets the carried stream where `batch["reset"]` (first chunk of an epoch), then computes
    the masked mean cross-entropy in nats per token.
    """

    def loss_fn(params, batch, key, stream):
        stream = reset_state(stream, batch["reset"])
        logits, stream = apply_fn(params, batch["inputs"], stream, key)
        loss = losses.softmax_cross_entropy(logits, batch["targets"], batch["mask"])
        return loss, ({"bits_per_char": loss / math.log(2.0)}, stream)

    return loss_fn


def make_eval_fn(
    apply_fn: ApplyFn, chunks: dict, stream: Any, prefix: str = "val_"
) -> Callable[[Any], dict]:
    """`eval_fn(params) -> {prefix + "nats", "bits", "perplexity"}` per token over every chunk
    of a held-out stream (`streams.all_chunks`), one `lax.scan` carrying the state, no dropout.
    """

    def eval_fn(params):
        def body(carry, batch):
            carry = reset_state(carry, batch["reset"])
            logits, carry = apply_fn(params, batch["inputs"], carry, None)
            nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
            return carry, (jnp.sum(nll * batch["mask"]), jnp.sum(batch["mask"]))

        _, (nll_sums, counts) = jax.lax.scan(body, stream, chunks)
        nats = jnp.sum(nll_sums) / jnp.sum(counts)
        bits = nats / math.log(2.0)
        return {f"{prefix}nats": nats, f"{prefix}bits": bits, f"{prefix}perplexity": jnp.exp(nats)}

    return eval_fn
