"""The JAX internals rnn_jax reads (rnn_jax/jax_internals.py) still exist and mean what the
library needs: a JAX upgrade that moves one fails here, by name, not deep inside a run."""

import jax
import jax.numpy as jnp

from rnn_jax import jax_internals


def test_backends_are_initialized_after_a_computation():
    jnp.zeros(1).block_until_ready()
    assert jax_internals.backends_are_initialized() is True


def test_forward_mode_is_seen_under_jvp_and_not_under_grad_or_jit():
    seen = {}

    def record(name):
        def f(x):
            seen[name] = jax_internals.is_forward_mode({"x": x})
            return jnp.sum(x * x)
        return f

    jax.jvp(record("jvp"), (jnp.ones(3),), (jnp.ones(3),))
    jax.grad(record("grad"))(jnp.ones(3))
    jax.jit(record("jit"))(jnp.ones(3))
    assert seen == {"jvp": True, "grad": False, "jit": False}


def test_the_coordination_client_lookup_resolves():
    assert jax_internals.coordination_client() is None or hasattr(
        jax_internals.coordination_client(), "wait_at_barrier")
