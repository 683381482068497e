"""rnn_jax: recurrent neural networks as pure JAX functions, for studying them."""

from rnn_jax import initializers, losses, readout
from rnn_jax.cells import CELLS, Cell, get_cell
from rnn_jax.sequence import reverse_padded, sequence_mask
from rnn_jax.unroll import (
    BidirectionalParams,
    init_bidirectional,
    init_stack,
    unroll,
    unroll_bidirectional,
    unroll_stack,
)

__all__ = [
    "CELLS",
    "BidirectionalParams",
    "Cell",
    "get_cell",
    "init_bidirectional",
    "init_stack",
    "initializers",
    "losses",
    "readout",
    "reverse_padded",
    "sequence_mask",
    "unroll",
    "unroll_bidirectional",
    "unroll_stack",
]
