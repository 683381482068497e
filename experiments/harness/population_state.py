"""A population's train state: its members' keys, step 0, and a member loaded back from a
checkpoint (for a report's samples or figures, or char_lm's --sample_only).

Everything random about a member comes from its seed (`member_keys`); its member values
(`Config.MEMBER_FIELDS`: lr, clip, weight_decay) live in its optimiser state, so members with
different rates train in one vmapped program (`rnn_jax.training.population`).
"""

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from experiments.harness import template
from experiments.harness.records import Task
from rnn_jax import training
from rnn_jax.training import Checkpointer, population


def member_keys(seed: int) -> dict[str, jax.Array]:
    """A member's independent keys, all from its seed."""
    init, data, evaluation, training = jax.random.split(jax.random.key(seed), 4)
    return {"init": init, "data": data, "eval": evaluation, "train": training}


def member_values(config: template.Base, members: list[dict]) -> dict[str, jax.Array]:
    """The members' values of `MEMBER_FIELDS` (the config's where a member has none), each
    stacked as float32 `[members]`."""
    return {name: jnp.asarray([m.get(name, getattr(config, name)) for m in members],
                              jnp.float32) for name in type(config).MEMBER_FIELDS}


def init_population(task: Task, config: template.Base, members: list[dict]
                    ) -> tuple[population.Population, Any, dict]:
    """Step 0 of the members: `(population state, member optimiser, stacked member keys)`; the
    state is also the template a saved checkpoint of the population restores into."""
    keys = [member_keys(m["seed"]) for m in members]
    stacked = {k: jnp.stack([key[k] for key in keys]) for k in keys[0]}
    optimizer = training.make_member_optimizer(
        config.optimizer, config.lr_schedule, num_steps=config.steps,
        warmup_steps=config.warmup_steps, clip_kind=task.clip_kind,
        **(task.optimizer_options or {}))

    def init_member(init_key, train_key, value):
        params = task.init(init_key)
        opt_state = training.init_member_state(
            optimizer, params, lr=value["lr"], clip=value["clip"],
            weight_decay=value["weight_decay"])
        stream = task.stream(params) if task.stream is not None else ()
        return training.TrainState(params, opt_state, jnp.zeros((), jnp.int32), train_key, stream)

    state = population.create(jax.vmap(init_member)(
        stacked["init"], stacked["train"], member_values(config, members)))
    return state, optimizer, stacked


def load_member(task: Task, config: template.Base, members: list[dict], pop_dir: Path,
                member: int | None) -> Any | None:
    """Member `member`'s parameters (member None: every member's, leaves `[members, ...]`)
    from the population's latest checkpoint in `pop_dir/checkpoints`, or None when it has
    none. Only `task`'s init, stream, clip_kind and optimizer_options are used (they fix the
    saved state's structure)."""
    directory = Path(pop_dir) / "checkpoints"
    if not directory.is_dir():
        return None
    like, _, _ = init_population(task, config, members)
    checkpointer = Checkpointer(directory)
    try:
        if checkpointer.latest_step() is None:
            return None
        state = checkpointer.restore(like)
    finally:
        checkpointer.close()
    params = state.members.params
    return params if member is None else jax.tree.map(lambda leaf: leaf[member], params)
