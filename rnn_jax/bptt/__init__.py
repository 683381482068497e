"""Hand-written backpropagation through time, in two forms side by side.

- `notes`: the notes' derivation for the vanilla tanh RNN with softmax outputs, written out
  equation by equation (`bptt`, `loss`, `loss_hand_bptt`), for teaching and checking.
- `kernels` and `engine`: the same derivation, general over cells and losses, as per-cell
  kernels (LSTM, GRU, vanilla) run by a `jax.custom_vjp` unroll; `rnn_jax.unroll` uses them by
  default (`backward="handwritten"`) and autodiff of `jax.lax.scan` for every other cell.
"""

from rnn_jax.bptt.kernels import GRU, LSTM, Kernel, kernel_for, vanilla_kernel
from rnn_jax.bptt.notes import (
    BPTTGrads,
    backward,
    bptt,
    forward,
    loss,
    loss_hand_bptt,
    step_weights,
)

__all__ = [
    "BPTTGrads",
    "GRU",
    "LSTM",
    "Kernel",
    "backward",
    "bptt",
    "forward",
    "kernel_for",
    "loss",
    "loss_hand_bptt",
    "step_weights",
    "vanilla_kernel",
]
