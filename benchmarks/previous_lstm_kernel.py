"""The LSTM kernel as it was before 2026-11-30, kept so the saved-gate change can be re-measured.

It saved the four activated gates as one `[.., 4H]` array and sliced `i, f, g, o` out of it in
the reverse step (one masked derivative over all columns), multiplied by W with a transposed
contraction (`delta @ W.T` inside the loop), with scan unroll 2. The library's kernel
(`rnn_jax/fast/kernels.py`) saves them as separate arrays and multiplies by a W^T made once
before the reverse scan, with unroll 1: same arithmetic, different layouts. Compare in one
process, rounds alternating:

    python -m benchmarks.train_step --variants "rnn_jax lstm gather+fast,rnn_jax lstm gather+fast (previous kernel)" --rounds 8
"""

import jax
import jax.numpy as jnp

import rnn_jax
from rnn_jax.cells import lstm
from rnn_jax.fast import engine, kernels, tokens


def _forward(params, carry, x_proj):
    z = x_proj + carry.h @ params.W
    scale = kernels._row(kernels._lstm_scale(params.W.shape[0], z.dtype), z)
    act = scale * jnp.tanh(scale * z) + (1.0 - scale)
    i, f, g, o = lstm.split_gates(act)
    c = f * carry.c + i * g
    tanh_c = jnp.tanh(c)
    return lstm.LSTMState(h=o * tanh_c, c=c), (act, tanh_c)  # one [.., 4H] save


def _backward(params, saved, carry_prev, carry, dcarry):
    del carry
    act, tanh_c = saved
    i, f, g, o = lstm.split_gates(act)
    dc = dcarry.c + dcarry.h * o * (1.0 - tanh_c * tanh_c)
    d_act = jnp.concatenate([dc * g, dc * carry_prev.c, dc * i, dcarry.h * tanh_c], axis=-1)
    hidden = tanh_c.shape[-1]
    column = jax.lax.broadcasted_iota(jnp.int32, act.shape, act.ndim - 1)
    is_g = (column >= 2 * hidden) & (column < 3 * hidden)
    delta = d_act * jnp.where(is_g, 1.0 - act * act, act * (1.0 - act))
    return lstm.LSTMState(h=delta @ params.W.T, c=dc * f), delta


# backward_weights = identity: the previous kernel multiplied by W with a transposed contraction
PREVIOUS_LSTM = kernels.LSTM._replace(
    name="lstm_previous", forward=_forward, backward_weights=lambda params: params, backward=_backward
)


def previous_kernel_model(key, vocab, hidden, *, remat=False, unroll=2):
    """`rnn_jax_model(..., cell_name="lstm", mode="gather")` with the previous kernel."""
    from benchmarks.jax_models import _readout_loss, rnn_jax_model

    if remat:
        raise ValueError(f"the previous kernel is kept for remat=False only, received {remat!r}")
    params, _ = rnn_jax_model(key, vocab, hidden, cell_name="lstm", mode="gather")
    cell = rnn_jax.get_cell("lstm")
    run = engine.make_unroll(PREVIOUS_LSTM, tokens.gather_rows, "save", 1, unroll, True)

    def loss_fn(params, token_ids, targets):
        table = cell.project_inputs(params.rnn, params.embedding)  # [vocab, 4H]
        carry = cell.initial_carry(params.rnn, (token_ids.shape[0],))
        ys, _ = run(params.rnn, table, jnp.swapaxes(token_ids, 0, 1), carry, None)
        return _readout_loss(jnp.swapaxes(ys, 0, 1), params.V, params.c, targets)

    return params, loss_fn
