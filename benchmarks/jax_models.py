"""The char-LM training step in JAX, one builder per variant.

Model (the same for every implementation, PyTorch's included): embedding [vocab, hidden] ->
1-layer RNN (hidden units) -> linear readout [hidden, vocab] -> softmax cross-entropy averaged
over all steps; optimiser Adam (lr 1e-3). A variant's builder returns `(params, loss_fn)` with
`loss_fn(params, tokens [batch, time], targets [batch, time]) -> scalar`.
"""

import functools
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

import rnn_jax
from benchmarks import previous_lstm_kernel
from rnn_jax import fast


class CharModel(NamedTuple):
    embedding: jax.Array  # [vocab, hidden]
    rnn: Any  # the cell's params
    V: jax.Array  # [hidden, vocab] readout
    c: jax.Array  # [vocab]


def _readout_loss(ys, V, c, targets):
    logits = ys @ V + jnp.broadcast_to(c, ys.shape[:-1] + c.shape)
    return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()


def rnn_jax_model(key, vocab, hidden, *, cell_name, mode, remat=False, unroll=None):
    """rnn_jax's cell; mode "gather" (token table + fast BPTT), "fast" or "autodiff";
    `unroll`: the scans' unroll factor (None: the library's default)."""
    cell = rnn_jax.get_cell(cell_name)
    keys = jax.random.split(key, 3)
    params = CharModel(
        embedding=jax.random.normal(keys[0], (vocab, hidden)) * 0.1,
        rnn=cell.init(keys[1], hidden, hidden),
        V=jax.random.normal(keys[2], (hidden, vocab)) / jnp.sqrt(hidden),
        c=jnp.zeros((vocab,)),
    )

    def loss_fn(params, tokens, targets):
        if mode == "gather":
            ys, _ = fast.unroll_tokens(
                cell, params.rnn, params.embedding, tokens, remat=remat, unroll=unroll
            )
        else:
            xs = jnp.take(params.embedding, tokens, axis=0)
            ys, _ = rnn_jax.unroll(cell, params.rnn, xs, remat=remat, backward=mode, unroll=unroll)
        return _readout_loss(ys, params.V, params.c, targets)

    return params, loss_fn


def plain_scan_model(key, vocab, hidden, *, remat=False):
    """An LSTM written directly with `lax.scan` (input projection hoisted), autodiff."""
    keys = jax.random.split(key, 4)
    params = {
        "embedding": jax.random.normal(keys[0], (vocab, hidden)) * 0.1,
        "W_x": jax.random.normal(keys[1], (hidden, 4 * hidden)) / jnp.sqrt(hidden),
        "W_h": jax.random.normal(keys[2], (hidden, 4 * hidden)) / jnp.sqrt(hidden),
        "b": jnp.zeros((4 * hidden,)),
        "V": jax.random.normal(keys[3], (hidden, vocab)) / jnp.sqrt(hidden),
        "c": jnp.zeros((vocab,)),
    }

    def step(W_h, carry, x_proj):
        h, c = carry
        i, f, g, o = jnp.split(x_proj + h @ W_h, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    def loss_fn(params, tokens, targets):
        xs = jnp.take(params["embedding"], tokens.T, axis=0)  # [time, batch, hidden]
        xs_proj = xs @ params["W_x"] + jnp.broadcast_to(params["b"], xs.shape[:-1] + (4 * hidden,))
        zeros = jnp.zeros((tokens.shape[0], hidden))
        body = functools.partial(step, params["W_h"])
        body = jax.checkpoint(body) if remat else body
        _, ys = jax.lax.scan(body, (zeros, zeros), xs_proj)
        return _readout_loss(jnp.swapaxes(ys, 0, 1), params["V"], params["c"], targets)

    return params, loss_fn


class _FlaxCharLSTM(nn.Module):
    vocab: int
    hidden: int

    @nn.compact
    def __call__(self, tokens):
        xs = nn.Embed(self.vocab, self.hidden)(tokens)
        ys = nn.RNN(nn.OptimizedLSTMCell(self.hidden))(xs)
        return nn.Dense(self.vocab)(ys)


def flax_model(key, vocab, hidden, *, remat=False):
    """flax.linen `nn.RNN(nn.OptimizedLSTMCell)`."""
    del remat
    module = _FlaxCharLSTM(vocab, hidden)
    params = module.init(key, jnp.zeros((1, 2), jnp.int32))

    def loss_fn(params, tokens, targets):
        logits = module.apply(params, tokens)
        return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()

    return params, loss_fn


# name -> (builder, recurrent cell for the FLOP count, PyTorch peer to compare with)
VARIANTS: dict[str, tuple[Callable, str]] = {
    "rnn_jax lstm gather+fast": (functools.partial(rnn_jax_model, cell_name="lstm", mode="gather"), "lstm"),
    "rnn_jax lstm gather+fast (unroll=2)": (functools.partial(rnn_jax_model, cell_name="lstm", mode="gather", unroll=2), "lstm"),
    "rnn_jax lstm gather+fast (previous kernel)": (previous_lstm_kernel.previous_kernel_model, "lstm"),
    "rnn_jax lstm fast": (functools.partial(rnn_jax_model, cell_name="lstm", mode="fast"), "lstm"),
    "rnn_jax lstm autodiff": (functools.partial(rnn_jax_model, cell_name="lstm", mode="autodiff"), "lstm"),
    "rnn_jax gru gather+fast": (functools.partial(rnn_jax_model, cell_name="gru", mode="gather"), "gru"),
    "rnn_jax gru fast": (functools.partial(rnn_jax_model, cell_name="gru", mode="fast"), "gru"),
    "rnn_jax gru autodiff": (functools.partial(rnn_jax_model, cell_name="gru", mode="autodiff"), "gru"),
    "flax OptimizedLSTMCell": (flax_model, "lstm"),
    "lax.scan lstm (hoisted)": (plain_scan_model, "lstm"),
}


def make_train_step(loss_fn, params, learning_rate=1e-3):
    """Jitted `step(params, opt_state, tokens, targets) -> (params, opt_state, loss)` (Adam)."""
    optimizer = optax.adam(learning_rate)

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(params, opt_state, tokens, targets):
        loss, grads = jax.value_and_grad(loss_fn)(params, tokens, targets)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step, optimizer.init(params)
