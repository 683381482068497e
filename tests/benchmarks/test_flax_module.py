"""benchmarks/flax_module.py: every model holds the same weights (same loss as flax's)."""

import jax
import numpy as np
import pytest

from benchmarks import flax_module, model

pytestmark = pytest.mark.slow


def test_every_model_computes_flax_loss(key):
    weights = model.init_weights(key, "lstm", 11, 8)
    tokens, targets = model.make_batch(jax.random.fold_in(key, 1), 2, 5, 11)
    results = {}
    for name, (_, builder) in flax_module.BUILDERS.items():
        params, loss_fn = builder(weights)
        results[name] = float(jax.jit(loss_fn)(params, tokens, targets))
    reference = results[flax_module.REFERENCE]
    for name, values in results.items():
        np.testing.assert_allclose(values, reference, rtol=1e-5, err_msg=name)


def test_table_and_bad_arguments():
    row = {"key": "linen", "name": "nn.Embed -> LinenRNN", "median_ms": 2.0,
           "tokens_per_s": 1000.0, "vs_flax": (1.5, 1.2, 1.8), "first_step_s": 1.0,
           "first_loss": 4.1}
    assert "| nn.Embed -> LinenRNN | 2.0 | 1,000 | 1.50x (1.20-1.80) |" in (
        flax_module.format_rows([row]))
    with pytest.raises(SystemExit):
        flax_module.parse_args(["--models", "flax,keras"])
    with pytest.raises(SystemExit):
        flax_module.parse_args(["--rounds", "0"])
