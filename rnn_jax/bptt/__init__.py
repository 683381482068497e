"""Hand-written backpropagation through time, in two forms side by side.

- `notes`: the notes' derivation for the vanilla tanh RNN with softmax outputs, written out
  equation by equation (`bptt`, `loss`, `loss_hand_bptt`), for teaching and checking.
- `engine`: the same derivation, general over cells and losses: a `jax.custom_vjp` unroll that
  runs a cell's `Kernel` (its per-step forward and backward, carried by the cell as
  `cell.bptt_kernel` and written in the cell's file: `rnn_jax/cells/lstm.py`, `gru.py`,
  `vanilla.py`; the contract in `rnn_jax/cells/fast_paths.py`). `rnn_jax.unroll` uses it by
  default (`backward="handwritten"`) and autodiff of `jax.lax.scan` for every other cell.
"""

from rnn_jax.bptt.notes import (
    BPTTGrads,
    backward,
    bptt,
    forward,
    loss,
    loss_hand_bptt,
    step_weights,
)
from rnn_jax.cells.fast_paths import Kernel

__all__ = [
    "BPTTGrads",
    "Kernel",
    "backward",
    "bptt",
    "forward",
    "loss",
    "loss_hand_bptt",
    "step_weights",
]
