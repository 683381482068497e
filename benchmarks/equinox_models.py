"""equinox peers: `eqx.nn.LSTMCell` and `eqx.nn.GRUCell` (PyTorch's GRU) under `lax.scan`.

Builders as in `benchmarks.jax_models`: `(params, loss_fn)` from `benchmarks.model` weights.
equinox's modules handle one example (matrices `[out, in]`); the model scans over time and
`vmap`s over the batch, as equinox's own RNN example does.
"""

import equinox as eqx
import jax
import jax.numpy as jnp

from benchmarks import model


class CharLM(eqx.Module):
    embedding: eqx.nn.Embedding
    cell: eqx.nn.LSTMCell | eqx.nn.GRUCell
    readout: eqx.nn.Linear

    def logits(self, tokens: jax.Array) -> jax.Array:
        """`tokens [time]` -> `[time, vocab]`."""
        xs = jax.vmap(self.embedding)(tokens)
        hidden = self.cell.hidden_size
        zeros = jnp.zeros((hidden,), xs.dtype)
        carry = (zeros, zeros) if isinstance(self.cell, eqx.nn.LSTMCell) else zeros

        def step(carry, x):
            carry = self.cell(x, carry)
            return carry, carry[0] if isinstance(carry, tuple) else carry

        _, ys = jax.lax.scan(step, carry, xs)
        return jax.vmap(self.readout)(ys)


def equinox_scan(weights, cell_name: str):
    """`(params, loss_fn)` for the equinox char-LM holding `weights` (params: the module itself)."""
    model.check_weights(weights, cell_name)
    vocab, hidden = weights.embedding.shape
    keys = jax.random.split(jax.random.key(0), 3)  # placeholders, replaced below
    cell_class = eqx.nn.LSTMCell if cell_name == "lstm" else eqx.nn.GRUCell
    network = CharLM(eqx.nn.Embedding(vocab, hidden, key=keys[0]),
                   cell_class(hidden, hidden, key=keys[1]),
                   eqx.nn.Linear(hidden, vocab, key=keys[2]))
    replacements = [weights.embedding, weights.U.T, weights.W.T, weights.b, weights.V.T, weights.c]
    fields = [lambda m: m.embedding.weight, lambda m: m.cell.weight_ih,
              lambda m: m.cell.weight_hh, lambda m: m.cell.bias,
              lambda m: m.readout.weight, lambda m: m.readout.bias]
    if cell_name == "gru":  # equinox's GRU adds bias_n inside the reset product, as b_hn
        replacements.append(weights.b_hn)
        fields.append(lambda m: m.cell.bias_n)
    for field, value in zip(fields, replacements):
        network = eqx.tree_at(field, network, value)

    def loss_fn(network, tokens, targets):
        logits = jax.vmap(network.logits)(tokens)
        return model.cross_entropy(logits, targets)

    return network, loss_fn
