"""Networks from the notes with hand-set weights, expressed as ordinary library cells.

Parity (binary threshold units, output fed back to the hidden layer):

    y(t-1) x(t) | h1 = OR  h2 = AND | y(t) = h1 - h2 = XOR
       0    0   |    0       0      |   0
       0    1   |    1       0      |   1
       1    0   |    1       0      |   1
       1    1   |    1       1      |   0

    h(t) = H(b + W y(t-1) + U x(t)),  U = W = [[1, 1]], b = [-0.5, -1.5]   (H: step, H(a) = a > 0)
    y(t) = c + V h(t),                V = [[1], [-1]], c = [0]

It is the output-feedback cell (`cells/output_feedback.py`, params `OutputFeedbackParams`) with
the Heaviside step as phi. Every quantity is a small integer, so it is exact at any length.

Summation (a linear RNN, the vanilla cell with phi = identity):

    s(t) = W s(t-1) + U x(t) + b,   W = [[1]], U = [[1]], b = [0]
    y(t) = V s(t) + c,              V = [[1]], c = [0]

Summation and comparison (two running sums, then their difference as the output logit):

    s(t) = s(t-1) + x(t)  (W = U = I_2, b = 0);   o(t) = s1(t) - s2(t)  (V = [[1], [-1]]);
    answer "first sum exceeds second" = o(t) > 0.
"""

import jax
import jax.numpy as jnp

from rnn_jax.cells import output_feedback, vanilla
from rnn_jax.cells.base import Cell, affine
from rnn_jax.readout import LinearParams


def heaviside(a: jax.Array) -> jax.Array:
    """The binary threshold unit H(a) = 1 if a > 0 else 0 (same dtype as a)."""
    return (a > 0).astype(a.dtype)


def parity_params(dtype=jnp.float32) -> output_feedback.OutputFeedbackParams:
    """The hand-set weights of the parity network (see the module docstring)."""
    return output_feedback.OutputFeedbackParams(
        U=jnp.array([[1.0, 1.0]], dtype),  # x(t) -> (h1, h2)
        W=jnp.array([[1.0, 1.0]], dtype),  # y(t-1) -> (h1, h2)
        b=jnp.array([-0.5, -1.5], dtype),  # h1 = OR, h2 = AND
        V=jnp.array([[1.0], [-1.0]], dtype),  # y = h1 - h2 = XOR
        c=jnp.array([0.0], dtype),
    )


def parity_cell() -> Cell:
    """The parity network as a `Cell`: carry y(t-1) `[..., 1]`, emits y(t) in {0, 1}.

    `init` ignores its key and sizes must be (1, 2): the weights are fixed.
    """

    def init(key, input_size=1, hidden_size=2, *, dtype=jnp.float32):
        del key
        if (input_size, hidden_size) != (1, 2):
            raise ValueError(
                f"the parity network has 1 input and 2 hidden units, received input_size="
                f"{input_size}, hidden_size={hidden_size}"
            )
        return parity_params(dtype)

    def step(params, y_prev, x_proj):
        h = heaviside(x_proj + y_prev @ params.W)  # h(t) = H(b + W y(t-1) + U x(t))
        y = affine(h, params.V, params.c)  # y(t) = c + V h(t)
        return y, y

    return Cell(
        "parity_threshold",
        init,
        output_feedback.initial_carry,
        output_feedback.project_inputs,
        step,
        output_feedback.input_size,
    )


def summation_params(dtype=jnp.float32) -> tuple[vanilla.VanillaParams, LinearParams]:
    """Linear RNN and readout computing the running sum: W = U = V = [[1]], b = c = 0."""
    one = jnp.ones((1, 1), dtype)
    return (
        vanilla.VanillaParams(U=one, W=one, b=jnp.zeros((1,), dtype)),
        LinearParams(V=one, c=jnp.zeros((1,), dtype)),
    )


def comparison_params(dtype=jnp.float32) -> tuple[vanilla.VanillaParams, LinearParams]:
    """Two running sums (W = U = I_2) and the readout o = s1 - s2 (logit of "first larger")."""
    eye = jnp.eye(2, dtype=dtype)
    return (
        vanilla.VanillaParams(U=eye, W=eye, b=jnp.zeros((2,), dtype)),
        LinearParams(V=jnp.array([[1.0], [-1.0]], dtype), c=jnp.zeros((1,), dtype)),
    )


def linear_cell() -> Cell:
    """The vanilla cell with phi = identity, the cell the summation networks use."""
    return vanilla.make_cell(activation="identity")
