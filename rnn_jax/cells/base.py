"""The cell contract shared by every recurrent cell.

A cell is a bundle of pure functions (no classes holding arrays):

    init(key, input_size, hidden_size, *, dtype=float32, **options) -> params
    initial_carry(params, batch_shape=()) -> carry
    project_inputs(params, xs) -> xs_proj        # time-parallel part: one matmul over all steps
    step(params, carry, x_proj_t) -> (carry, h_t)  # carry first, as jax.lax.scan expects
    input_size(params) -> int                      # expected feature size of xs; checks
                                                   # that params are this cell's (ValueError)
    prepare(params, batch_shape) -> step_params    # optional (None: step gets params): the
                                                   # per-sequence part of step, run once
                                                   # before the scan (e.g. the uRNN's W)

`step` must also accept the params themselves (a Python loop over it, the diagnostics), so
`prepare` is only ever a saving.

Optional fast paths, each written by hand for the cell's `step` in the cell's own file
(contracts in `cells/fast_paths.py`): `bptt_kernel` (the hand-written BPTT, `unroll`'s default
backward), `jacobian_diagonal` (quasi-DEER), `linear_form` (the associative scan). None: the
layer that would use one falls back to the cell's functions (autodiff, the Jacobian read off
`jax.jvp`, or a ValueError where only the fast path exists).

Modified cells: `cell._replace(step=my_step)` drops every field written against the old
`step` (`DEPENDS_ON`: `prepare` and the three fast paths; the BPTT kernel also stands in for
`project_inputs`), unless the same call gives a new one, so a modified cell runs its own
functions on every path. Renaming a cell keeps them all; they are never found by name.
`step` checks its arguments' shapes (`check_step`: static shapes, so nothing runs at run time
and nothing under `jit` beyond the trace): the projected input's width, the carry's width, and
batch axes that broadcast, so a raw input `x` passed where `project_inputs(params, x)` belongs
is a ValueError instead of a silent broadcast.

Params and carries are NamedTuples of arrays. Matrices are stored `[in, out]` and applied as
`x @ W`, so any leading axes are batch axes.
"""

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax.cells.fast_paths import Kernel, LinearForm

# field -> the functions it is written against: replacing one of those drops the field
DEPENDS_ON: dict[str, tuple[str, ...]] = {
    "prepare": ("step",),
    "bptt_kernel": ("step", "project_inputs"),
    "jacobian_diagonal": ("step",),
    "linear_form": ("step",),
}


class _CellFields(NamedTuple):
    name: str
    init: Callable[..., Any]
    initial_carry: Callable[..., Any]
    project_inputs: Callable[[Any, jax.Array], jax.Array]
    step: Callable[[Any, Any, jax.Array], tuple[Any, jax.Array]]
    input_size: Callable[[Any], int]
    prepare: Callable[[Any, tuple[int, ...]], Any] | None = None
    bptt_kernel: Kernel | None = None
    jacobian_diagonal: Callable[[Any, Any, jax.Array], Any] | None = None
    linear_form: LinearForm | None = None


class Cell(_CellFields):
    """A recurrent cell as a value: the functions `unroll`, the loop and experiments need, and
    the fast paths the library has for them (module docstring)."""

    __slots__ = ()

    def _replace(self, **changes: Any) -> "Cell":
        """A copy with `changes`; a replaced function drops the fields written against it
        (`DEPENDS_ON`), except those `changes` gives anew."""
        replaced = {name for name, value in changes.items()
                    if value is not getattr(self, name, None)}
        dropped = {field: None for field, written_for in DEPENDS_ON.items()
                   if field not in changes and replaced.intersection(written_for)}
        return super()._replace(**changes, **dropped)


class Activation(NamedTuple):
    """A nonlinearity `phi` and what the hand-written BPTT and the diagnostics need of it."""

    phi: Callable[[jax.Array], jax.Array]  # a -> phi(a)
    derivative: Callable[[jax.Array], jax.Array]  # s -> phi'(a), from the output s = phi(a)
    sup_derivative: float  # sup_a |phi'(a)|: the notes' lambda_phi


ACTIVATIONS: dict[str, Activation] = {
    "tanh": Activation(jnp.tanh, lambda s: 1.0 - s * s, 1.0),
    "relu": Activation(jax.nn.relu, lambda s: (s > 0).astype(s.dtype), 1.0),
    "identity": Activation(lambda a: a, jnp.ones_like, 1.0),
    "sigmoid": Activation(jax.nn.sigmoid, lambda s: s * (1.0 - s), 0.25),
}


def activation_entry(name: str) -> Activation:
    """The table entry of the activation called `name`; a ValueError naming the choices."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def get_activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """Returns the nonlinearity `phi` called `name`; raises a ValueError naming the choices."""
    return activation_entry(name).phi


def zeros_carry(hidden_size: int, batch_shape: tuple[int, ...], dtype) -> jax.Array:
    """A zero state `[*batch_shape, hidden_size]`."""
    return jnp.zeros((*batch_shape, hidden_size), dtype)


def affine(x: jax.Array, M: jax.Array, bias: jax.Array) -> jax.Array:
    """`x @ M + bias` with the bias broadcast explicitly (safe under strict rank promotion).

    x: `[..., in]`, M: `[in, out]`, bias: `[out]` -> `[..., out]`.
    """
    z = x @ M
    return z + jnp.broadcast_to(bias, z.shape)


def check_sizes(cell_name: str, **sizes: Any) -> None:
    """Raises a ValueError unless every size (e.g. `hidden_size=4`) is an int >= 1."""
    for name, value in sizes.items():
        is_int = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
        if not is_int or value < 1:
            raise ValueError(f"{cell_name}: expected {name} an int >= 1, received {value!r}")


def check_params(
    cell_name: str,
    params: Any,
    params_type: type,
    expected_shapes: Callable[[Any], dict[str, tuple[int, ...]]],
) -> None:
    """Raises a ValueError unless `params` are a `params_type` with the shapes it implies.

    `expected_shapes(params)` gives each field's shape from the sizes read off `params` (e.g.
    LSTM: U `[in, 4*hidden]` with `hidden = W.shape[0]`). Runs at trace time, on shapes only.
    """
    if not isinstance(params, params_type):
        raise ValueError(
            f"{cell_name}: expected {params_type.__name__} params, received "
            f"{type(params).__name__}"
        )
    try:
        expected = expected_shapes(params)
    except (IndexError, TypeError):  # a field of the wrong rank, or not an array
        expected = None
    received = {name: tuple(np.shape(getattr(params, name))) for name in params_type._fields}
    if expected is None or any(received[name] != shape for name, shape in expected.items()):
        received = {name: received[name] for name in (expected or received)}
        raise ValueError(
            f"{cell_name}: expected {params_type.__name__} shapes {expected}, received {received}"
        )


def check_step(cell_name: str, x_proj: Any, width: int, **carry: tuple[Any, int]) -> None:
    """A ValueError unless `x_proj` is `[*batch, width]` and each carry leaf, given as
    `name=(leaf, size)`, is `[*batch', size]` with batch' broadcasting against batch.

    Shapes only (Python, at trace time), so it costs nothing per step of a compiled scan. The
    batch axes must broadcast rather than be equal, so one carry `[size]` may start a batch.
    """
    x_shape = tuple(np.shape(x_proj))
    if not x_shape or x_shape[-1] != width:
        raise ValueError(
            f"{cell_name}: step expected x_proj [..., {width}] (project_inputs(params, x), not "
            f"the raw input x), received shape {x_shape}"
        )
    for name, (leaf, size) in carry.items():
        shape = tuple(np.shape(leaf))
        if not shape or shape[-1] != size:
            raise ValueError(
                f"{cell_name}: step expected carry {name} [..., {size}], received shape {shape}"
            )
        try:
            np.broadcast_shapes(shape[:-1], x_shape[:-1])
        except ValueError:
            raise ValueError(
                f"{cell_name}: step expected the carry's batch axes to match x_proj's "
                f"{x_shape[:-1]}, received carry {name} of shape {shape} (batch {shape[:-1]})"
            ) from None
