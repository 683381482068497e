"""Recurrent cells and their registry. Every entry follows the contract in `cells/base.py`."""

from typing import Callable

from rnn_jax.cells import (
    gru,
    gru_torch,
    lru,
    lstm,
    mingru,
    minlstm,
    output_feedback,
    unitary,
    vanilla,
)
from rnn_jax.cells.base import ACTIVATIONS, Cell, get_activation

# name -> factory(**options) -> Cell. Options are bound at construction (e.g. activation) or
# become init defaults (e.g. forget_bias, recurrent_init).
CELLS: dict[str, Callable[..., Cell]] = {
    "vanilla": vanilla.make_cell,
    "irnn": lambda **options: vanilla.make_cell(
        **{"activation": "relu", "recurrent_init": "identity", **options}
    ),
    "output_feedback": output_feedback.make_cell,
    "gru": gru.make_cell,
    "gru_torch": gru_torch.make_cell,  # PyTorch/cuDNN/flax GRU: reset after the matmul
    "lstm": lstm.make_cell,
    "urnn": unitary.make_cell,
    "mingru": mingru.make_cell,  # linear in h: parallel over time (rnn_jax.parallel)
    "minlstm": minlstm.make_cell,
    "lru": lru.make_cell,
}


def get_cell(name: str, **options) -> Cell:
    """Builds the cell registered as `name`; a ValueError names the known cells."""
    if name not in CELLS:
        raise ValueError(f"unknown cell {name!r}; expected one of {sorted(CELLS)}")
    return CELLS[name](**options)


__all__ = ["ACTIVATIONS", "CELLS", "Cell", "get_activation", "get_cell"]
