"""Cell options as experiment flags: the linear cells' transition range and the LRU's ring.

An experiment's Config inherits `CellOptions`, calls `check(config)` in its `validate` and builds
its cell with `cell_of(config)`:

    --cell=mingru --transition_range=signed     a(t) in (-1, 1) (Grazzi et al. 2025)
    --cell=lru --lru_r_min=0.9 --lru_r_max=0.999 --lru_max_phase=0.3141592653589793
                                                the LRU paper's ring (Orvieto et al. 2023)

Defaults reproduce the cells' own defaults, so a run made before these flags existed has the
same config. A non-default option for a cell that does not have it is an error (before any
compile), not silently ignored.
"""

import dataclasses
import math

from experiments.harness import template
from rnn_jax.cells import Cell, get_cell
from rnn_jax.cells.mingru import TRANSITION_RANGES

SIGNED_CELLS = ("mingru", "minlstm")


@dataclasses.dataclass(frozen=True)
class CellOptions:
    transition_range: str = template.field(
        "unit", "minGRU/minLSTM: the transition a(t) in (0, 1) ('unit', the papers') or in "
        "(-1, 1) ('signed': a state can flip sign, Grazzi et al. 2025).",
        choices=TRANSITION_RANGES)
    lru_r_min: float = template.field(0.0, "LRU: smallest eigenvalue modulus of the ring init "
                                      "(the LRU paper: 0.9).")
    lru_r_max: float = template.field(1.0, "LRU: largest eigenvalue modulus of the ring init "
                                      "(the LRU paper: 0.999).")
    lru_max_phase: float = template.field(2 * math.pi, "LRU: eigenvalue phases drawn in [0, "
                                          "this] (the LRU paper: pi/10 = 0.314...).")


_LRU_DEFAULTS = {"lru_r_min": 0.0, "lru_r_max": 1.0, "lru_max_phase": 2 * math.pi}


def check(config) -> None:
    """One-line errors for options out of range or given to a cell without them (every cell
    of `--grid=cell=...` when the grid names cells)."""
    template.check(config.transition_range in TRANSITION_RANGES, "transition_range",
                   f"one of {list(TRANSITION_RANGES)}", config.transition_range)
    lru = {name: getattr(config, name) for name in _LRU_DEFAULTS}
    for cell in template.grid_of(config).get("cell", [config.cell]):
        template.check(config.transition_range == "unit" or cell in SIGNED_CELLS,
                       "transition_range", f"'unit' for --cell={cell} (only "
                       f"{', '.join(SIGNED_CELLS)} have a signed range)",
                       config.transition_range)
        template.check(cell == "lru" or lru == _LRU_DEFAULTS, "lru_r_min",
                       f"the defaults for --cell={cell} (the --lru_* flags are the LRU's)", lru)
    template.check(0.0 <= config.lru_r_min <= config.lru_r_max <= 1.0, "lru_r_min",
                   "0 <= --lru_r_min <= --lru_r_max <= 1 (eigenvalue moduli in [0, 1))",
                   f"lru_r_min={config.lru_r_min}, lru_r_max={config.lru_r_max}")
    template.check(0.0 < config.lru_max_phase <= 2 * math.pi, "lru_max_phase",
                   "a phase in (0, 2 pi]", config.lru_max_phase)


def options(config) -> dict:
    """The keyword options of `get_cell` for the config's cell."""
    if config.cell in SIGNED_CELLS:
        return {"transition_range": config.transition_range}
    if config.cell == "lru":
        return {"r_min": config.lru_r_min, "r_max": config.lru_r_max,
                "max_phase": config.lru_max_phase}
    return {}


def cell_of(config) -> Cell:
    """The config's `--cell` with its options."""
    return get_cell(config.cell, **options(config))


def describe(config) -> str:
    """A short label of the cell and its non-default options, e.g. 'mingru signed'."""
    if config.cell in SIGNED_CELLS and config.transition_range != "unit":
        return f"{config.cell} {config.transition_range}"
    if config.cell == "lru":
        ring = [f"r in [{config.lru_r_min:g}, {config.lru_r_max:g}]"] * (
            (config.lru_r_min, config.lru_r_max) != (0.0, 1.0))
        phase = [f"phase <= {config.lru_max_phase / math.pi:.3g} pi"] * (
            config.lru_max_phase != 2 * math.pi)
        return " ".join(["lru", *ring, *phase])
    return config.cell
