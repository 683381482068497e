"""flax.linen peers: `nn.RNN(nn.OptimizedLSTMCell)` and `nn.RNN(nn.GRUCell)` (PyTorch's GRU).

Builders as in `benchmarks.jax_models`: `(params, loss_fn)` from `benchmarks.model` weights.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from benchmarks import model
from benchmarks.model import LSTMWeights


class CharLM(nn.Module):
    vocab: int
    hidden: int
    cell: str  # "lstm" | "gru"

    @nn.compact
    def __call__(self, tokens):
        xs = nn.Embed(self.vocab, self.hidden, name="embed")(tokens)
        if self.cell == "lstm":
            rnn_cell = nn.OptimizedLSTMCell(self.hidden, name="cell")
        else:
            rnn_cell = nn.GRUCell(self.hidden, name="cell")
        ys = nn.RNN(rnn_cell)(xs)
        return nn.Dense(self.vocab, name="readout")(ys)


def _columns(matrix: jax.Array, names: str) -> dict:
    """Splits fused `[in, gates*hidden]` columns into one `[in, hidden]` block per gate name."""
    return dict(zip(names, jnp.split(matrix, len(names), axis=-1)))


def _cell_params(weights) -> dict:
    if isinstance(weights, LSTMWeights):  # ii.. (no bias) on inputs, hi.. (bias) on h
        U, W, b = (_columns(m, "ifgo") for m in (weights.U, weights.W, weights.b))
        params = {f"i{g}": {"kernel": U[g]} for g in "ifgo"}
        params.update({f"h{g}": {"kernel": W[g], "bias": b[g]} for g in "ifgo"})
        return params
    # GRUCell: ir, iz, in (bias) on inputs; hr, hz (no bias), hn (bias b_hn) on h
    U, W, b = (_columns(m, "rzn") for m in (weights.U, weights.W, weights.b))
    params = {f"i{g}": {"kernel": U[g], "bias": b[g]} for g in "rzn"}
    params.update({f"h{g}": {"kernel": W[g]} for g in "rz"})
    params["hn"] = {"kernel": W["n"], "bias": weights.b_hn}
    return params


def flax_rnn(weights, cell_name: str):
    """`(params, loss_fn)` for the flax char-LM holding `weights`."""
    model.check_weights(weights, cell_name)
    vocab, hidden = weights.embedding.shape
    module = CharLM(vocab, hidden, cell_name)
    params = {"params": {
        "embed": {"embedding": weights.embedding},
        "cell": _cell_params(weights),
        "readout": {"kernel": weights.V, "bias": weights.c},
    }}
    return model.init_apply_model(module.init, module.apply, params, "flax")
