"""Losses with masks for padded steps. Each returns a scalar mean over valid positions.

`mask` is `[batch, time]` (or any shape matching the leading axes), 1 on valid steps, 0 on
padding; None means every position is valid.
"""

import jax
import jax.numpy as jnp
import optax


def _masked_mean(values: jax.Array, mask: jax.Array | None) -> jax.Array:
    if mask is None:
        return jnp.mean(values)
    if mask.shape != values.shape:
        raise ValueError(f"expected mask of shape {values.shape}, received {mask.shape}")
    mask = mask.astype(values.dtype)
    return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def softmax_cross_entropy(
    logits: jax.Array, labels: jax.Array, mask: jax.Array | None = None
) -> jax.Array:
    """`-log softmax(o)[y]` averaged over valid tokens (stable log-softmax, via optax).

    Args:
      logits: `[..., vocab]` unnormalised scores o.
      labels: `[...]` integer classes in [0, vocab).
    """
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"expected integer labels, received dtype {labels.dtype}")
    if labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"expected labels of shape {logits.shape[:-1]} (logits without the vocab axis), "
            f"received {labels.shape}"
        )
    return _masked_mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels), mask)


def squared_error(
    predictions: jax.Array, targets: jax.Array, mask: jax.Array | None = None
) -> jax.Array:
    """The notes' `E = 1/2 sum_k (y_hat_k - y_k)^2` per position (summed over the last, feature
    axis), averaged over valid positions. `[..., features]` each."""
    if predictions.shape != targets.shape:
        raise ValueError(
            f"expected targets of shape {predictions.shape}, received {targets.shape}"
        )
    return _masked_mean(0.5 * jnp.sum((predictions - targets) ** 2, axis=-1), mask)


def binary_cross_entropy(
    logits: jax.Array, targets: jax.Array, mask: jax.Array | None = None
) -> jax.Array:
    """`-[y log sigma(z) + (1-y) log(1 - sigma(z))]`, stable from logits (optax), averaged over
    valid positions. `logits` and `targets` have the same shape; targets in [0, 1]."""
    if logits.shape != targets.shape:
        raise ValueError(f"expected targets of shape {logits.shape}, received {targets.shape}")
    return _masked_mean(optax.sigmoid_binary_cross_entropy(logits, targets), mask)
