"""Every implementation of the benchmark's char-LM, and how to make its training step.

Peers are optional: an implementation whose library is not installed is skipped with a note
(`pip install -r benchmarks/requirements.txt` installs them all). A peer's module is imported
only when one of its steps is built.
"""

import importlib
import importlib.metadata
import importlib.util
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from benchmarks import jax_models


class Implementation(NamedTuple):
    key: str  # what --impls names
    cell: str  # "lstm" | "gru"
    name: str  # the table's row
    library: str  # module that must be importable ("" when only rnn_jax's dependencies)
    builder: str  # "module:function": `(weights, cell[, remat]) -> (params, loss_fn)` (JAX)
    model: str  # the definition it shares with others (see `benchmarks.model`)
    takes_remat: bool = False


REFERENCE = "torch"  # the ratios' reference
PIP_NAMES = {"torch": "torch", "haiku": "dm-haiku", "equinox": "equinox", "flax": "flax"}
GRU_BEFORE, GRU_AFTER = "gru, reset before the matmul", "gru, reset after the matmul"

IMPLEMENTATIONS = [
    Implementation("torch", "lstm", "torch nn.LSTM", "torch",
                   "benchmarks.torch_models:make_train_step",
                   "lstm"),
    Implementation("flax", "lstm", "flax nn.RNN(OptimizedLSTMCell)", "flax",
                   "benchmarks.flax_models:flax_rnn", "lstm"),
    Implementation("haiku", "lstm", "haiku LSTM + dynamic_unroll", "haiku",
                   "benchmarks.haiku_models:haiku_unroll", "lstm"),
    Implementation("equinox", "lstm", "equinox LSTMCell + lax.scan", "equinox",
                   "benchmarks.equinox_models:equinox_scan", "lstm"),
    Implementation("lax.scan", "lstm", "lax.scan LSTM (projection hoisted)", "",
                   "benchmarks.jax_models:lax_scan_lstm", "lstm", True),
    Implementation("rnn_jax.unroll", "lstm", "rnn_jax.unroll", "",
                   "benchmarks.jax_models:rnn_jax_unroll", "lstm", True),
    Implementation("rnn_jax tokens", "lstm", "rnn_jax token gather (char-LM)", "",
                   "benchmarks.jax_models:rnn_jax_tokens", "lstm", True),
    Implementation("torch", "gru", "torch nn.GRU", "torch",
                   "benchmarks.torch_models:make_train_step",
                   GRU_AFTER),
    Implementation("flax", "gru", "flax nn.RNN(GRUCell)", "flax",
                   "benchmarks.flax_models:flax_rnn", GRU_AFTER),
    Implementation("haiku", "gru", "haiku GRU + dynamic_unroll", "haiku",
                   "benchmarks.haiku_models:haiku_unroll", GRU_BEFORE),
    Implementation("equinox", "gru", "equinox GRUCell + lax.scan", "equinox",
                   "benchmarks.equinox_models:equinox_scan", GRU_AFTER),
    Implementation("rnn_jax.unroll", "gru", "rnn_jax.unroll", "",
                   "benchmarks.jax_models:rnn_jax_unroll", GRU_BEFORE, True),
    Implementation("rnn_jax tokens", "gru", "rnn_jax token gather (char-LM)", "",
                   "benchmarks.jax_models:rnn_jax_tokens", GRU_BEFORE, True),
]
KEYS = list(dict.fromkeys(impl.key for impl in IMPLEMENTATIONS))


def installed(impl: Implementation) -> bool:
    return not impl.library or importlib.util.find_spec(impl.library) is not None


def skip_note(impl: Implementation) -> str:
    pip = PIP_NAMES.get(impl.library, impl.library)
    return (f"{impl.name} ({impl.cell}): skipped, {impl.library} is not installed "
            f"(pip install {pip})")


def select(keys, cells) -> list[Implementation]:
    """The implementations named by `keys` (None: all) for `cells`, in the table's order."""
    unknown = sorted(set(keys or ()) - set(KEYS))
    if unknown:
        raise ValueError(f"expected implementations from {KEYS}, received {unknown}")
    return [impl for impl in IMPLEMENTATIONS
            if impl.cell in cells and (keys is None or impl.key in keys)]


def loss_function(impl: Implementation, weights, remat=False):
    """`(params, loss_fn)` of a JAX implementation holding `weights`."""
    if impl.library == "torch":
        raise ValueError(f"expected a JAX implementation, received {impl.name!r}")
    if remat is not False and not impl.takes_remat:
        raise ValueError(f"expected remat=False for {impl.name!r}, received {remat!r}")
    module, function = impl.builder.split(":")
    options = {"remat": remat} if impl.takes_remat else {}
    return getattr(importlib.import_module(module), function)(weights, impl.cell, **options)


def make_step(impl: Implementation, weights, inputs, targets, remat=False) -> Callable[[], float]:
    """`step() -> loss`: one Adam training step on `(inputs, targets)`, blocking until done;
    the first call compiles (JAX) and returns the loss of `weights`."""
    if impl.library == "torch":
        if remat is not False:
            raise ValueError(f"expected remat=False for {impl.name!r}, received {remat!r}")
        module, function = impl.builder.split(":")
        make_train_step = getattr(importlib.import_module(module), function)
        return make_train_step(weights, impl.cell, inputs, targets)
    params, loss_fn = loss_function(impl, weights, remat)
    params = jax.tree.map(jnp.array, params)  # its own buffers: the step donates them
    train_step, opt_state = jax_models.make_train_step(loss_fn, params)
    state = [params, opt_state]

    def step() -> float:
        state[0], state[1], loss = train_step(state[0], state[1], inputs, targets)
        return float(loss)  # waits for the step

    return step


def versions() -> str:
    """Installed versions of JAX, the peers and rnn_jax's numerics stack."""
    names = ["jax", "flax", "dm-haiku", "equinox", "torch", "optax"]
    found = []
    for name in names:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} absent")
    return ", ".join(found)
