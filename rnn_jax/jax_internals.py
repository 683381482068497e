"""The only module that reads JAX internals, each where no public API gives the same thing.

JAX moves its private modules between releases without notice, so every such lookup lives here,
and `tests/core/test_jax_internals.py` fails loudly (naming the lookup) when a JAX upgrade moves
one; the rest of the library imports these names, never `jax._src`.

- `backends_are_initialized()`: whether JAX has started its backends (settings such as the CPU
  device count or synchronous dispatch are read once, at that start).
- `is_forward_mode(tree)`: whether a leaf is being forward-differentiated (`jax.jvp`); a
  `jax.custom_vjp` has no forward mode, so `unroll` then runs its autodiff path.
- `coordination_client()`: the coordination service client of `jax.distributed`, whose
  `wait_at_barrier` is a barrier that is not itself a collective.
"""

from typing import Any

import jax
from jax._src import xla_bridge as _xla_bridge
from jax._src.distributed import global_state as _distributed_state
from jax._src.interpreters.ad import JVPTracer as _JVPTracer


def backends_are_initialized() -> bool:
    return bool(_xla_bridge.backends_are_initialized())


def is_forward_mode(tree: Any) -> bool:
    return any(isinstance(leaf, _JVPTracer) for leaf in jax.tree.leaves(tree))


def coordination_client() -> Any:
    return _distributed_state.client
