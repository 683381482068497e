"""The answers rnn_jax/jax_state.py gives about JAX's state still mean what the library needs: a
JAX upgrade that changes one fails here, by name, not deep inside a run."""

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import pytest

from rnn_jax import jax_state


def test_backends_are_initialized_after_a_computation():
    jnp.zeros(1).block_until_ready()
    assert jax_state.backends_are_initialized() is True


def test_forward_mode_is_seen_under_jvp_and_not_under_grad_or_jit():
    seen = {}

    def record(name):
        def f(x):
            seen[name] = jax_state.is_forward_mode({"x": x})
            return jnp.sum(x * x)
        return f

    jax.jvp(record("jvp"), (jnp.ones(3),), (jnp.ones(3),))
    jax.grad(record("grad"))(jnp.ones(3))
    jax.jit(record("jit"))(jnp.ones(3))
    assert seen == {"jvp": True, "grad": False, "jit": False}


@pytest.mark.slow  # a child process: JAX not yet started there
def test_backends_are_not_initialized_before_a_computation_and_the_probe_changes_nothing():
    code = textwrap.dedent("""
        import jax, jax.numpy as jnp
        from rnn_jax import jax_state
        name = "jax_cpu_get_local_topology_timeout_minutes"
        before = getattr(jax.config, name)
        print(jax_state.backends_are_initialized(), getattr(jax.config, name) == before)
        jnp.zeros(1).block_until_ready()
        print(jax_state.backends_are_initialized(), getattr(jax.config, name) == before)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "True", "True", "True"]
