"""Two questions about JAX's state that its stable API does not ask directly, answered through
public paths only (no `jax._src`), each tested in `tests/core/test_jax_state.py`, so a JAX
upgrade that changes an answer fails there, by name, not inside a run.

- `backends_are_initialized()`: whether JAX has started its backends (settings such as the CPU
  device count or synchronous dispatch are read once, at that start). JAX refuses, with a
  `RuntimeError`, to change a setting it reads at that start once they are; so try changing one
  (`jax_cpu_get_local_topology_timeout_minutes`, used only when a CPU client starts) and put it
  back.
- `is_forward_mode(tree)`: whether a leaf is being forward-differentiated (`jax.jvp`); a
  `jax.custom_vjp` has no forward mode, so `unroll` then runs its autodiff path. The tracer type
  is read from `jax.interpreters.ad`, its public module (outside JAX's compatibility policy,
  hence the test).
"""

from typing import Any

import jax
from jax.interpreters import ad

_PROBE = "jax_cpu_get_local_topology_timeout_minutes"


def backends_are_initialized() -> bool:
    value = getattr(jax.config, _PROBE)
    try:
        jax.config.update(_PROBE, value + 1)
    except RuntimeError:  # "... should be updated before backends are initialized"
        return True
    jax.config.update(_PROBE, value)
    return False


def is_forward_mode(tree: Any) -> bool:
    return any(isinstance(leaf, ad.JVPTracer) for leaf in jax.tree.leaves(tree))
