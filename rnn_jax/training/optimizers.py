"""Optax optimisers by name: for one model, and for a population with per-member values.

    optimizer = make_optimizer("adam", 1e-2, clip_norm=1.0)                 # one model
    optimizer = make_member_optimizer("adam", "constant", num_steps=1000)   # a population
    opt_state = init_member_state(optimizer, params, lr=3e-3, clip=1.0)     # one member's

A population trains P members as one vmapped program, so every member must run the *same*
update function. The values that differ between members without changing shapes (learning
rate, clipping threshold, weight decay) therefore live in each member's optimiser state, not
in the function: `optax.inject_hyperparams` keeps them there as arrays, and `jax.vmap` gives
each member its own.
"""

import jax.numpy as jnp
import optax

OPTIMIZERS = {
    "sgd": optax.sgd,
    "adam": optax.adam,
    "rmsprop": optax.rmsprop,
    "adagrad": optax.adagrad,
}
SCHEDULES = ("constant", "cosine", "warmup_cosine")
# Per-member optimiser hyperparameters: name in a population's member table -> optax name.
MEMBER_HYPERPARAMETERS = {"lr": "learning_rate", "clip": "clip_norm",
                          "weight_decay": "weight_decay"}


def make_schedule(
    name: str, learning_rate, *, num_steps: int = 0, warmup_steps: int = 0
) -> optax.Schedule | float:
    """'constant' (the rate itself), 'cosine' decay over `num_steps`, or 'warmup_cosine'.
    `learning_rate` may be a traced array (a member's value)."""
    if name == "constant":
        return learning_rate
    if num_steps <= 0:
        raise ValueError(f"schedule {name!r} needs num_steps > 0, received {num_steps}")
    if name == "cosine":
        return optax.cosine_decay_schedule(learning_rate, num_steps)
    if name == "warmup_cosine":
        # optax branches in Python on its peak value, so the schedule is built for a peak of
        # 1 and scaled: a member's traced rate works too
        shape = optax.warmup_cosine_decay_schedule(
            0.0, 1.0, max(warmup_steps, 1), max(num_steps, warmup_steps + 1))
        return lambda step: learning_rate * shape(step)
    raise ValueError(f"unknown schedule {name!r}; expected one of {list(SCHEDULES)}")


def _check_name(name: str) -> None:
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {sorted(OPTIMIZERS)}")


def make_optimizer(
    name: str,
    learning_rate: float | optax.Schedule,
    *,
    clip_norm: float | None = None,
    **options,
) -> optax.GradientTransformation:
    """An optax optimiser by name, with gradient clipping by global norm chained before it.

    Args:
      name: one of 'sgd', 'adam', 'rmsprop', 'adagrad'.
      learning_rate: a float or an optax schedule.
      clip_norm: rescale the gradient g to `g * min(1, clip_norm / ||g||)` (Pascanu et al.
        2013) before the optimiser; None or <= 0 disables clipping.
      **options: passed to the optax constructor (e.g. `momentum=0.9` for sgd).
    """
    _check_name(name)
    optimizer = OPTIMIZERS[name](learning_rate, **options)
    if clip_norm is not None and clip_norm > 0:
        optimizer = optax.chain(optax.clip_by_global_norm(clip_norm), optimizer)
    return optimizer


CLIP_KINDS = ("global", "elementwise")


def make_member_optimizer(
    name: str, schedule: str = "constant", *, num_steps: int = 0, warmup_steps: int = 0,
    clip_kind: str = "global", **options,
) -> optax.GradientTransformation:
    """`make_optimizer` whose learning rate, clip norm and weight decay are read from the
    optimiser state (set per member by `init_member_state`), so one update serves a population.

    The update is: clip g to the member's global norm (`clip_kind="elementwise"`: each entry
    to [-clip, clip], as in the uRNN authors' code; `clip <= 0`: no clipping), add
    `weight_decay * params` (L2 weight decay, as torch.optim's `weight_decay`), then the
    optimiser at the member's (scheduled) learning rate.
    """
    _check_name(name)
    if clip_kind not in CLIP_KINDS:
        raise ValueError(f"unknown clip_kind {clip_kind!r}; expected one of {list(CLIP_KINDS)}")
    clipping = optax.clip_by_global_norm if clip_kind == "global" else optax.clip

    def factory(learning_rate, clip_norm, weight_decay):
        rate = make_schedule(schedule, learning_rate, num_steps=num_steps,
                             warmup_steps=warmup_steps)
        return optax.chain(
            clipping(jnp.where(clip_norm > 0, clip_norm, jnp.inf)),
            optax.add_decayed_weights(weight_decay),
            OPTIMIZERS[name](rate, **options),
        )

    return optax.inject_hyperparams(factory)(learning_rate=0.0, clip_norm=0.0, weight_decay=0.0)


def init_member_state(optimizer: optax.GradientTransformation, params, *, lr, clip=0.0,
                      weight_decay=0.0):
    """One member's optimiser state with its own values (scalars, or traced under vmap)."""
    state = optimizer.init(params)
    values = {"learning_rate": lr, "clip_norm": clip, "weight_decay": weight_decay}
    hyperparams = {k: jnp.asarray(v, state.hyperparams[k].dtype) for k, v in values.items()}
    return state._replace(hyperparams=hyperparams)
