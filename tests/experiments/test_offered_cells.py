"""Every cell an experiment offers in --cell either traces one training step of its --quick
configuration or is refused before compiling with a one-line flag error (issue: cells an
experiment offered but could not run failed after compiling with internal errors).

Tracing only (`jax.eval_shape`: nothing is compiled), so every (experiment, cell) pair is cheap.
"""

import dataclasses
import importlib

import jax
import pytest

from experiments.harness import driver, template
from experiments.harness.records import Measurement

EXPERIMENTS = ["parity", "long_memory", "summation", "tagging", "sequence_classification",
               "captioning", "seq2seq", "char_lm", "vanishing_gradients", "parallel_in_time"]


def offered(name: str) -> list[str]:
    fields = {f.name: f for f in dataclasses.fields(importlib.import_module(
        f"experiments.{name}.experiment").Config)}
    return list(fields["cell"].metadata["choices"] or [])


CASES = [(name, cell) for name in EXPERIMENTS for cell in offered(name)]


@pytest.mark.parametrize("name, cell", CASES)
def test_an_offered_cell_traces_a_training_step_or_is_refused_by_its_flag(name, cell):
    module = importlib.import_module(f"experiments.{name}.experiment")
    try:
        config = driver.parse(module.EXPERIMENT, ["--quick", f"--cell={cell}"])
        plan = template.expand(config)
    except template.FlagError as error:  # refused before compiling, naming a flag
        assert str(error).startswith("--") and "\n" not in str(error)
        return
    for pop_config, members in plan:
        task = module.task(pop_config)
        if isinstance(task, Measurement):
            continue
        key = jax.random.key(0)
        params = jax.eval_shape(task.init, key)
        batch = jax.eval_shape(task.sample, key, 0)
        stream = jax.eval_shape(task.stream, params) if task.stream else ()
        loss = jax.eval_shape(lambda p, b, s: jax.grad(
            lambda q: task.loss_fn(q, b, key, s)[0])(p), params, batch, stream)
        assert jax.tree.structure(loss) == jax.tree.structure(params)
