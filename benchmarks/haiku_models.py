"""dm-haiku peers: `hk.LSTM` and `hk.GRU` (the notes' GRU) unrolled with `hk.dynamic_unroll`.

Builders as in `benchmarks.jax_models`: `(params, loss_fn)` from `benchmarks.model` weights.
haiku's LSTM applies one `Linear` to `[x, h]` with gates (i, g, f, o) and adds 1 to the forget
gate's pre-activation; its GRU orders gates (z, r, n) and keeps the old state with `1 - z`.
"""

import haiku as hk
import jax
import jax.numpy as jnp

from benchmarks import model
from benchmarks.model import LSTMWeights


def _reorder(matrix: jax.Array, order: str, names: str) -> jax.Array:
    """Fused gate columns in `order` (e.g. "ifgo") re-concatenated in `names` order."""
    blocks = dict(zip(order, jnp.split(matrix, len(order), axis=-1)))
    return jnp.concatenate([blocks[name] for name in names], axis=-1)


def _core_params(weights) -> tuple[str, dict]:
    if isinstance(weights, LSTMWeights):
        hidden = weights.W.shape[0]
        b_f = jnp.zeros((4 * hidden,)).at[2 * hidden:3 * hidden].set(1.0)  # haiku's +1, undone
        w = jnp.concatenate([weights.U, weights.W], axis=0)  # [x, h] @ w
        return "lstm/linear", {"w": _reorder(w, "ifgo", "igfo"),
                               "b": _reorder(weights.b, "ifgo", "igfo") - b_f}
    # haiku's z is 1 - ours: sigma(-a) = 1 - sigma(a), so its z columns are ours negated
    hidden = weights.W.shape[0]
    sign = jnp.concatenate([-jnp.ones((hidden,)), jnp.ones((2 * hidden,))])  # (z, r, n)
    return "gru", {"w_i": _reorder(weights.U, "rzn", "zrn") * sign[None, :],
                   "w_h": _reorder(weights.W, "rzn", "zrn") * sign[None, :],
                   "b": _reorder(weights.b, "rzn", "zrn") * sign}


def haiku_unroll(weights, cell_name: str):
    """`(params, loss_fn)` for the haiku char-LM holding `weights`."""
    model.check_weights(weights, cell_name)
    vocab, hidden = weights.embedding.shape

    def forward(tokens):
        xs = hk.Embed(vocab, hidden, name="embed")(tokens)
        core = hk.LSTM(hidden) if cell_name == "lstm" else hk.GRU(hidden)
        ys, _ = hk.dynamic_unroll(core, jnp.swapaxes(xs, 0, 1), core.initial_state(tokens.shape[0]))
        return hk.Linear(vocab, name="linear")(jnp.swapaxes(ys, 0, 1))

    transformed = hk.without_apply_rng(hk.transform(forward))
    core_name, core = _core_params(weights)
    params = {"embed": {"embeddings": weights.embedding}, core_name: core,
              "linear": {"w": weights.V, "b": weights.c}}
    return model.init_apply_model(transformed.init, transformed.apply, params, "haiku")
