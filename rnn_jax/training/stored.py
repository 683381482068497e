"""A train state's leaves as a checkpoint stores them: a description of each (tree path, shape,
dtype), its data on the host (PRNG keys as raw key data), its SHA-256, and the check of a
saved description against a template's (`rnn_jax.training.checkpoint`).
"""

import hashlib
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils

from rnn_jax import distributed


def is_key(leaf: Any) -> bool:
    """Whether `leaf` is a typed PRNG key array."""
    return jax.dtypes.issubdtype(getattr(leaf, "dtype", None), jax.dtypes.prng_key)


def describe(tree: Any) -> list[dict]:
    """One `{path, shape, dtype}` per leaf, in `jax.tree` order."""
    paths_leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [
        {
            "path": jax.tree_util.keystr(path),
            "shape": list(np.shape(leaf)),
            "dtype": dtype_name(leaf),
        }
        for path, leaf in paths_leaves
    ]


def dtype_name(leaf: Any) -> str:
    """The dtype as the description records it (`key<impl>` for a PRNG key)."""
    if is_key(leaf):
        return f"key<{jax.random.key_impl(leaf)}>"
    dtype = getattr(leaf, "dtype", None)  # an array split over processes has no host copy
    return str(np.dtype(dtype) if dtype is not None else np.asarray(leaf).dtype)


def storable(leaf: Any) -> Any:
    """A PRNG key as its raw key data (orbax stores plain arrays); other leaves unchanged."""
    return jax.random.key_data(leaf) if is_key(leaf) else leaf


def to_host(leaf: Any) -> np.ndarray:
    """The whole array on this host; an array split over processes is gathered from all of
    them (a collective: every process calls it for the same leaves in the same order)."""
    data = storable(leaf)
    if getattr(data, "is_fully_addressable", True):
        return np.asarray(data)
    if data.is_fully_replicated:
        return np.asarray(data.addressable_data(0))
    return np.asarray(multihost_utils.process_allgather(data, tiled=True))


def abstract(leaf: Any) -> Any:
    """What orbax restores `leaf` as: a host array in one process; with several, a global
    array on the template leaf's devices (replicated over all devices when it has none)."""
    if jax.process_count() == 1:
        return to_host(leaf)
    data = jax.eval_shape(storable, leaf)
    sharding = getattr(leaf, "sharding", None)
    if not isinstance(sharding, jax.sharding.NamedSharding):
        sharding = distributed.replicated(distributed.make_mesh())
    return jax.ShapeDtypeStruct(data.shape, data.dtype, sharding=sharding)


def leaf_name(index: int) -> str:
    """The name the checkpoint stores leaf `index` under (zero-padded: sorts in order)."""
    return f"{index:05d}"


def sha256(array: np.ndarray) -> str:
    """The hex SHA-256 of the array's bytes (C order)."""
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def check_matches(saved: list[dict], expected: list[dict], where: Path) -> None:
    """ValueError naming the first leaf whose saved description differs from the template's."""
    if len(saved) != len(expected):
        raise ValueError(
            f"checkpoint {where} does not match this model/optimiser: it holds {len(saved)} "
            f"arrays, the train state has {len(expected)}"
        )
    for got, want in zip(saved, expected):
        if got != want:
            raise ValueError(
                f"checkpoint {where} does not match this model/optimiser: expected {want['path']} "
                f"with shape {want['shape']} and dtype {want['dtype']}, received "
                f"{got['path']} with shape {got['shape']} and dtype {got['dtype']}"
            )
