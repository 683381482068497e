"""The char-LM in rnn_jax and in a plain `lax.scan`, and the jitted Adam step every JAX peer uses.

Each builder maps `benchmarks.model` weights onto its parameters and returns
`(params, loss_fn)` with `loss_fn(params, tokens [batch, time], targets [batch, time]) -> scalar`.
"""

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

import rnn_jax
from benchmarks import model
from benchmarks.model import GRUWeights, LSTMWeights

# --- rnn_jax internals: the one place the benchmarks use them -----------------------------
# The char-LM (`rnn_jax.language_model.apply`) runs its first layer through this token-gather
# unroll: embedding and input projection as one gather from a [vocab, gates] table, with the
# hand-written BPTT. It has no public name; if it moves, this import is the line to change.
from rnn_jax.tokens import unroll_tokens as _unroll_tokens

# -------------------------------------------------------------------------------------------


class CharModel(NamedTuple):
    embedding: jax.Array  # [vocab, hidden]
    rnn: Any  # the rnn_jax cell's params
    V: jax.Array  # [hidden, vocab]
    c: jax.Array  # [vocab]


def readout_loss(ys: jax.Array, V: jax.Array, c: jax.Array, targets: jax.Array) -> jax.Array:
    """`model.cross_entropy` of the readout `ys [batch, time, hidden] @ V + c`."""
    logits = ys @ V + jnp.broadcast_to(c, ys.shape[:-1] + c.shape)
    return model.cross_entropy(logits, targets)


def _cell_params(cell: rnn_jax.Cell, weights) -> Any:
    """rnn_jax's cell params holding `weights` (their field names, shapes from `eval_shape`)."""
    hidden = weights.U.shape[0]
    template = jax.eval_shape(lambda: cell.init(jax.random.key(0), hidden, hidden))
    if isinstance(weights, LSTMWeights):
        return template._replace(U=weights.U, W=weights.W, b=weights.b)
    if isinstance(weights, GRUWeights):  # the notes' GRU: W [H, 2H] for (r, z), W_n separate
        W_rz, W_n = jnp.split(weights.W, [2 * hidden], axis=-1)
        return template._replace(U=weights.U, W=W_rz, W_n=W_n, b=weights.b)
    raise TypeError(f"expected LSTMWeights or GRUWeights, received {type(weights).__name__}")


def _remat_option(remat) -> dict:
    return {} if remat is False else {"remat": remat}


def rnn_jax_unroll(weights, cell_name: str, remat=False):
    """`rnn_jax.unroll` on embedded inputs (`embedding[tokens]`), the library's defaults."""
    cell = rnn_jax.get_cell(cell_name)
    params = CharModel(weights.embedding, _cell_params(cell, weights), weights.V, weights.c)

    def loss_fn(params, tokens, targets):
        xs = jnp.take(params.embedding, tokens, axis=0)
        ys, _ = rnn_jax.unroll(cell, params.rnn, xs, **_remat_option(remat))
        return readout_loss(ys, params.V, params.c, targets)

    return params, loss_fn


def rnn_jax_tokens(weights, cell_name: str, remat=False):
    """The char-LM's path: token gather from a `[vocab, gates]` table + hand-written BPTT."""
    cell = rnn_jax.get_cell(cell_name)
    params = CharModel(weights.embedding, _cell_params(cell, weights), weights.V, weights.c)

    def loss_fn(params, tokens, targets):
        ys, _ = _unroll_tokens(cell, params.rnn, params.embedding, tokens, **_remat_option(remat))
        return readout_loss(ys, params.V, params.c, targets)

    return params, loss_fn


def lax_scan_lstm(weights: LSTMWeights, cell_name: str = "lstm", remat=False):
    """An LSTM written directly with `lax.scan`, input projection hoisted, autodiff."""
    if cell_name != "lstm":
        raise ValueError(f"expected cell 'lstm' for the lax.scan LSTM, received {cell_name!r}")
    params = weights._asdict()

    def step(W, carry, x_proj):
        h, c = carry
        i, f, g, o = jnp.split(x_proj + h @ W, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    def loss_fn(params, tokens, targets):
        xs = jnp.take(params["embedding"], tokens.T, axis=0)  # [time, batch, hidden]
        xs_proj = xs @ params["U"]
        xs_proj = xs_proj + jnp.broadcast_to(params["b"], xs_proj.shape)
        zeros = jnp.zeros((tokens.shape[0], params["W"].shape[0]), xs.dtype)
        body = functools.partial(step, params["W"])
        body = jax.checkpoint(body) if remat else body
        _, ys = jax.lax.scan(body, (zeros, zeros), xs_proj)
        return readout_loss(jnp.swapaxes(ys, 0, 1), params["V"], params["c"], targets)

    return params, loss_fn


def make_train_step(loss_fn, params, learning_rate: float = 1e-3):
    """Jitted `step(params, opt_state, tokens, targets) -> (params, opt_state, loss)` (Adam),
    with the train state donated, as a user's training loop would write it."""
    optimizer = optax.adam(learning_rate)

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(params, opt_state, tokens, targets):
        loss, grads = jax.value_and_grad(loss_fn)(params, tokens, targets)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step, optimizer.init(params)
